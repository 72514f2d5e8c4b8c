//! Node selector terms, preferred scheduling terms and tolerations, as Kubernetes
//! checks them in a pod (`ValidateNodeSelectorTerm`, `ValidateTolerations`).

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm, Toleration,
};

use super::{
    super::{
        FieldError,
        field::{forbidden, invalid, not_supported, required},
    },
    names::{dns1123_subdomain, label_value, qualified_name},
};

/// A node selector term (`ValidateNodeSelectorTerm`): its label requirements and its
/// field requirements.
pub fn node_selector_term(field: &str, term: &NodeSelectorTerm, errors: &mut Vec<FieldError>) {
    for (i, r) in term.match_expressions.iter().flatten().enumerate() {
        label_requirement(&format!("{field}.matchExpressions[{i}]"), r, errors);
    }
    for (i, r) in term.match_fields.iter().flatten().enumerate() {
        field_requirement(&format!("{field}.matchFields[{i}]"), r, errors);
    }
}

/// Preferred scheduling terms: weights 1 to 100 and valid preferences.
pub fn preferred_terms(field: &str, terms: &[PreferredSchedulingTerm], errors: &mut Vec<FieldError>) {
    for (i, t) in terms.iter().enumerate() {
        if !(1..=100).contains(&t.weight) {
            errors.push(invalid(&format!("{field}[{i}].weight"), t.weight, "must be in the range 1-100"));
        }
        node_selector_term(&format!("{field}[{i}].preference"), &t.preference, errors);
    }
}

/// `ValidateNodeSelectorRequirement`: values as the operator needs them, a label
/// key.
fn label_requirement(at: &str, r: &NodeSelectorRequirement, errors: &mut Vec<FieldError>) {
    let values = r.values.as_deref().unwrap_or_default();
    let values_at = format!("{at}.values");
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => errors.push(required(&values_at, "In and NotIn need values")),
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            errors.push(forbidden(&values_at, "Exists and DoesNotExist take no values"))
        }
        "Gt" | "Lt" if values.len() != 1 => errors.push(required(&values_at, "Gt and Lt take one value")),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        other => errors.push(invalid(&format!("{at}.operator"), other, "not a valid node selector operator")),
    }
    if let Some(reason) = qualified_name(&r.key) {
        errors.push(invalid(&format!("{at}.key"), &r.key, reason));
    }
}

/// `ValidateNodeFieldSelectorRequirement`: `metadata.name` with `In` or `NotIn` and
/// one node name.
fn field_requirement(at: &str, r: &NodeSelectorRequirement, errors: &mut Vec<FieldError>) {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" | "NotIn" if values.len() != 1 => {
            errors.push(required(&format!("{at}.values"), "In and NotIn take one value here"))
        }
        "In" | "NotIn" => {}
        other => {
            errors.push(invalid(&format!("{at}.operator"), other, "not a valid field selector operator"))
        }
    }
    if r.key != "metadata.name" {
        errors.push(not_supported(&format!("{at}.key"), &r.key, &["metadata.name"]));
    } else {
        for (i, v) in values.iter().enumerate() {
            if let Some(reason) = dns1123_subdomain(v) {
                errors.push(invalid(&format!("{at}.values[{i}]"), v, reason));
            }
        }
    }
}

/// Tolerations (`ValidateTolerations`): keys are label keys, an empty key only with
/// `Exists`, values that are label values (none with `Exists`), a known effect, and
/// tolerationSeconds only with `NoExecute`.
pub fn tolerations(field: &str, list: &[Toleration], errors: &mut Vec<FieldError>) {
    for (i, t) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let key = t.key.as_deref().unwrap_or_default();
        let operator = t.operator.as_deref().unwrap_or_default();
        let value = t.value.as_deref().unwrap_or_default();
        let effect = t.effect.as_deref().unwrap_or_default();
        if !key.is_empty()
            && let Some(reason) = qualified_name(key)
        {
            errors.push(invalid(&format!("{at}.key"), key, reason));
        }
        if key.is_empty() && operator != "Exists" {
            errors.push(invalid(&format!("{at}.operator"), operator, "must be Exists when `key` is empty"));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errors.push(invalid(
                &format!("{at}.effect"),
                effect,
                "must be NoExecute when tolerationSeconds is set",
            ));
        }
        match operator {
            "" | "Equal" => {
                if let Some(reason) = label_value(value) {
                    errors.push(invalid(&format!("{at}.value"), value, reason));
                }
            }
            "Exists" if !value.is_empty() => {
                errors.push(invalid(&format!("{at}.operator"), t, "value must be empty with Exists"))
            }
            "Exists" => {}
            other => errors.push(not_supported(&format!("{at}.operator"), other, &["Equal", "Exists"])),
        }
        if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errors.push(not_supported(
                &format!("{at}.effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::rules::tests::fields;

    #[test]
    fn node_selector_terms_and_tolerations() {
        let term: NodeSelectorTerm = serde_json::from_value(serde_json::json!({
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "zone", "operator": "In"},
                {"key": "bad key", "operator": "Exists", "values": ["x"]},
                {"key": "gpu", "operator": "Gt", "values": ["1", "2"]},
                {"key": "x", "operator": "Near"}
            ],
            "matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["node-1"]},
                {"key": "spec.unschedulable", "operator": "In", "values": ["true"]},
                {"key": "metadata.name", "operator": "Exists"}
            ]
        }))
        .unwrap();
        let mut errors = Vec::new();
        node_selector_term("t", &term, &mut errors);
        let got = fields(&errors);
        assert_eq!(got.len(), 7, "{got:#?}");
        assert!(got[0].starts_with("t.matchExpressions[1].values: Required value"), "{got:#?}");
        assert!(got[1].starts_with("t.matchExpressions[2].values: Forbidden"), "{got:#?}");
        assert!(got[2].starts_with("t.matchExpressions[2].key: Invalid value: \"bad key\""), "{got:#?}");
        assert!(got[3].starts_with("t.matchExpressions[3].values: Required value"), "{got:#?}");
        assert!(got[4].starts_with("t.matchExpressions[4].operator: Invalid value: \"Near\""), "{got:#?}");
        assert!(
            got[5].starts_with("t.matchFields[1].key: Unsupported value: \"spec.unschedulable\""),
            "{got:#?}"
        );
        assert!(got[6].starts_with("t.matchFields[2].operator: Invalid value: \"Exists\""), "{got:#?}");

        let list: Vec<Toleration> = serde_json::from_value(serde_json::json!([
            {"key": "spot", "operator": "Exists", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {"key": "a", "operator": "Equal", "value": "b", "effect": "NoExecute", "tolerationSeconds": 30},
            {"value": "x"},
            {"key": "k", "operator": "Exists", "value": "v"},
            {"key": "k", "operator": "Sometimes", "effect": "Never", "tolerationSeconds": 1}
        ]))
        .unwrap();
        let mut errors = Vec::new();
        tolerations("t", &list, &mut errors);
        let got = fields(&errors);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].starts_with("t[3].operator: Invalid value: \"\""), "{got:#?}");
        assert!(got[1].starts_with("t[4].operator: Invalid value"), "{got:#?}");
        assert!(got[2].starts_with("t[5].effect: Invalid value: \"Never\""), "{got:#?}");
        assert!(got[3].starts_with("t[5].operator: Unsupported value: \"Sometimes\""), "{got:#?}");
        assert!(got[4].starts_with("t[5].effect: Unsupported value: \"Never\""), "{got:#?}");
    }
}
