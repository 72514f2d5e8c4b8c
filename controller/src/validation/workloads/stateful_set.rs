//! Advanced StatefulSet (`apps.kruise.io`, v1beta1; v1alpha1 objects are read as
//! v1beta1, whose fields are a superset).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stevedore_proto::crd::stateful_set::{
    PersistentVolumeClaimRetentionPolicy, PersistentVolumeClaimRetentionPolicyType, PodManagementPolicy,
    PodUpdatePolicyType, RollingUpdateStatefulSetStrategy, StatefulSetUpdateStrategyType,
    v1beta1::{StatefulSet, StatefulSetSpec},
};

use super::super::{
    FieldError, err,
    rules::{self, non_negative},
};

/// The readiness gate in-place updates need in the template.
const IN_PLACE_UPDATE_READY: &str = "InPlaceUpdateReady";

/// The most `rollingUpdate.minReadySeconds` may be.
const MAX_MIN_READY_SECONDS: i32 = 300;

/// Advanced StatefulSet: a DNS-subdomain name; podManagementPolicy set;
/// reserveOrdinals ints >= 0 or `"N-M"` ranges with N <= M; replicas >= 0; a
/// well-formed, non-empty selector that selects the template; the pod template's
/// basics; an update type set, with no rollingUpdate under OnDelete; under
/// RollingUpdate a partition >= 0, minReadySeconds from 0 to 300, maxUnavailable
/// and podUpdatePolicy set, the InPlaceUpdateReady readiness gate for the InPlace
/// policies, and unorderedUpdate only with Parallel (its priorities valid); both
/// maxUnavailable fields (rolling update and scale strategy) an int or whole
/// percentage that is at least 1 of 1, and other than the int 1 only with Parallel;
/// retention policies Retain or Delete. On update only replicas, ordinals, template,
/// reserveOrdinals, lifecycle, revisionHistoryLimit, the retention policy,
/// volumeClaimTemplates, volumeClaimUpdateStrategy, updateStrategy and
/// scaleStrategy may change (selector, serviceName and podManagementPolicy are
/// fixed), and under InPlaceOnly the template may change only images.
pub fn stateful_set(new: &StatefulSet, old: Option<&StatefulSet>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &new.spec;
    rules::object_name(&new.metadata, &mut errors);
    match &spec.pod_management_policy {
        None => errors.push(err("spec.podManagementPolicy", "is required")),
        Some(PodManagementPolicy::Other(other)) => errors
            .push(err("spec.podManagementPolicy", format!("{other:?} must be OrderedReady or Parallel"))),
        Some(_) => {}
    }
    reserve_ordinals(spec, &mut errors);
    if let Some(mu) = spec.scale_strategy.as_ref().and_then(|s| s.max_unavailable.as_ref()) {
        max_unavailable("spec.scaleStrategy.maxUnavailable", mu, spec, &mut errors);
    }
    update_strategy(spec, &mut errors);
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        retention_policy(policy, &mut errors);
    }
    non_negative("spec.replicas", spec.replicas.unwrap_or(1).into(), &mut errors);
    rules::workload_selector("spec.selector", &spec.selector, "statefulset", &mut errors);
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    rules::selects_template("spec.template", &spec.selector, labels, &mut errors);
    rules::workload_pod_template("spec.template", &spec.template, &mut errors);
    if let Some(old) = old {
        let mut frozen = spec.clone();
        let was = old.spec.clone();
        frozen.replicas = was.replicas;
        frozen.ordinals = was.ordinals;
        frozen.template = was.template;
        frozen.reserve_ordinals = was.reserve_ordinals;
        frozen.lifecycle = was.lifecycle;
        frozen.revision_history_limit = was.revision_history_limit;
        frozen.persistent_volume_claim_retention_policy = was.persistent_volume_claim_retention_policy;
        frozen.volume_claim_templates = was.volume_claim_templates;
        frozen.volume_claim_update_strategy = was.volume_claim_update_strategy;
        frozen.update_strategy = was.update_strategy;
        frozen.scale_strategy = was.scale_strategy;
        if frozen != old.spec {
            errors.push(err(
                "spec",
                "only replicas, ordinals, template, reserveOrdinals, lifecycle, revisionHistoryLimit, \
                 persistentVolumeClaimRetentionPolicy, volumeClaimTemplates, volumeClaimUpdateStrategy, \
                 updateStrategy and scaleStrategy may change",
            ));
        }
        let policy = rolling(spec).and_then(|r| r.pod_update_policy.as_ref());
        if policy == Some(&PodUpdatePolicyType::InPlaceOnly)
            && let Err(change) = rules::only_images_changed(&old.spec.template, &spec.template)
        {
            errors.push(err("spec.template", format!("InPlaceOnly allows only image changes, not {change}")));
        }
    }
    errors
}

fn rolling(spec: &StatefulSetSpec) -> Option<&RollingUpdateStatefulSetStrategy> {
    spec.update_strategy.as_ref().and_then(|u| u.rolling_update.as_ref())
}

fn reserve_ordinals(spec: &StatefulSetSpec, errors: &mut Vec<FieldError>) {
    for (i, ordinal) in spec.reserve_ordinals.iter().flatten().enumerate() {
        let field = format!("spec.reserveOrdinals[{i}]");
        match ordinal {
            IntOrString::Int(n) if *n < 0 => errors.push(err(&field, format!("{n} is negative"))),
            IntOrString::Int(_) => {}
            IntOrString::String(s) => {
                let range = s.split_once('-').and_then(|(a, b)| {
                    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
                    (digits(a) && digits(b))
                        .then(|| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))?
                });
                match range {
                    Some((a, b)) if a <= b => {}
                    Some(_) => errors.push(err(&field, format!("{s:?} starts after it ends"))),
                    None => errors.push(err(&field, format!("{s:?} is not an ordinal range like \"2-5\""))),
                }
            }
        }
    }
}

/// A maxUnavailable of the rolling update or the scale strategy.
fn max_unavailable(field: &str, value: &IntOrString, spec: &StatefulSetSpec, errors: &mut Vec<FieldError>) {
    if rules::whole_int_or_percent(field, value, false, errors).is_some() {
        let of_one = stevedore_proto::intstr::scaled(
            value,
            stevedore_proto::intstr::Percent::Integer,
            1,
            stevedore_proto::intstr::Rounding::Up,
        );
        if of_one.is_ok_and(|v| v < 1) {
            errors.push(err(field, "must not be less than 1"));
        }
    }
    if spec.pod_management_policy != Some(PodManagementPolicy::Parallel) && *value != IntOrString::Int(1) {
        errors.push(err(field, "values other than 1 need podManagementPolicy Parallel"));
    }
}

fn update_strategy(spec: &StatefulSetSpec, errors: &mut Vec<FieldError>) {
    const AT: &str = "spec.updateStrategy.rollingUpdate";
    match spec.update_strategy.as_ref().and_then(|u| u.type_.as_ref()) {
        None => errors.push(err("spec.updateStrategy.type", "is required")),
        Some(StatefulSetUpdateStrategyType::Other(other)) => errors
            .push(err("spec.updateStrategy.type", format!("{other:?} must be RollingUpdate or OnDelete"))),
        Some(StatefulSetUpdateStrategyType::OnDelete) => {
            if rolling(spec).is_some() {
                errors.push(err(AT, "is allowed only with updateStrategy RollingUpdate"));
            }
        }
        Some(StatefulSetUpdateStrategyType::RollingUpdate) => {
            let Some(r) = rolling(spec) else { return };
            non_negative(&format!("{AT}.partition"), r.partition.unwrap_or(0).into(), errors);
            let min_ready = r.min_ready_seconds.unwrap_or(0);
            non_negative(&format!("{AT}.minReadySeconds"), min_ready.into(), errors);
            if min_ready > MAX_MIN_READY_SECONDS {
                errors.push(err(&format!("{AT}.minReadySeconds"), "must be no more than 300 seconds"));
            }
            match &r.max_unavailable {
                None => errors.push(err(&format!("{AT}.maxUnavailable"), "is required")),
                Some(mu) => max_unavailable(&format!("{AT}.maxUnavailable"), mu, spec, errors),
            }
            match &r.pod_update_policy {
                None => errors.push(err(&format!("{AT}.podUpdatePolicy"), "is required")),
                Some(PodUpdatePolicyType::ReCreate) => {}
                Some(PodUpdatePolicyType::Other(other)) => errors.push(err(
                    &format!("{AT}.podUpdatePolicy"),
                    format!("{other:?} must be ReCreate, InPlaceIfPossible or InPlaceOnly"),
                )),
                Some(policy) => {
                    let gated = spec.template.spec.as_ref().and_then(|s| s.readiness_gates.as_ref());
                    if !gated.into_iter().flatten().any(|g| g.condition_type == IN_PLACE_UPDATE_READY) {
                        errors.push(err(
                            "spec.template.spec.readinessGates",
                            format!("must contain {IN_PLACE_UPDATE_READY} when podUpdatePolicy is {policy}"),
                        ));
                    }
                }
            }
            if let Some(unordered) = &r.unordered_update {
                if spec.pod_management_policy != Some(PodManagementPolicy::Parallel) {
                    errors.push(err(&format!("{AT}.unorderedUpdate"), "needs podManagementPolicy Parallel"));
                }
                if let Some(p) = &unordered.priority_strategy {
                    rules::priority_strategy(&format!("{AT}.unorderedUpdate.priorityStrategy"), p, errors);
                }
            }
        }
    }
}

fn retention_policy(policy: &PersistentVolumeClaimRetentionPolicy, errors: &mut Vec<FieldError>) {
    for (name, value) in [("whenDeleted", &policy.when_deleted), ("whenScaled", &policy.when_scaled)] {
        if !value.as_ref().is_some_and(PersistentVolumeClaimRetentionPolicyType::is_known) {
            errors.push(err(
                &format!("spec.persistentVolumeClaimRetentionPolicy.{name}"),
                "must be Retain or Delete",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{super::fixtures::*, *};
    use crate::{validation::register, webhook::Registry};
    use k8s_openapi::api::core::v1::PodReadinessGate;
    use serde_json::json;

    fn sts_json(version: &str) -> serde_json::Value {
        json!({
            "apiVersion": format!("apps.kruise.io/{version}"), "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 3, "revisionHistoryLimit": 10, "serviceName": "web",
                "podManagementPolicy": "OrderedReady",
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json(),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
                    "partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "ReCreate", "minReadySeconds": 0
                }}
            }
        })
    }

    /// A StatefulSet as the defaulting webhook leaves it.
    fn sts() -> StatefulSet {
        serde_json::from_value(sts_json("v1beta1")).unwrap()
    }

    fn check(f: impl FnOnce(&mut StatefulSet)) -> Vec<String> {
        let mut s = sts();
        f(&mut s);
        fields(&stateful_set(&s, None))
    }

    fn rolling(s: &mut StatefulSet) -> &mut RollingUpdateStatefulSetStrategy {
        s.spec.update_strategy.as_mut().unwrap().rolling_update.as_mut().unwrap()
    }

    const NONE: [&str; 0] = [];

    #[test]
    fn a_defaulted_stateful_set_is_accepted() {
        assert_eq!(check(|_| {}), NONE);
    }

    #[test]
    fn pod_management_policy_and_update_type_are_required() {
        assert_eq!(check(|s| s.spec.pod_management_policy = None), ["spec.podManagementPolicy: is required"]);
        assert_eq!(
            check(|s| s.spec.update_strategy.as_mut().unwrap().type_ = None),
            ["spec.updateStrategy.type: is required"]
        );
    }

    #[test]
    fn reserve_ordinals_are_non_negative_ints_or_ranges() {
        let set = |v: Vec<IntOrString>| move |s: &mut StatefulSet| s.spec.reserve_ordinals = Some(v);
        let r = |v: &str| IntOrString::String(v.into());
        assert_eq!(check(set(vec![IntOrString::Int(0), r("3-5"), r("7-7")])), NONE);
        assert_eq!(
            check(set(vec![IntOrString::Int(-1), r("5-3"), r("a-b"), r("3")])),
            [
                "spec.reserveOrdinals[0]: -1 is negative",
                "spec.reserveOrdinals[1]: \"5-3\" starts after it ends",
                "spec.reserveOrdinals[2]: \"a-b\" is not an ordinal range like \"2-5\"",
                "spec.reserveOrdinals[3]: \"3\" is not an ordinal range like \"2-5\"",
            ]
        );
    }

    #[test]
    fn on_delete_has_no_rolling_update() {
        let on_delete = |s: &mut StatefulSet| {
            s.spec.update_strategy.as_mut().unwrap().type_ = Some(StatefulSetUpdateStrategyType::OnDelete)
        };
        assert_eq!(
            check(on_delete),
            ["spec.updateStrategy.rollingUpdate: is allowed only with updateStrategy RollingUpdate"]
        );
        assert_eq!(
            check(|s| {
                on_delete(s);
                s.spec.update_strategy.as_mut().unwrap().rolling_update = None;
            }),
            NONE
        );
    }

    #[test]
    fn partition_and_min_ready_seconds_are_bounded() {
        assert_eq!(check(|s| rolling(s).min_ready_seconds = Some(300)), NONE);
        assert_eq!(
            check(|s| rolling(s).min_ready_seconds = Some(301)),
            ["spec.updateStrategy.rollingUpdate.minReadySeconds: must be no more than 300 seconds"]
        );
        assert_eq!(
            check(|s| rolling(s).partition = Some(-1)),
            ["spec.updateStrategy.rollingUpdate.partition: -1 must be greater than or equal to 0"]
        );
    }

    #[test]
    fn max_unavailable_is_at_least_one_and_above_one_needs_parallel() {
        let set = |v: IntOrString, parallel: bool| {
            move |s: &mut StatefulSet| {
                rolling(s).max_unavailable = Some(v);
                if parallel {
                    s.spec.pod_management_policy = Some(PodManagementPolicy::Parallel);
                }
            }
        };
        assert_eq!(check(set(IntOrString::String("50%".into()), true)), NONE);
        assert_eq!(
            check(set(IntOrString::Int(2), false)),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: values other than 1 need podManagementPolicy \
              Parallel"
            ]
        );
        assert_eq!(
            check(set(IntOrString::String("0%".into()), true)),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: must not be less than 1"]
        );
        assert_eq!(
            check(set(IntOrString::String("1.5%".into()), true)),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: \"1.5%\" must be a whole percentage like \"25%\""
            ]
        );
        assert_eq!(
            check(|s| rolling(s).max_unavailable = None),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: is required"]
        );
        assert_eq!(
            check(|s| {
                s.spec.scale_strategy = Some(Default::default());
                s.spec.scale_strategy.as_mut().unwrap().max_unavailable = Some(IntOrString::Int(0));
            }),
            [
                "spec.scaleStrategy.maxUnavailable: must not be less than 1",
                "spec.scaleStrategy.maxUnavailable: values other than 1 need podManagementPolicy Parallel"
            ]
        );
    }

    #[test]
    fn in_place_policies_need_the_readiness_gate() {
        let in_place =
            |s: &mut StatefulSet| rolling(s).pod_update_policy = Some(PodUpdatePolicyType::InPlaceIfPossible);
        assert_eq!(
            check(in_place),
            ["spec.template.spec.readinessGates: must contain InPlaceUpdateReady when podUpdatePolicy is \
              InPlaceIfPossible"]
        );
        assert_eq!(
            check(|s| {
                in_place(s);
                s.spec.template.spec.as_mut().unwrap().readiness_gates =
                    Some(vec![PodReadinessGate { condition_type: IN_PLACE_UPDATE_READY.into() }]);
            }),
            NONE
        );
        assert_eq!(
            check(|s| rolling(s).pod_update_policy = None),
            ["spec.updateStrategy.rollingUpdate.podUpdatePolicy: is required"]
        );
    }

    #[test]
    fn unordered_update_needs_parallel() {
        let unordered = |s: &mut StatefulSet| rolling(s).unordered_update = Some(Default::default());
        assert_eq!(
            check(unordered),
            ["spec.updateStrategy.rollingUpdate.unorderedUpdate: needs podManagementPolicy Parallel"]
        );
        assert_eq!(
            check(|s| {
                unordered(s);
                s.spec.pod_management_policy = Some(PodManagementPolicy::Parallel);
            }),
            NONE
        );
    }

    #[test]
    fn retention_policies_are_set() {
        let set = |deleted| {
            move |s: &mut StatefulSet| {
                s.spec.persistent_volume_claim_retention_policy = Some(PersistentVolumeClaimRetentionPolicy {
                    when_deleted: deleted,
                    when_scaled: Some(Default::default()),
                })
            }
        };
        assert_eq!(check(set(Some(Default::default()))), NONE);
        assert_eq!(
            check(set(None)),
            ["spec.persistentVolumeClaimRetentionPolicy.whenDeleted: must be Retain or Delete"]
        );
    }

    #[test]
    fn replicas_selector_and_template() {
        assert_eq!(
            check(|s| s.spec.replicas = Some(-1)),
            ["spec.replicas: -1 must be greater than or equal to 0"]
        );
        assert_eq!(
            check(|s| s.spec.selector = Default::default()),
            ["spec.selector: an empty selector is invalid for a statefulset"]
        );
        assert_eq!(
            check(|s| s.spec.template.metadata = None),
            ["spec.template.metadata.labels: the selector does not match them"]
        );
        assert_eq!(
            check(|s| s.spec.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into())),
            ["spec.template.spec.restartPolicy: \"OnFailure\" is not supported: only Always"]
        );
    }

    #[test]
    fn selector_service_name_and_policy_are_fixed() {
        let old = sts();
        let mut new = old.clone();
        new.spec.replicas = Some(5);
        new.spec.reserve_ordinals = Some(vec![IntOrString::Int(1)]);
        rolling(&mut new).partition = Some(2);
        assert_eq!(fields(&stateful_set(&new, Some(&old))), NONE);
        new.spec.service_name = Some("other".into());
        assert_eq!(
            fields(&stateful_set(&new, Some(&old))),
            ["spec: only replicas, ordinals, template, reserveOrdinals, lifecycle, revisionHistoryLimit, \
              persistentVolumeClaimRetentionPolicy, volumeClaimTemplates, volumeClaimUpdateStrategy, \
              updateStrategy and scaleStrategy may change"]
        );
    }

    #[test]
    fn in_place_only_updates_change_only_images() {
        let mut old = sts();
        rolling(&mut old).pod_update_policy = Some(PodUpdatePolicyType::InPlaceOnly);
        old.spec.template.spec.as_mut().unwrap().readiness_gates =
            Some(vec![PodReadinessGate { condition_type: IN_PLACE_UPDATE_READY.into() }]);
        let mut new = old.clone();
        new.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_eq!(fields(&stateful_set(&new, Some(&old))), NONE);
        new.spec.template.spec.as_mut().unwrap().host_network = Some(true);
        assert_eq!(
            fields(&stateful_set(&new, Some(&old))),
            ["spec.template: InPlaceOnly allows only image changes, not add /hostNetwork"]
        );
    }

    #[test]
    fn the_registry_judges_both_versions_at_one_path() {
        let mut registry = Registry::default();
        register(&mut registry);
        let handler = registry.admission_handler("/validate-apps-kruise-io-statefulset").unwrap();
        for version in ["v1alpha1", "v1beta1"] {
            let good = sts_json(version);
            let allowed = handler.admit(&review(version, "StatefulSet", "CREATE", good.clone(), json!(null)));
            assert!(allowed.allowed, "{version}: {}", allowed.result.message);
            let mut bad = good.clone();
            bad["spec"]["serviceName"] = json!("db");
            bad["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(3);
            let denied = handler.admit(&review(version, "StatefulSet", "UPDATE", bad, good));
            assert_eq!(
                denied.result.message,
                "spec.updateStrategy.rollingUpdate.maxUnavailable: values other than 1 need podManagementPolicy \
                 Parallel; spec: only replicas, ordinals, template, reserveOrdinals, lifecycle, \
                 revisionHistoryLimit, persistentVolumeClaimRetentionPolicy, volumeClaimTemplates, \
                 volumeClaimUpdateStrategy, updateStrategy and scaleStrategy may change",
                "{version}"
            );
        }
        let other = handler.admit(&review("v2", "StatefulSet", "CREATE", sts_json("v2"), json!(null)));
        assert_eq!(other.result.message, "unsupported version: \"v2\"");
    }
}
