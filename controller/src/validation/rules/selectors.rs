//! Label selectors: well-formed, not empty, and whether they select a template.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{
    super::{
        FieldError,
        field::{forbidden, invalid, required},
    },
    names::{label_value, qualified_name},
};

/// Whether a selector selects nothing in particular (no labels, no expressions).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// A well-formed label selector (`ValidateLabelSelector`): keys are label keys,
/// values label values, `In`/`NotIn` have values, `Exists`/`DoesNotExist` none.
pub fn label_selector(field: &str, sel: &LabelSelector, errors: &mut Vec<FieldError>) {
    labels(&format!("{field}.matchLabels"), sel.match_labels.as_ref(), errors);
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        requirement(&format!("{field}.matchExpressions[{i}]"), req, errors);
    }
}

/// Label keys and values (`ValidateLabels`).
pub fn labels(field: &str, labels: Option<&BTreeMap<String, String>>, errors: &mut Vec<FieldError>) {
    for (key, value) in labels.into_iter().flatten() {
        if let Some(reason) = qualified_name(key) {
            errors.push(invalid(field, key, reason));
        }
        if let Some(reason) = label_value(value) {
            errors.push(invalid(field, value, reason));
        }
    }
}

fn requirement(at: &str, req: &LabelSelectorRequirement, errors: &mut Vec<FieldError>) {
    let values = req.values.as_deref().unwrap_or_default();
    let values_at = format!("{at}.values");
    match req.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            errors.push(required(&values_at, "In and NotIn need values"));
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            errors.push(forbidden(&values_at, "Exists and DoesNotExist take no values"));
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        other => errors.push(invalid(
            &format!("{at}.operator"),
            other,
            "not one of In, NotIn, Exists and DoesNotExist",
        )),
    }
    if let Some(reason) = qualified_name(&req.key) {
        errors.push(invalid(&format!("{at}.key"), &req.key, reason));
    }
    for (i, value) in values.iter().enumerate() {
        if let Some(reason) = label_value(value) {
            errors.push(invalid(&format!("{values_at}[{i}]"), value, reason));
        }
    }
}

/// A workload's selector: well-formed and not empty. `kind` names the workload in
/// the message (`cloneset`).
pub fn workload_selector(field: &str, sel: &LabelSelector, kind: &str, errors: &mut Vec<FieldError>) {
    label_selector(field, sel, errors);
    if selector_is_empty(sel) {
        errors.push(invalid(field, sel, format!("an empty selector is invalid for a {kind}")));
    }
}

/// Whether `sel` selects an object with `labels` (as Kubernetes matches: a `NotIn`
/// or `DoesNotExist` on a missing key matches; an unknown operator matches nothing).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    stevedore_proto::pod_order::label_selector_matches(sel, labels).unwrap_or(false)
}

/// A non-empty `sel` selects the labels of the template at `template_field`.
pub fn selects_template(
    template_field: &str,
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
    errors: &mut Vec<FieldError>,
) {
    let empty = BTreeMap::new();
    if !selector_is_empty(sel) && !selector_matches(sel, labels.unwrap_or(&empty)) {
        errors.push(invalid(
            &format!("{template_field}.metadata.labels"),
            labels,
            "`selector` does not select these labels",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::rules::tests::{fields, labels};

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn good() -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![expr("tier", "In", &["a", "b"]), expr("x", "Exists", &[])]),
        }
    }

    fn bad() -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(&[("bad key!", "v")])),
            match_expressions: Some(vec![
                expr("a", "In", &[]),
                expr("b", "Exists", &["x"]),
                expr("c", "Near", &[]),
            ]),
        }
    }

    #[test]
    fn selectors_are_well_formed() {
        let mut errors = Vec::new();
        workload_selector("spec.selector", &good(), "cloneset", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        label_selector("spec.selector", &bad(), &mut errors);
        workload_selector("spec.selector", &LabelSelector::default(), "cloneset", &mut errors);
        let got = fields(&errors);
        let want = [
            "spec.selector.matchLabels: Invalid value: \"bad key!\"",
            "spec.selector.matchExpressions[0].values: Required value",
            "spec.selector.matchExpressions[1].values: Forbidden",
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\"",
            "spec.selector: Invalid value: {}: an empty selector is invalid for a cloneset",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (got, want) in got.iter().zip(want) {
            assert!(got.starts_with(want), "{got} / {want}");
        }
        assert!(selector_is_empty(&LabelSelector::default()) && !selector_is_empty(&good()));
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "a")]);
        let sel = |exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(exprs),
        };
        assert!(selector_matches(&sel(vec![expr("tier", "In", &["a", "b"])]), &l));
        assert!(selector_matches(&sel(vec![expr("zone", "NotIn", &["x"])]), &l), "NotIn on a missing key");
        assert!(selector_matches(&sel(vec![expr("zone", "DoesNotExist", &[])]), &l));
        assert!(!selector_matches(&sel(vec![expr("tier", "NotIn", &["a"])]), &l));
        assert!(!selector_matches(&sel(vec![expr("zone", "In", &["x"])]), &l));
        assert!(!selector_matches(&sel(vec![expr("zone", "Exists", &[])]), &l));
        let mut errors = Vec::new();
        selects_template("spec.template", &sel(vec![]), Some(&l), &mut errors);
        assert!(errors.is_empty());
        selects_template("spec.template", &sel(vec![]), None, &mut errors);
        assert_eq!(
            fields(&errors),
            ["spec.template.metadata.labels: Invalid value: null: `selector` does not select these labels"]
        );
    }
}
