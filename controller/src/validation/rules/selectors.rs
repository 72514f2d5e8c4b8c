//! Label selectors: well-formed, not empty, and whether they select a template.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{
    super::{FieldError, err},
    Wording,
    names::{label_value, qualified_name},
};

/// Whether a selector selects nothing in particular (no labels, no expressions).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// A well-formed label selector, as Kubernetes checks one when it turns it into a
/// selector: keys are label keys, values label values, `In`/`NotIn` have values and
/// `Exists`/`DoesNotExist` have none.
pub fn label_selector(wording: Wording, field: &str, sel: &LabelSelector, errors: &mut Vec<FieldError>) {
    let labels = format!("{field}.matchLabels");
    for (key, value) in sel.match_labels.iter().flatten() {
        if let Some(reason) = qualified_name(key) {
            let why = match wording {
                Wording::Workloads => format!("key {key:?}: {reason}"),
                Wording::Jobs => format!("{key:?} is not a valid label key"),
            };
            errors.push(err(&labels, why));
        }
        if let Some(reason) = label_value(value) {
            let why = match wording {
                Wording::Workloads => format!("value {value:?}: {reason}"),
                Wording::Jobs => format!("{value:?} is not a valid label value"),
            };
            errors.push(err(&labels, why));
        }
    }
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        requirement(wording, &format!("{field}.matchExpressions[{i}]"), req, errors);
    }
}

fn requirement(wording: Wording, at: &str, req: &LabelSelectorRequirement, errors: &mut Vec<FieldError>) {
    let values = req.values.as_deref().unwrap_or_default();
    let values_at = format!("{at}.values");
    let operator = match (req.operator.as_str(), wording) {
        ("In" | "NotIn", Wording::Workloads) if values.is_empty() => {
            Some(err(&values_at, "must be specified for In and NotIn"))
        }
        ("In" | "NotIn", Wording::Jobs) if values.is_empty() => {
            Some(err(&values_at, "must be specified when `operator` is 'In' or 'NotIn'"))
        }
        ("Exists" | "DoesNotExist", Wording::Workloads) if !values.is_empty() => {
            Some(err(&values_at, "must be empty for Exists and DoesNotExist"))
        }
        ("Exists" | "DoesNotExist", Wording::Jobs) if !values.is_empty() => {
            Some(err(&values_at, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        }
        ("In" | "NotIn" | "Exists" | "DoesNotExist", _) => None,
        (other, Wording::Workloads) => Some(err(
            &format!("{at}.operator"),
            format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist"),
        )),
        (other, Wording::Jobs) => {
            Some(err(&format!("{at}.operator"), format!("{other:?} is not a valid selector operator")))
        }
    };
    let key = qualified_name(&req.key).map(|reason| {
        let why = match wording {
            Wording::Workloads => format!("{:?}: {reason}", req.key),
            Wording::Jobs => format!("{:?} is not a valid label key", req.key),
        };
        err(&format!("{at}.key"), why)
    });
    // the workloads name the operator first, as Kubernetes does; the jobs the key
    match wording {
        Wording::Workloads => errors.extend(operator.into_iter().chain(key)),
        Wording::Jobs => errors.extend(key.into_iter().chain(operator)),
    }
    for value in values {
        if let Some(reason) = label_value(value) {
            let why = match wording {
                Wording::Workloads => format!("{value:?}: {reason}"),
                Wording::Jobs => format!("{value:?} is not a valid label value"),
            };
            errors.push(err(&values_at, why));
        }
    }
}

/// A workload's selector: present, well-formed and not empty. `kind` names the
/// workload in the message (`cloneset`).
pub fn workload_selector(field: &str, sel: &LabelSelector, kind: &str, errors: &mut Vec<FieldError>) {
    label_selector(Wording::Workloads, field, sel, errors);
    if selector_is_empty(sel) {
        errors.push(err(field, format!("an empty selector is invalid for a {kind}")));
    }
}

/// Whether `sel` selects an object with `labels` (as Kubernetes matches: a `NotIn`
/// or `DoesNotExist` on a missing key matches).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = sel.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let has = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => has.is_some_and(|v| values.contains(v)),
            "NotIn" => has.is_none_or(|v| !values.contains(v)),
            "Exists" => has.is_some(),
            "DoesNotExist" => has.is_none(),
            _ => false,
        }
    });
    by_labels && by_exprs
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
        errors.push(err(&format!("{template_field}.metadata.labels"), "the selector does not match them"));
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
        label_selector(Wording::Workloads, "spec.selector", &bad(), &mut errors);
        workload_selector("spec.selector", &LabelSelector::default(), "cloneset", &mut errors);
        let got = fields(&errors);
        assert!(got[0].starts_with("spec.selector.matchLabels: key \"bad key!\""), "{got:?}");
        assert_eq!(
            got[1..],
            [
                "spec.selector.matchExpressions[0].values: must be specified for In and NotIn",
                "spec.selector.matchExpressions[1].values: must be empty for Exists and DoesNotExist",
                "spec.selector.matchExpressions[2].operator: \"Near\" is not one of In, NotIn, Exists, \
                 DoesNotExist",
                "spec.selector: an empty selector is invalid for a cloneset",
            ]
        );
    }

    #[test]
    fn the_jobs_word_selector_errors_as_kubernetes_does() {
        let mut errors = Vec::new();
        label_selector(Wording::Jobs, "spec.selector", &good(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        label_selector(Wording::Jobs, "spec.selector", &bad(), &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "spec.selector.matchLabels: \"bad key!\" is not a valid label key",
                "spec.selector.matchExpressions[0].values: must be specified when `operator` is 'In' or \
                 'NotIn'",
                "spec.selector.matchExpressions[1].values: may not be specified when `operator` is \
                 'Exists' or 'DoesNotExist'",
                "spec.selector.matchExpressions[2].operator: \"Near\" is not a valid selector operator",
            ]
        );
        assert!(selector_is_empty(&LabelSelector::default()) && !selector_is_empty(&good()));
    }

    #[test]
    fn the_wordings_order_a_bad_key_and_operator_apart() {
        let sel =
            LabelSelector { match_expressions: Some(vec![expr("-k", "Near", &[])]), ..Default::default() };
        let order = |wording| {
            let mut errors = Vec::new();
            label_selector(wording, "s", &sel, &mut errors);
            errors.into_iter().map(|e| e.field).collect::<Vec<_>>()
        };
        assert_eq!(
            order(Wording::Workloads),
            ["s.matchExpressions[0].operator", "s.matchExpressions[0].key"]
        );
        assert_eq!(order(Wording::Jobs), ["s.matchExpressions[0].key", "s.matchExpressions[0].operator"]);
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
        assert_eq!(fields(&errors), ["spec.template.metadata.labels: the selector does not match them"]);
    }
}
