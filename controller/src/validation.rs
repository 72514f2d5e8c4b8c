//! Validating webhooks: each kind's rules, as OpenKruise v1.9.0 checks them, as pure
//! functions of the new object (and the old one on update) returning every broken
//! rule with its field path.

use std::{fmt, marker::PhantomData, sync::Arc};

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation as AdmissionOperation},
};
use serde::de::DeserializeOwned;
use stevedore_proto::crd::{
    POLICY_GROUP,
    pod_unavailable_budget::{
        PROTECT_OPERATIONS_ANNOTATION, PROTECT_TOTAL_REPLICAS_ANNOTATION, PodUnavailableBudget,
    },
};

use crate::webhook::{Admit, Operation, Registry, refused, typed};

pub mod field;
pub mod jobs;
mod pod;
mod rules;
mod workloads;

pub use field::{ErrorType, FieldError};
use field::{invalid, required};

/// The rules of one kind: the new object, and the old one on update.
pub type Rules<K> = fn(&K, Option<&K>) -> Vec<FieldError>;

/// The HTTP code a refusal carries, from the operation and the broken rules: the
/// code OpenKruise's handler for the kind answers with.
pub type Code = fn(&AdmissionOperation, &[FieldError]) -> u16;

/// Always `C`: 422 (the workloads' field errors), 400 (most jobs), 500 (where
/// OpenKruise's handler reports field errors as its own failure).
pub fn always<const C: u16>(_: &AdmissionOperation, _: &[FieldError]) -> u16 {
    C
}

/// Admits objects of kind `K` that break none of its rules; refuses the others
/// with every broken rule, as Kubernetes aggregates a `field.ErrorList`, and the
/// kind's HTTP code. An object the type cannot read is refused with 400, as
/// OpenKruise's decoder does.
pub struct Validator<K> {
    rules: Rules<K>,
    code: Code,
    kind: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for Validator<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator").field("kind", &std::any::type_name::<K>()).finish()
    }
}

impl<K> Validator<K> {
    /// A validator applying `rules`, refusing with 422.
    pub fn new(rules: Rules<K>) -> Self {
        Self { rules, code: always::<422>, kind: PhantomData }
    }

    /// Refuses with the code `code` picks.
    #[must_use]
    pub fn code(mut self, code: Code) -> Self {
        self.code = code;
        self
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
            Err(e) => return refused(req, 400, e),
        };
        let old = match (&req.old_object, req.operation == AdmissionOperation::Update) {
            (Some(o), true) => match typed::<K>(o) {
                Ok(k) => Some(k),
                Err(e) => return refused(req, 400, format!("the stored object: {e}")),
            },
            _ => None,
        };
        let errors = (self.rules)(&new, old.as_ref());
        if errors.is_empty() {
            resp
        } else {
            // a value Go could not decode fails the whole request with 400, as the
            // decoder would have, whatever the kind's code for broken rules
            let code =
                if errors.iter().any(|e| e.unreadable) { 400 } else { (self.code)(&req.operation, &errors) };
            refused(req, code, field::aggregate(&errors))
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
        Arc::new(Validator::new(pod_unavailable_budget).code(always::<400>)),
    );
    workloads::register(registry);
    jobs::register(registry);
}

/// PodUnavailableBudget (`policy.kruise.io/v1alpha1`), as OpenKruise's
/// `validatingPodUnavailableBudgetFn`: the protect-operations annotation lists only
/// DELETE, UPDATE, EVICT and RESIZE, the total-replicas annotation is an int32;
/// exactly one of selector and targetRef (a complete targetRef with a well-formed
/// apiVersion; a well-formed, non-empty selector), exactly one of maxUnavailable and
/// minAvailable (ints >= 0 or whole percentages up to 100%), and on update the same
/// selector and targetRef. (That no two budgets in a namespace cover the same pods
/// needs the API server and lives with the PUB controller.)
pub fn pod_unavailable_budget(
    new: &PodUnavailableBudget,
    old: Option<&PodUnavailableBudget>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let annotations = new.metadata.annotations.clone().unwrap_or_default();
    if let Some(operations) = annotations.get(PROTECT_OPERATIONS_ANNOTATION)
        && operations.split(',').any(|op| !PROTECTED_OPERATIONS.contains(&op))
    {
        errors.push(field::internal(
            "metadata",
            format!("annotation[{PROTECT_OPERATIONS_ANNOTATION}] is invalid"),
        ));
    }
    if let Some(replicas) = annotations.get(PROTECT_TOTAL_REPLICAS_ANNOTATION)
        && replicas.parse::<i32>().is_err()
    {
        errors.push(field::internal(
            "metadata",
            format!("annotation[{PROTECT_TOTAL_REPLICAS_ANNOTATION}] is invalid"),
        ));
    }
    let spec = &new.spec;
    match (&spec.selector, &spec.target_ref) {
        (Some(_), Some(_)) => {
            errors.push(required("spec.selector, targetRef", "selector and targetRef are mutually exclusive"))
        }
        (None, None) => {
            errors.push(required("spec.selector, targetRef", "one of selector and targetRef is required"))
        }
        (Some(sel), None) => {
            rules::label_selector("spec.selector", sel, &mut errors);
            if rules::selector_is_empty(sel) {
                errors.push(invalid("spec.selector", sel, "an empty selector selects nothing to protect"));
            }
        }
        (None, Some(target)) => {
            let fields = [&target.api_version, &target.kind, &target.name];
            if fields.iter().any(|v| v.as_deref().is_none_or(str::is_empty)) {
                // OpenKruise names the field by its Go name
                errors.push(invalid(
                    "spec.TargetReference",
                    target,
                    "empty TargetReference is not valid for PodUnavailableBudget.",
                ));
            }
            let api_version = target.api_version.as_deref().unwrap_or_default();
            if api_version.matches('/').count() > 1 {
                errors.push(invalid(
                    "spec.TargetReference",
                    target,
                    format!("unexpected GroupVersion string: {api_version}"),
                ));
            }
        }
    }
    match (&spec.max_unavailable, &spec.min_available) {
        (Some(_), Some(_)) => errors.push(required(
            "spec.maxUnavailable, minAvailable",
            "maxUnavailable and minAvailable are mutually exclusive",
        )),
        (None, None) => errors.push(required(
            "spec.maxUnavailable, minAvailable",
            "one of maxUnavailable and minAvailable is required",
        )),
        (Some(v), None) => {
            rules::whole_int_or_percent("spec.maxUnavailable", v, true, &mut errors);
        }
        (None, Some(v)) => {
            rules::whole_int_or_percent("spec.minAvailable", v, true, &mut errors);
        }
    }
    if let Some(old) = old
        && (old.spec.selector != spec.selector || old.spec.target_ref != spec.target_ref)
    {
        errors.push(required("spec.selector, targetRef", "selector and targetRef cannot be changed"));
    }
    errors
}

/// The operations the protect-operations annotation may list.
const PROTECTED_OPERATIONS: [&str; 4] = ["DELETE", "UPDATE", "EVICT", "RESIZE"];

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
                "spec.selector, targetRef: Required value: selector and targetRef are mutually exclusive",
                "spec.maxUnavailable, minAvailable: Required value: maxUnavailable and minAvailable are mutually exclusive"
            ]
        );
        let neither = pub_(PodUnavailableBudgetSpec::default());
        assert_eq!(
            fields(&pod_unavailable_budget(&neither, None)),
            [
                "spec.selector, targetRef: Required value: one of selector and targetRef is required",
                "spec.maxUnavailable, minAvailable: Required value: one of maxUnavailable and minAvailable is required"
            ]
        );
        let mut empty = by_selector(IntOrString::Int(1));
        empty.spec.selector = Some(LabelSelector::default());
        assert_eq!(
            fields(&pod_unavailable_budget(&empty, None)),
            ["spec.selector: Invalid value: {}: an empty selector selects nothing to protect"]
        );
    }

    #[test]
    fn budgets_are_whole_percentages_up_to_100_or_non_negative_ints() {
        for (v, reason) in [
            (
                IntOrString::String("101%".into()),
                "spec.maxUnavailable: Invalid value: \"101%\": must not be more than 100%",
            ),
            (
                IntOrString::String("12.5%".into()),
                "spec.maxUnavailable: Invalid value: \"12.5%\": must be an integer or a whole percentage like \"25%\"",
            ),
            (
                IntOrString::String("3".into()),
                "spec.maxUnavailable: Invalid value: \"3\": must be an integer or a whole percentage like \"25%\"",
            ),
            (
                IntOrString::Int(-1),
                "spec.maxUnavailable: Invalid value: -1: must be an integer or a whole percentage like \"25%\"",
            ),
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
        assert_eq!(
            denied.result.message,
            "spec.maxUnavailable, minAvailable: Required value: maxUnavailable and minAvailable are mutually exclusive"
        );
        let mut garbage = good;
        garbage["spec"]["maxUnavailable"] = serde_json::json!([1]);
        let denied = handler.admit(&review("CREATE", garbage, serde_json::Value::Null));
        assert!(
            denied.result.message.starts_with("spec.maxUnavailable: invalid type"),
            "{}",
            denied.result.message
        );
        assert_eq!(denied.result.code, 400);
    }

    #[test]
    fn selector_and_target_are_immutable() {
        let old = by_selector(IntOrString::Int(1));
        let mut new = old.clone();
        new.spec.max_unavailable = Some(IntOrString::Int(2));
        assert!(pod_unavailable_budget(&new, Some(&old)).is_empty(), "the budget itself may change");
        new.spec.selector.as_mut().unwrap().match_labels = Some([("app".to_owned(), "db".to_owned())].into());
        assert_eq!(
            fields(&pod_unavailable_budget(&new, Some(&old))),
            ["spec.selector, targetRef: Required value: selector and targetRef cannot be changed"]
        );
    }
}
