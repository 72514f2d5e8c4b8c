//! Validating webhooks: each kind's rules, as OpenKruise v1.9.0 checks them, as pure
//! functions of the new object (and the old one on update) returning every broken
//! rule with its field path.

use std::{fmt, marker::PhantomData, sync::Arc};

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation as AdmissionOperation},
};
use serde::de::DeserializeOwned;
use stevedore_proto::crd::{POLICY_GROUP, pod_unavailable_budget::PodUnavailableBudget};

use crate::webhook::{Admit, Operation, Registry, typed};

pub mod jobs;
mod rules;
mod workloads;

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, `spec.maxUnavailable`.
    pub field: String,
    /// Why the value is refused.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn err(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), reason: reason.into() }
}

/// The rules of one kind: the new object, and the old one on update.
pub type Rules<K> = fn(&K, Option<&K>) -> Vec<FieldError>;

/// Admits objects of kind `K` that break none of its rules.
pub struct Validator<K> {
    rules: Rules<K>,
    kind: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for Validator<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator").field("kind", &std::any::type_name::<K>()).finish()
    }
}

impl<K> Validator<K> {
    /// A validator applying `rules`.
    pub fn new(rules: Rules<K>) -> Self {
        Self { rules, kind: PhantomData }
    }
}

impl<K: DeserializeOwned + 'static> Admit for Validator<K> {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let resp = AdmissionResponse::from(req);
        let (Some(object), false) = (&req.object, req.operation == AdmissionOperation::Delete) else {
            return resp;
        };
        let new: K = match typed(object) {
            Ok(k) => k,
            Err(e) => return resp.deny(format!("invalid object: {e}")),
        };
        let old = match (&req.old_object, req.operation == AdmissionOperation::Update) {
            (Some(o), true) => match typed::<K>(o) {
                Ok(k) => Some(k),
                Err(e) => return resp.deny(format!("invalid stored object: {e}")),
            },
            _ => None,
        };
        let errors = (self.rules)(&new, old.as_ref());
        if errors.is_empty() {
            resp
        } else {
            resp.deny(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        }
    }
}

/// Registers every kind's validator.
pub fn register(registry: &mut Registry) {
    registry.admission(
        Operation::Validate,
        POLICY_GROUP,
        // OpenKruise serves it at a path without the version.
        "",
        "PodUnavailableBudget",
        Arc::new(Validator::new(pod_unavailable_budget)),
    );
    workloads::register(registry);
    jobs::register(registry);
}

/// PodUnavailableBudget (`policy.kruise.io/v1alpha1`): exactly one of selector and
/// targetRef, exactly one of maxUnavailable and minAvailable, a non-empty selector,
/// budgets of whole percentages up to 100% or non-negative integers, and a selector
/// or targetRef that never changes. (The rule that no two budgets in a namespace
/// cover the same pods needs the API server and lives with the PUB controller.)
pub fn pod_unavailable_budget(
    new: &PodUnavailableBudget,
    old: Option<&PodUnavailableBudget>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &new.spec;
    match (&spec.selector, &spec.target_ref) {
        (Some(_), Some(_)) => errors.push(err("spec", "selector and targetRef are mutually exclusive")),
        (None, None) => errors.push(err("spec", "one of selector and targetRef is required")),
        (Some(sel), None) => {
            if rules::selector_is_empty(sel) {
                errors.push(err("spec.selector", "must not be empty"));
            }
        }
        (None, Some(target)) => {
            for (field, value) in
                [("apiVersion", &target.api_version), ("kind", &target.kind), ("name", &target.name)]
            {
                if value.as_deref().is_none_or(str::is_empty) {
                    errors.push(err(&format!("spec.targetRef.{field}"), "is required"));
                }
            }
        }
    }
    match (&spec.max_unavailable, &spec.min_available) {
        (Some(_), Some(_)) => {
            errors.push(err("spec", "maxUnavailable and minAvailable are mutually exclusive"))
        }
        (None, None) => errors.push(err("spec", "one of maxUnavailable and minAvailable is required")),
        (Some(v), None) => {
            rules::whole_int_or_percent("spec.maxUnavailable", v, true, &mut errors);
        }
        (None, Some(v)) => {
            rules::whole_int_or_percent("spec.minAvailable", v, true, &mut errors);
        }
    }
    if let Some(old) = old {
        if old.spec.selector != spec.selector {
            errors.push(err("spec.selector", "is immutable"));
        }
        if old.spec.target_ref != spec.target_ref {
            errors.push(err("spec.targetRef", "is immutable"));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString};
    use stevedore_proto::crd::pod_unavailable_budget::{PodUnavailableBudgetSpec, TargetReference};

    fn pub_(spec: PodUnavailableBudgetSpec) -> PodUnavailableBudget {
        PodUnavailableBudget::new("web", spec)
    }

    fn by_selector(max_unavailable: IntOrString) -> PodUnavailableBudget {
        pub_(PodUnavailableBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            }),
            max_unavailable: Some(max_unavailable),
            ..Default::default()
        })
    }

    fn fields(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_budget_is_accepted() {
        assert!(pod_unavailable_budget(&by_selector(IntOrString::String("25%".into())), None).is_empty());
        assert!(pod_unavailable_budget(&by_selector(IntOrString::Int(2)), None).is_empty());
        let by_target = pub_(PodUnavailableBudgetSpec {
            target_ref: Some(TargetReference {
                api_version: Some("apps.kruise.io/v1alpha1".into()),
                kind: Some("CloneSet".into()),
                name: Some("web".into()),
            }),
            min_available: Some(IntOrString::String("100%".into())),
            ..Default::default()
        });
        assert!(pod_unavailable_budget(&by_target, None).is_empty());
    }

    #[test]
    fn exclusive_and_required_fields_are_enforced() {
        let mut both = by_selector(IntOrString::Int(1));
        both.spec.target_ref = Some(TargetReference::default());
        both.spec.min_available = Some(IntOrString::Int(1));
        assert_eq!(
            fields(&pod_unavailable_budget(&both, None)),
            [
                "spec: selector and targetRef are mutually exclusive",
                "spec: maxUnavailable and minAvailable are mutually exclusive"
            ]
        );
        let neither = pub_(PodUnavailableBudgetSpec::default());
        assert_eq!(
            fields(&pod_unavailable_budget(&neither, None)),
            [
                "spec: one of selector and targetRef is required",
                "spec: one of maxUnavailable and minAvailable is required"
            ]
        );
        let mut empty = by_selector(IntOrString::Int(1));
        empty.spec.selector = Some(LabelSelector::default());
        assert_eq!(fields(&pod_unavailable_budget(&empty, None)), ["spec.selector: must not be empty"]);
    }

    #[test]
    fn budgets_are_whole_percentages_up_to_100_or_non_negative_ints() {
        for (v, reason) in [
            (IntOrString::String("101%".into()), "spec.maxUnavailable: must not be greater than 100%"),
            (
                IntOrString::String("12.5%".into()),
                "spec.maxUnavailable: \"12.5%\" must be a whole percentage like \"25%\"",
            ),
            (
                IntOrString::String("3".into()),
                "spec.maxUnavailable: \"3\" is not an integer or a percentage like \"25%\"",
            ),
            (IntOrString::Int(-1), "spec.maxUnavailable: -1 must not be negative"),
        ] {
            assert_eq!(fields(&pod_unavailable_budget(&by_selector(v), None)), [reason]);
        }
    }

    fn review(
        operation: &str,
        object: serde_json::Value,
        old: serde_json::Value,
    ) -> AdmissionRequest<DynamicObject> {
        let review: kube::core::admission::AdmissionReview<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "1", "operation": operation, "name": "web", "namespace": "shop",
                "kind": {"group": "policy.kruise.io", "version": "v1alpha1", "kind": "PodUnavailableBudget"},
                "resource": {"group": "policy.kruise.io", "version": "v1alpha1", "resource": "podunavailablebudgets"},
                "userInfo": {}, "object": object, "oldObject": old, "dryRun": false
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    #[test]
    fn the_validator_reads_the_review_and_names_every_broken_rule() {
        let mut registry = Registry::default();
        register(&mut registry);
        let handler = registry.admission_handler("/validate-policy-kruise-io-podunavailablebudget").unwrap();
        let good = serde_json::to_value(by_selector(IntOrString::Int(1))).unwrap();
        assert!(handler.admit(&review("CREATE", good.clone(), serde_json::Value::Null)).allowed);
        let mut bad = good.clone();
        bad["spec"]["minAvailable"] = serde_json::json!("150%");
        let denied = handler.admit(&review("UPDATE", bad, good.clone()));
        assert!(!denied.allowed);
        assert_eq!(denied.result.message, "spec: maxUnavailable and minAvailable are mutually exclusive");
        let mut garbage = good;
        garbage["spec"]["maxUnavailable"] = serde_json::json!([1]);
        let denied = handler.admit(&review("CREATE", garbage, serde_json::Value::Null));
        assert!(denied.result.message.starts_with("invalid object:"), "{}", denied.result.message);
    }

    #[test]
    fn selector_and_target_are_immutable() {
        let old = by_selector(IntOrString::Int(1));
        let mut new = old.clone();
        new.spec.max_unavailable = Some(IntOrString::Int(2));
        assert!(pod_unavailable_budget(&new, Some(&old)).is_empty(), "the budget itself may change");
        new.spec.selector.as_mut().unwrap().match_labels = Some([("app".to_owned(), "db".to_owned())].into());
        assert_eq!(fields(&pod_unavailable_budget(&new, Some(&old))), ["spec.selector: is immutable"]);
    }
}
