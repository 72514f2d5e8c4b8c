//! Advanced DaemonSet (`apps.kruise.io`, v1alpha1 and v1beta1: the same rules, but
//! v1beta1 no longer knows the Surging rolling update type, and adds scaleStrategy).

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::core::ObjectMeta;
use stevedore_proto::{
    crd::{
        common::Lifecycle,
        daemon_set::{
            DaemonSetUpdateStrategy, DaemonSetUpdateStrategyType, RollingUpdateDaemonSet, RollingUpdateType,
            v1alpha1 as a1, v1beta1 as b1,
        },
    },
    intstr::IntOrPercent,
};

use super::super::{
    FieldError,
    field::{forbidden, invalid, not_supported, required},
    pod,
    rules::{self, non_negative},
};

/// The fields both versions share.
struct Common<'a> {
    meta: &'a ObjectMeta,
    selector: &'a LabelSelector,
    template: &'a PodTemplateSpec,
    update_strategy: Option<&'a DaemonSetUpdateStrategy>,
    min_ready_seconds: Option<i32>,
    revision_history_limit: Option<i32>,
    lifecycle: Option<&'a Lifecycle>,
    surging_allowed: bool,
    /// On update, the old object's selector.
    old_selector: Option<&'a LabelSelector>,
    /// The spec fields that may change, for the message when the selector did.
    may_change: &'static str,
}

/// v1alpha1 DaemonSet: see [`common`]; on update only template, updateStrategy,
/// lifecycle, burstReplicas, minReadySeconds and revisionHistoryLimit may change.
pub fn v1alpha1(new: &a1::DaemonSet, old: Option<&a1::DaemonSet>) -> Vec<FieldError> {
    let s = &new.spec;
    common(Common {
        meta: &new.metadata,
        selector: &s.selector,
        template: &s.template,
        update_strategy: s.update_strategy.as_ref(),
        min_ready_seconds: s.min_ready_seconds,
        revision_history_limit: s.revision_history_limit,
        lifecycle: s.lifecycle.as_ref(),
        surging_allowed: true,
        old_selector: old.map(|o| &o.spec.selector),
        may_change: "template, updateStrategy, lifecycle, burstReplicas, minReadySeconds and \
                     revisionHistoryLimit",
    })
}

/// v1beta1 DaemonSet: see [`common`], with no Surging type; on update scaleStrategy
/// may change as well.
pub fn v1beta1(new: &b1::DaemonSet, old: Option<&b1::DaemonSet>) -> Vec<FieldError> {
    let s = &new.spec;
    common(Common {
        meta: &new.metadata,
        selector: &s.selector,
        template: &s.template,
        update_strategy: s.update_strategy.as_ref(),
        min_ready_seconds: s.min_ready_seconds,
        revision_history_limit: s.revision_history_limit,
        lifecycle: s.lifecycle.as_ref(),
        surging_allowed: false,
        old_selector: old.map(|o| &o.spec.selector),
        may_change: "template, updateStrategy, lifecycle, burstReplicas, minReadySeconds, \
                     revisionHistoryLimit and scaleStrategy",
    })
}

/// Both versions: a DNS-subdomain name; a well-formed, non-empty selector that
/// selects the template; the pod template's basics; minReadySeconds and
/// revisionHistoryLimit >= 0; no inPlaceUpdate hook; an update type of
/// RollingUpdate (with its rollingUpdate) or OnDelete; exactly one of maxUnavailable
/// and maxSurge non-zero, each an int or whole percentage up to 100%; maxSurge 0
/// for InPlaceIfPossible and maxUnavailable 0 for Surging (v1alpha1 only); a
/// partition that is an int >= 0 or a whole percentage up to 100%. On update, every
/// field of the spec but the selector may change (in both versions), so a changed
/// selector is the one change refused.
fn common(ds: Common<'_>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    rules::object_name(ds.meta, &mut errors);
    rules::label_selector("spec.selector", ds.selector, &mut errors);
    let labels = ds.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    rules::selects_template("spec.template", ds.selector, labels, &mut errors);
    if rules::selector_is_empty(ds.selector) {
        errors.push(invalid("spec.selector", ds.selector, "an empty selector is invalid for a daemonset"));
    }
    pod::workload_template("spec.template", ds.template, &[], &mut errors);
    non_negative("spec.minReadySeconds", ds.min_ready_seconds.unwrap_or(0).into(), &mut errors);
    update_strategy(ds.update_strategy, ds.surging_allowed, &mut errors);
    if let Some(limit) = ds.revision_history_limit {
        non_negative("spec.revisionHistoryLimit", limit.into(), &mut errors);
    }
    if ds.lifecycle.is_some_and(|l| l.in_place_update.is_some()) {
        errors.push(forbidden("spec.lifecycle.inPlaceUpdate", "is not supported for a daemonset"));
    }
    if ds.old_selector.is_some_and(|old| old != ds.selector) {
        errors.push(forbidden("spec", format!("only {} may change", ds.may_change)));
    }
    errors
}

fn update_strategy(
    strategy: Option<&DaemonSetUpdateStrategy>,
    surging_allowed: bool,
    errors: &mut Vec<FieldError>,
) {
    match strategy.and_then(|s| s.type_.as_ref()) {
        Some(DaemonSetUpdateStrategyType::OnDelete) => {}
        Some(DaemonSetUpdateStrategyType::RollingUpdate) => {
            match strategy.and_then(|s| s.rolling_update.as_ref()) {
                None => errors.push(required("spec.updateStrategy.rollingUpdate", "")),
                Some(r) => rolling_update(r, surging_allowed, errors),
            }
        }
        other => errors.push(not_supported(
            "spec.updateStrategy.type",
            other.map_or("", DaemonSetUpdateStrategyType::as_str),
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

fn rolling_update(r: &RollingUpdateDaemonSet, surging_allowed: bool, errors: &mut Vec<FieldError>) {
    const AT: &str = "spec.updateStrategy.rollingUpdate";
    // A malformed value counts as set (OpenKruise reads it as 0 and lets it through;
    // refusing it is kinder than a controller that cannot parse it).
    let non_zero = |field: &str, v: Option<&IntOrString>, errors: &mut Vec<FieldError>| {
        v.is_some_and(|v| {
            let parsed = stevedore_proto::intstr::parse(v, stevedore_proto::intstr::Percent::Integer);
            let zero = matches!(parsed, Ok(IntOrPercent::Int(0))) || parsed == Ok(IntOrPercent::Percent(0.0));
            if !zero {
                rules::whole_int_or_percent(&format!("{AT}.{field}"), v, true, errors);
            }
            !zero
        })
    };
    let unavailable = non_zero("maxUnavailable", r.max_unavailable.as_ref(), errors);
    let surge = non_zero("maxSurge", r.max_surge.as_ref(), errors);
    match (unavailable, surge) {
        (true, true) => errors.push(invalid(
            &format!("{AT}.maxSurge"),
            &r.max_surge,
            "must be 0 when maxUnavailable is not",
        )),
        (false, false) => {
            errors.push(required(&format!("{AT}.maxUnavailable"), "must not be 0 when maxSurge is 0"))
        }
        _ => {}
    }
    match &r.type_ {
        None | Some(RollingUpdateType::Standard) => {}
        Some(RollingUpdateType::Other(other)) => {
            let supported: &[&str] = if surging_allowed {
                &["Standard", "Surging", "InPlaceIfPossible"]
            } else {
                &["Standard", "InPlaceIfPossible"]
            };
            errors.push(not_supported(&format!("{AT}.rollingUpdateType"), other, supported))
        }
        Some(RollingUpdateType::InPlaceIfPossible) if surge => {
            errors.push(required(&format!("{AT}.maxSurge"), "must be 0 for InPlaceIfPossible"));
        }
        Some(RollingUpdateType::InPlaceIfPossible) => {}
        Some(RollingUpdateType::Surging) if !surging_allowed => errors.push(not_supported(
            &format!("{AT}.rollingUpdateType"),
            "Surging",
            &["Standard", "InPlaceIfPossible"],
        )),
        Some(RollingUpdateType::Surging) if unavailable => {
            errors.push(required(&format!("{AT}.maxUnavailable"), "must be 0 for Surging"));
        }
        Some(RollingUpdateType::Surging) => {}
    }
    if let Some(p) = &r.partition {
        rules::whole_int_or_percent(&format!("{AT}.partition"), p, true, errors);
    }
}

#[cfg(test)]
mod tests {
    use super::{super::fixtures::*, *};
    use crate::{validation::register, webhook::Registry};
    use serde_json::json;

    const NONE: [&str; 0] = [];

    fn ds_json(version: &str) -> serde_json::Value {
        json!({
            "apiVersion": format!("apps.kruise.io/{version}"), "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "burstReplicas": 250, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json(),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
                    "rollingUpdateType": "Standard", "maxUnavailable": 1, "maxSurge": 0
                }}
            }
        })
    }

    fn check(f: impl FnOnce(&mut a1::DaemonSet)) -> Vec<String> {
        let mut d: a1::DaemonSet = serde_json::from_value(ds_json("v1alpha1")).unwrap();
        f(&mut d);
        fields(&v1alpha1(&d, None))
    }

    fn check_b1(f: impl FnOnce(&mut b1::DaemonSet)) -> Vec<String> {
        let mut d: b1::DaemonSet = serde_json::from_value(ds_json("v1beta1")).unwrap();
        f(&mut d);
        fields(&v1beta1(&d, None))
    }

    fn ru(d: &mut a1::DaemonSet) -> &mut RollingUpdateDaemonSet {
        d.spec.update_strategy.as_mut().unwrap().rolling_update.as_mut().unwrap()
    }

    fn s(v: &str) -> Option<IntOrString> {
        Some(IntOrString::String(v.into()))
    }

    fn i(v: i32) -> Option<IntOrString> {
        Some(IntOrString::Int(v))
    }

    #[test]
    fn a_defaulted_daemon_set_is_accepted() {
        assert_eq!(check(|_| {}), NONE);
        assert_eq!(check_b1(|_| {}), NONE);
    }

    #[test]
    fn exactly_one_of_max_unavailable_and_max_surge_is_non_zero() {
        assert_eq!(check(|d| (ru(d).max_unavailable, ru(d).max_surge) = (s("0%"), s("100%"))), NONE);
        assert_eq!(
            check(|d| (ru(d).max_unavailable, ru(d).max_surge) = (i(1), i(1))),
            [
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: must be 0 when maxUnavailable is not"
            ]
        );
        assert_eq!(
            check(|d| (ru(d).max_unavailable, ru(d).max_surge) = (i(0), None)),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: must not be 0 when maxSurge is 0"
            ]
        );
    }

    #[test]
    fn budgets_are_whole_percentages_up_to_100() {
        assert_eq!(
            check(|d| ru(d).max_unavailable = s("150%")),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be more than 100%"
            ]
        );
        assert_eq!(
            check(|d| ru(d).max_unavailable = s("2.5%")),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"2.5%\": must be an integer or a whole percentage like \"25%\""
            ]
        );
    }

    #[test]
    fn the_rolling_type_limits_the_budgets() {
        let set = |t: RollingUpdateType, mu, ms| {
            move |d: &mut a1::DaemonSet| {
                (ru(d).type_, ru(d).max_unavailable, ru(d).max_surge) = (Some(t), mu, ms)
            }
        };
        assert_eq!(check(set(RollingUpdateType::InPlaceIfPossible, i(1), i(0))), NONE);
        assert_eq!(check(set(RollingUpdateType::Surging, i(0), i(1))), NONE);
        assert_eq!(
            check(set(RollingUpdateType::InPlaceIfPossible, i(0), i(1))),
            ["spec.updateStrategy.rollingUpdate.maxSurge: Required value: must be 0 for InPlaceIfPossible"]
        );
        assert_eq!(
            check(set(RollingUpdateType::Surging, i(1), i(0))),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: must be 0 for Surging"]
        );
        assert_eq!(
            check_b1(|d| {
                let r = d.spec.update_strategy.as_mut().unwrap().rolling_update.as_mut().unwrap();
                r.type_ = Some(RollingUpdateType::Surging);
            }),
            [
                "spec.updateStrategy.rollingUpdate.rollingUpdateType: Unsupported value: \"Surging\": supported values: \"Standard\", \"InPlaceIfPossible\""
            ]
        );
    }

    #[test]
    fn partition_is_an_int_or_percent_up_to_100() {
        assert_eq!(check(|d| ru(d).partition = s("100%")), NONE);
        assert_eq!(check(|d| ru(d).partition = i(1000)), NONE);
        assert_eq!(
            check(|d| ru(d).partition = i(-1)),
            [
                "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be an integer or a whole percentage like \"25%\""
            ]
        );
        assert_eq!(
            check(|d| ru(d).partition = s("101%")),
            [
                "spec.updateStrategy.rollingUpdate.partition: Invalid value: \"101%\": must not be more than 100%"
            ]
        );
    }

    #[test]
    fn the_update_type_and_rolling_update_are_required() {
        assert_eq!(
            check(|d| d.spec.update_strategy = None),
            [
                "spec.updateStrategy.type: Unsupported value: \"\": supported values: \"RollingUpdate\", \"OnDelete\""
            ]
        );
        assert_eq!(
            check(|d| d.spec.update_strategy.as_mut().unwrap().rolling_update = None),
            ["spec.updateStrategy.rollingUpdate: Required value"]
        );
        assert_eq!(
            check(|d| {
                let u = d.spec.update_strategy.as_mut().unwrap();
                (u.type_, u.rolling_update) = (Some(DaemonSetUpdateStrategyType::OnDelete), None);
            }),
            NONE
        );
    }

    #[test]
    fn counts_and_hooks() {
        assert_eq!(
            check(|d| (d.spec.min_ready_seconds, d.spec.revision_history_limit) = (Some(-1), Some(-1))),
            [
                "spec.minReadySeconds: Invalid value: -1: must not be negative",
                "spec.revisionHistoryLimit: Invalid value: -1: must not be negative"
            ]
        );
        assert_eq!(
            check(|d| d.spec.lifecycle =
                Some(Lifecycle { pre_delete: Some(Default::default()), ..Default::default() })),
            NONE
        );
        assert_eq!(
            check(|d| d.spec.lifecycle =
                Some(Lifecycle { in_place_update: Some(Default::default()), ..Default::default() })),
            ["spec.lifecycle.inPlaceUpdate: Forbidden: is not supported for a daemonset"]
        );
    }

    #[test]
    fn selector_and_template() {
        assert_eq!(
            check(|d| d.spec.selector = Default::default()),
            ["spec.selector: Invalid value: {}: an empty selector is invalid for a daemonset"]
        );
        assert_eq!(
            check(|d| d.spec.template.metadata = None),
            ["spec.template.metadata.labels: Invalid value: null: `selector` does not select these labels"]
        );
        assert_eq!(
            check(|d| d.spec.template.spec.as_mut().unwrap().containers[0].image = None),
            ["spec.template.spec.containers[0].image: Required value"]
        );
    }

    #[test]
    fn the_selector_is_fixed() {
        let old: b1::DaemonSet = serde_json::from_value(ds_json("v1beta1")).unwrap();
        let mut new = old.clone();
        new.spec.burst_replicas = i(10);
        new.spec.scale_strategy = Some(Default::default());
        assert_eq!(fields(&v1beta1(&new, Some(&old))), NONE);
        new.spec.selector.match_labels.as_mut().unwrap().insert("tier".into(), "x".into());
        new.spec
            .template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("tier".into(), "x".into());
        assert_eq!(
            fields(&v1beta1(&new, Some(&old))),
            [
                "spec: Forbidden: only template, updateStrategy, lifecycle, burstReplicas, minReadySeconds, revisionHistoryLimit and scaleStrategy may change"
            ]
        );
    }

    #[test]
    fn the_registry_judges_both_versions_at_one_path() {
        let mut registry = Registry::default();
        register(&mut registry);
        let handler = registry.admission_handler("/validate-apps-kruise-io-daemonset").unwrap();
        for version in ["v1alpha1", "v1beta1"] {
            let good = ds_json(version);
            let allowed = handler.admit(&review(version, "DaemonSet", "CREATE", good.clone(), json!(null)));
            assert!(allowed.allowed, "{version}: {}", allowed.result.message);
            let mut bad = good.clone();
            bad["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = json!("10%");
            let denied = handler.admit(&review(version, "DaemonSet", "UPDATE", bad, good));
            assert_eq!(
                denied.result.message,
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: \"10%\": must be 0 when maxUnavailable is not",
                "{version}"
            );
        }
        let mut surging = ds_json("v1beta1");
        surging["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] = json!("Surging");
        surging["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(0);
        surging["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = json!(1);
        let denied = handler.admit(&review("v1beta1", "DaemonSet", "CREATE", surging.clone(), json!(null)));
        assert!(!denied.allowed);
        surging["apiVersion"] = json!("apps.kruise.io/v1alpha1");
        let allowed = handler.admit(&review("v1alpha1", "DaemonSet", "CREATE", surging, json!(null)));
        assert!(allowed.allowed, "{}", allowed.result.message);
    }
}
