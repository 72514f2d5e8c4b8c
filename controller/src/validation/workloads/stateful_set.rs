//! Advanced StatefulSet (`apps.kruise.io`, v1beta1; v1alpha1 objects are read as
//! v1beta1, whose fields are a superset).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stevedore_proto::crd::stateful_set::{
    PersistentVolumeClaimRetentionPolicy, PersistentVolumeClaimRetentionPolicyType, PodManagementPolicy,
    PodUpdatePolicyType, RollingUpdateStatefulSetStrategy, StatefulSetUpdateStrategyType,
    v1beta1::{StatefulSet, StatefulSetSpec},
};

use super::super::{
    FieldError,
    field::{forbidden, invalid, not_supported, required},
    pod,
    rules::{self, non_negative},
};

/// The readiness gate in-place updates need in the template.
const IN_PLACE_UPDATE_READY: &str = "InPlaceUpdateReady";

/// The most `rollingUpdate.minReadySeconds` may be.
const MAX_MIN_READY_SECONDS: i32 = 300;

/// Advanced StatefulSet: a DNS-label name (63 characters, no dots); podManagementPolicy set;
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
    // ValidateStatefulSetName: a DNS label since Kubernetes 1.27 (the name is part
    // of every pod's hostname)
    rules::object_name_by(&new.metadata, rules::dns1123_label, &mut errors);
    match &spec.pod_management_policy {
        None => errors.push(required("spec.podManagementPolicy", "")),
        Some(PodManagementPolicy::Other(other)) => {
            errors.push(invalid("spec.podManagementPolicy", other, "must be OrderedReady or Parallel"))
        }
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
    // `ValidatePodTemplateSpecForStatefulSet`: the template's metadata, not its spec;
    // then restartPolicy and activeDeadlineSeconds, as OpenKruise adds
    pod::metadata("spec.template", &spec.template, &mut errors);
    pod::decoding::spec("spec.template.spec", &spec.template.spec.clone().unwrap_or_default(), &mut errors);
    let claim_specs = spec.volume_claim_templates.iter().flatten().map(|t| t.spec.as_ref());
    pod::decoding::claims("spec.volumeClaimTemplates", claim_specs, &mut errors);
    pod::restart_always_without_deadline(
        "spec.template",
        &spec.template.spec.clone().unwrap_or_default(),
        &mut errors,
    );
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
            errors.push(forbidden(
                "spec",
                "only replicas, ordinals, template, reserveOrdinals, lifecycle, revisionHistoryLimit, \
                 persistentVolumeClaimRetentionPolicy, volumeClaimTemplates, volumeClaimUpdateStrategy, \
                 updateStrategy and scaleStrategy may change",
            ));
        }
        // Advanced StatefulSet's rule matches `/containers/<n>/image` anywhere in the
        // path, so imagePullPolicy may change too
        let policy = rolling(spec).and_then(|r| r.pod_update_policy.as_ref());
        if policy == Some(&PodUpdatePolicyType::InPlaceOnly)
            && let Err(change) =
                rules::only_images_changed(&old.spec.template, &spec.template, rules::ImagePaths::Containing)
        {
            errors.push(forbidden(
                "spec.template",
                format!("InPlaceOnly may change only images, not {change}"),
            ));
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
            IntOrString::Int(n) if *n < 0 => errors.push(invalid(&field, n, "must not be negative")),
            IntOrString::Int(_) => {}
            IntOrString::String(s) => {
                let range = s.split_once('-').and_then(|(a, b)| {
                    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
                    (digits(a) && digits(b))
                        .then(|| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))?
                });
                match range {
                    Some((a, b)) if a <= b => {}
                    Some(_) => errors.push(invalid(&field, s, "the range starts after it ends")),
                    None => errors.push(invalid(&field, s, "not an ordinal range like \"2-5\"")),
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
            errors.push(invalid(field, value, "must not be less than 1"));
        }
    }
    if spec.pod_management_policy != Some(PodManagementPolicy::Parallel) && *value != IntOrString::Int(1) {
        errors.push(invalid(field, value, "values other than 1 need podManagementPolicy Parallel"));
    }
}

fn update_strategy(spec: &StatefulSetSpec, errors: &mut Vec<FieldError>) {
    const AT: &str = "spec.updateStrategy.rollingUpdate";
    match spec.update_strategy.as_ref().and_then(|u| u.type_.as_ref()) {
        None => errors.push(required("spec.updateStrategy", "")),
        Some(StatefulSetUpdateStrategyType::Other(other)) => {
            errors.push(invalid("spec.updateStrategy.type", other, "must be RollingUpdate or OnDelete"))
        }
        Some(StatefulSetUpdateStrategyType::OnDelete) => {
            if rolling(spec).is_some() {
                errors.push(invalid(AT, rolling(spec), "only allowed for updateStrategy RollingUpdate"));
            }
        }
        Some(StatefulSetUpdateStrategyType::RollingUpdate) => {
            let Some(r) = rolling(spec) else { return };
            non_negative(&format!("{AT}.partition"), r.partition.unwrap_or(0).into(), errors);
            let min_ready = r.min_ready_seconds.unwrap_or(0);
            non_negative(&format!("{AT}.minReadySeconds"), min_ready.into(), errors);
            if min_ready > MAX_MIN_READY_SECONDS {
                errors.push(invalid(
                    &format!("{AT}.minReadySeconds"),
                    min_ready,
                    "must be no more than 300 seconds",
                ));
            }
            match &r.max_unavailable {
                None => errors.push(required(&format!("{AT}.maxUnavailable"), "")),
                Some(mu) => max_unavailable(&format!("{AT}.maxUnavailable"), mu, spec, errors),
            }
            match &r.pod_update_policy {
                None => errors.push(required(&format!("{AT}.podUpdatePolicy"), "")),
                Some(PodUpdatePolicyType::ReCreate) => {}
                Some(PodUpdatePolicyType::Other(other)) => errors.push(invalid(
                    &format!("{AT}.podUpdatePolicy"),
                    other,
                    "must be ReCreate, InPlaceIfPossible or InPlaceOnly",
                )),
                Some(policy) => {
                    let gated = spec.template.spec.as_ref().and_then(|s| s.readiness_gates.as_ref());
                    if !gated.into_iter().flatten().any(|g| g.condition_type == IN_PLACE_UPDATE_READY) {
                        errors.push(invalid(
                            "spec.template.spec.readinessGates",
                            gated,
                            format!("must contain {IN_PLACE_UPDATE_READY} when podUpdatePolicy is {policy}"),
                        ));
                    }
                }
            }
            if let Some(unordered) = &r.unordered_update {
                if spec.pod_management_policy != Some(PodManagementPolicy::Parallel) {
                    errors.push(required(
                        &format!("{AT}.unorderedUpdate"),
                        "needs podManagementPolicy Parallel",
                    ));
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
            errors.push(not_supported(
                &format!("spec.persistentVolumeClaimRetentionPolicy.{name}"),
                value.as_ref().map_or("", PersistentVolumeClaimRetentionPolicyType::as_str),
                &["Retain", "Delete"],
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
        assert_eq!(
            check(|s| s.spec.pod_management_policy = None),
            ["spec.podManagementPolicy: Required value"]
        );
        assert_eq!(
            check(|s| s.spec.update_strategy.as_mut().unwrap().type_ = None),
            ["spec.updateStrategy: Required value"]
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
                "spec.reserveOrdinals[0]: Invalid value: -1: must not be negative",
                "spec.reserveOrdinals[1]: Invalid value: \"5-3\": the range starts after it ends",
                "spec.reserveOrdinals[2]: Invalid value: \"a-b\": not an ordinal range like \"2-5\"",
                "spec.reserveOrdinals[3]: Invalid value: \"3\": not an ordinal range like \"2-5\"",
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
            [
                "spec.updateStrategy.rollingUpdate: Invalid value: {\"maxUnavailable\":1,\"minReadySeconds\":0,\"partition\":0,\"podUpdatePolicy\":\"ReCreate\"}: only allowed for updateStrategy RollingUpdate"
            ]
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
            [
                "spec.updateStrategy.rollingUpdate.minReadySeconds: Invalid value: 301: must be no more than 300 seconds"
            ]
        );
        assert_eq!(
            check(|s| rolling(s).partition = Some(-1)),
            ["spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must not be negative"]
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
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 2: values other than 1 need podManagementPolicy Parallel"
            ]
        );
        assert_eq!(
            check(set(IntOrString::String("0%".into()), true)),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": must not be less than 1"
            ]
        );
        assert_eq!(
            check(set(IntOrString::String("1.5%".into()), true)),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"1.5%\": must be an integer or a whole percentage like \"25%\""
            ]
        );
        assert_eq!(
            check(|s| rolling(s).max_unavailable = None),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value"]
        );
        assert_eq!(
            check(|s| {
                s.spec.scale_strategy = Some(Default::default());
                s.spec.scale_strategy.as_mut().unwrap().max_unavailable = Some(IntOrString::Int(0));
            }),
            [
                "spec.scaleStrategy.maxUnavailable: Invalid value: 0: must not be less than 1",
                "spec.scaleStrategy.maxUnavailable: Invalid value: 0: values other than 1 need podManagementPolicy Parallel"
            ]
        );
    }

    #[test]
    fn in_place_policies_need_the_readiness_gate() {
        let in_place =
            |s: &mut StatefulSet| rolling(s).pod_update_policy = Some(PodUpdatePolicyType::InPlaceIfPossible);
        assert_eq!(
            check(in_place),
            [
                "spec.template.spec.readinessGates: Invalid value: null: must contain InPlaceUpdateReady when podUpdatePolicy is InPlaceIfPossible"
            ]
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
            ["spec.updateStrategy.rollingUpdate.podUpdatePolicy: Required value"]
        );
    }

    #[test]
    fn unordered_update_needs_parallel() {
        let unordered = |s: &mut StatefulSet| rolling(s).unordered_update = Some(Default::default());
        assert_eq!(
            check(unordered),
            [
                "spec.updateStrategy.rollingUpdate.unorderedUpdate: Required value: needs podManagementPolicy Parallel"
            ]
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
            [
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"\": supported values: \"Retain\", \"Delete\""
            ]
        );
    }

    #[test]
    fn replicas_selector_and_template() {
        assert_eq!(
            check(|s| s.spec.replicas = Some(-1)),
            ["spec.replicas: Invalid value: -1: must not be negative"]
        );
        assert_eq!(
            check(|s| s.spec.selector = Default::default()),
            ["spec.selector: Invalid value: {}: an empty selector is invalid for a statefulset"]
        );
        assert_eq!(
            check(|s| s.spec.template.metadata = None),
            ["spec.template.metadata.labels: Invalid value: null: `selector` does not select these labels"]
        );
        assert_eq!(
            check(|s| s.spec.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into())),
            [
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""
            ]
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
            [
                "spec: Forbidden: only replicas, ordinals, template, reserveOrdinals, lifecycle, revisionHistoryLimit, persistentVolumeClaimRetentionPolicy, volumeClaimTemplates, volumeClaimUpdateStrategy, updateStrategy and scaleStrategy may change"
            ]
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
            ["spec.template: Forbidden: InPlaceOnly may change only images, not add /hostNetwork"]
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
                "[spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 3: values other than 1 need podManagementPolicy Parallel, spec: Forbidden: only replicas, ordinals, template, reserveOrdinals, lifecycle, revisionHistoryLimit, persistentVolumeClaimRetentionPolicy, volumeClaimTemplates, volumeClaimUpdateStrategy, updateStrategy and scaleStrategy may change]",
                "{version}"
            );
        }
        let other = handler.admit(&review("v2", "StatefulSet", "CREATE", sts_json("v2"), json!(null)));
        assert_eq!(other.result.message, "unsupported version: v2");
    }
}
