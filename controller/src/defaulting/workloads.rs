//! The workloads' defaults, as OpenKruise v1.9.0's mutating webhooks set them:
//! CloneSet, Advanced StatefulSet, UnitedDeployment and Advanced DaemonSet.
//!
//! Pod templates get Kubernetes' pod defaults ([`pod::pod_spec`]) and claim
//! templates theirs ([`pod::claim_template`]) on CREATE and when the template
//! changed, as OpenKruise does; an update that leaves the template alone leaves it
//! as stored. No webhook defaults scaleStrategy: OpenKruise's only shows up as `{}`
//! because Go writes empty structs, which carries no meaning.

use std::sync::Arc;

use k8s_openapi::{api::core::v1::PodTemplateSpec, apimachinery::pkg::util::intstr::IntOrString};
use stevedore_proto::crd::{
    APPS_GROUP,
    clone_set::{CloneSet, CloneSetUpdateStrategyType},
    common::InPlaceUpdateStrategy,
    daemon_set::{
        DaemonSetUpdateStrategy, DaemonSetUpdateStrategyType, RollingUpdateType, v1alpha1 as ds_a1,
        v1beta1 as ds_b1,
    },
    stateful_set::{
        PersistentVolumeClaimRetentionPolicy, PersistentVolumeClaimRetentionPolicyType as Retention,
        PersistentVolumeClaimTemplate, PodManagementPolicy, PodUpdatePolicyType, StatefulSetUpdateStrategy,
        StatefulSetUpdateStrategyType, v1alpha1 as sts_a1, v1beta1 as sts_b1,
    },
    united_deployment::{ManualUpdate, UnitedDeployment, UnitedDeploymentUpdateStrategyType},
};

use super::{Defaulter, pod};
use crate::webhook::{ByVersion, Operation, Registry};

/// Registers the workloads' defaulters at OpenKruise's paths (StatefulSet and
/// DaemonSet at one path for both versions, each version defaulted as itself).
pub fn register(registry: &mut Registry) {
    registry.admission(
        Operation::Mutate,
        APPS_GROUP,
        "v1alpha1",
        "CloneSet",
        Arc::new(Defaulter::new(clone_set)),
    );
    registry.admission(
        Operation::Mutate,
        APPS_GROUP,
        "v1alpha1",
        "UnitedDeployment",
        Arc::new(Defaulter::new(united_deployment)),
    );
    registry.admission(
        Operation::Mutate,
        APPS_GROUP,
        "",
        "StatefulSet",
        Arc::new(
            ByVersion::new()
                .version("v1alpha1", Arc::new(Defaulter::<sts_a1::StatefulSet>::new(stateful_set_v1alpha1)))
                .version("v1beta1", Arc::new(Defaulter::<sts_b1::StatefulSet>::new(stateful_set_v1beta1))),
        ),
    );
    registry.admission(
        Operation::Mutate,
        APPS_GROUP,
        "",
        "DaemonSet",
        Arc::new(
            ByVersion::new()
                .version("v1alpha1", Arc::new(Defaulter::<ds_a1::DaemonSet>::new(daemon_set_v1alpha1)))
                .version("v1beta1", Arc::new(Defaulter::<ds_b1::DaemonSet>::new(daemon_set_v1beta1))),
        ),
    );
}

/// The pod template's and claim templates' defaults ([`pod::pod_spec`],
/// [`pod::claim_template`]), applied only when `inject` (on CREATE, or when the
/// template changed: re-defaulting a stored template on an unrelated update could
/// start a rollout).
fn templates(inject: bool, t: &mut PodTemplateSpec, claims: Option<&mut Vec<PersistentVolumeClaimTemplate>>) {
    if !inject {
        return;
    }
    pod::template(t);
    for c in claims.into_iter().flatten() {
        pod::claim_template(c);
    }
}

/// CloneSet (`SetDefaultsCloneSet`): replicas 1, revisionHistoryLimit 10, update type
/// ReCreate (an `inPlaceUpdateStrategy: {}` for the InPlace types), partition 0,
/// maxUnavailable 20%, maxSurge 0; the pod and claim templates' defaults on CREATE or
/// when the template changed.
pub fn clone_set(cs: &mut CloneSet, old: Option<&CloneSet>) {
    let inject = old.is_none_or(|o| o.spec.template != cs.spec.template);
    let spec = &mut cs.spec;
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    templates(inject, &mut spec.template, spec.volume_claim_templates.as_mut());
    let strategy = spec.update_strategy.get_or_insert_with(Default::default);
    match strategy.type_ {
        None => strategy.type_ = Some(CloneSetUpdateStrategyType::ReCreate),
        Some(CloneSetUpdateStrategyType::InPlaceIfPossible | CloneSetUpdateStrategyType::InPlaceOnly) => {
            strategy.in_place_update_strategy.get_or_insert_with(InPlaceUpdateStrategy::default);
        }
        Some(_) => {}
    }
    strategy.partition.get_or_insert(IntOrString::Int(0));
    strategy.max_unavailable.get_or_insert_with(|| IntOrString::String("20%".into()));
    strategy.max_surge.get_or_insert(IntOrString::Int(0));
}

/// What both StatefulSet versions default (`SetDefaultsStatefulSet`):
/// podManagementPolicy OrderedReady, update type RollingUpdate and under it partition
/// 0, maxUnavailable 1, podUpdatePolicy ReCreate and minReadySeconds 0; replicas 1,
/// revisionHistoryLimit 10; the pod and claim templates' defaults when `inject`.
fn stateful_set_common(
    inject: bool,
    policy: &mut Option<PodManagementPolicy>,
    update: &mut Option<StatefulSetUpdateStrategy>,
    replicas: &mut Option<i32>,
    history: &mut Option<i32>,
    pods: &mut PodTemplateSpec,
    claims: Option<&mut Vec<PersistentVolumeClaimTemplate>>,
) {
    policy.get_or_insert(PodManagementPolicy::OrderedReady);
    let update = update.get_or_insert_with(Default::default);
    let kind = update.type_.get_or_insert(StatefulSetUpdateStrategyType::RollingUpdate).clone();
    if kind == StatefulSetUpdateStrategyType::RollingUpdate {
        let rolling = update.rolling_update.get_or_insert_with(Default::default);
        rolling.partition.get_or_insert(0);
        rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
        rolling.pod_update_policy.get_or_insert(PodUpdatePolicyType::ReCreate);
        rolling.min_ready_seconds.get_or_insert(0);
    }
    replicas.get_or_insert(1);
    history.get_or_insert(10);
    if inject {
        pod::template(pods);
        for c in claims.into_iter().flatten() {
            pod::claim_template(c);
        }
    }
}

/// v1beta1 StatefulSet: [`stateful_set_common`], retention policies Retain (the
/// StatefulSetAutoDeletePVC gate is on by default; volumeClaimUpdateStrategy is
/// left alone, its gate being off), and no status.
pub fn stateful_set_v1beta1(sts: &mut sts_b1::StatefulSet, old: Option<&sts_b1::StatefulSet>) {
    let inject = old.is_none_or(|o| o.spec.template != sts.spec.template);
    let s = &mut sts.spec;
    stateful_set_common(
        inject,
        &mut s.pod_management_policy,
        &mut s.update_strategy,
        &mut s.replicas,
        &mut s.revision_history_limit,
        &mut s.template,
        s.volume_claim_templates.as_mut(),
    );
    let retention = s
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(PersistentVolumeClaimRetentionPolicy::default);
    retention.when_deleted.get_or_insert(Retention::Retain);
    retention.when_scaled.get_or_insert(Retention::Retain);
    sts.status = None;
}

/// v1alpha1 StatefulSet: [`stateful_set_common`] and no status (OpenKruise
/// defaults it as v1beta1 and converts back, dropping what v1alpha1 lacks).
pub fn stateful_set_v1alpha1(sts: &mut sts_a1::StatefulSet, old: Option<&sts_a1::StatefulSet>) {
    let inject = old.is_none_or(|o| o.spec.template != sts.spec.template);
    let s = &mut sts.spec;
    stateful_set_common(
        inject,
        &mut s.pod_management_policy,
        &mut s.update_strategy,
        &mut s.replicas,
        &mut s.revision_history_limit,
        &mut s.template,
        s.volume_claim_templates.as_mut(),
    );
    sts.status = None;
}

/// UnitedDeployment (`SetDefaultsUnitedDeployment`): revisionHistoryLimit 10, update
/// type Manual with `manualUpdate: {}`, the pod and claim defaults of a
/// statefulSetTemplate (OpenKruise touches no other template) on CREATE or when the
/// template changed, minReplicas 0 on every subset when some subset sets
/// minReplicas or maxReplicas and none sets replicas; no status. (spec.replicas is
/// not defaulted by the webhook.)
pub fn united_deployment(ud: &mut UnitedDeployment, old: Option<&UnitedDeployment>) {
    let inject = old.is_none_or(|o| o.spec.template != ud.spec.template);
    let spec = &mut ud.spec;
    spec.revision_history_limit.get_or_insert(10);
    let update = spec.update_strategy.get_or_insert_with(Default::default);
    let kind = update.type_.get_or_insert(UnitedDeploymentUpdateStrategyType::Manual).clone();
    if kind == UnitedDeploymentUpdateStrategyType::Manual {
        update.manual_update.get_or_insert_with(ManualUpdate::default);
    }
    if let Some(sts) = spec.template.as_mut().and_then(|t| t.stateful_set_template.as_mut()) {
        let spec = &mut sts.spec;
        let claims = spec.volume_claim_templates.take();
        let mut typed: Option<Vec<PersistentVolumeClaimTemplate>> =
            claims.map(|c| c.into_iter().map(Into::into).collect());
        templates(inject, &mut spec.template, typed.as_mut());
        spec.volume_claim_templates = typed.map(|t| t.into_iter().map(Into::into).collect());
    }
    let subsets = spec.topology.as_mut().and_then(|t| t.subsets.as_mut());
    if let Some(subsets) = subsets {
        let replicas = subsets.iter().any(|s| s.replicas.is_some());
        let capacity = subsets.iter().any(|s| s.min_replicas.is_some() || s.max_replicas.is_some());
        if capacity && !replicas {
            for s in subsets {
                s.min_replicas.get_or_insert(IntOrString::Int(0));
            }
        }
    }
    ud.status = None;
}

/// What both DaemonSet versions default: burstReplicas 250, update type
/// RollingUpdate with a rollingUpdate of type Standard and, when neither is set,
/// maxUnavailable 1 and maxSurge 0; revisionHistoryLimit 10. With `surging`
/// (v1alpha1), the deprecated Surging type first gets maxSurge 1 and
/// maxUnavailable 0 where unset, then becomes Standard.
fn daemon_set_common(
    burst: &mut Option<IntOrString>,
    update: &mut Option<DaemonSetUpdateStrategy>,
    history: &mut Option<i32>,
    surging: bool,
) {
    burst.get_or_insert(IntOrString::Int(250));
    let update = update.get_or_insert_with(Default::default);
    let kind = update.type_.get_or_insert(DaemonSetUpdateStrategyType::RollingUpdate).clone();
    if kind == DaemonSetUpdateStrategyType::RollingUpdate {
        let rolling = update.rolling_update.get_or_insert_with(Default::default);
        if surging && rolling.type_ == Some(RollingUpdateType::Surging) {
            rolling.max_surge.get_or_insert(IntOrString::Int(1));
            rolling.max_unavailable.get_or_insert(IntOrString::Int(0));
            rolling.type_ = Some(RollingUpdateType::Standard);
        }
        rolling.type_.get_or_insert(RollingUpdateType::Standard);
        if rolling.max_unavailable.is_none() && rolling.max_surge.is_none() {
            rolling.max_unavailable = Some(IntOrString::Int(1));
            rolling.max_surge = Some(IntOrString::Int(0));
        }
    }
    history.get_or_insert(10);
}

/// v1alpha1 DaemonSet: [`daemon_set_common`] with the Surging rewrite. (OpenKruise
/// applies no pod defaults to a DaemonSet's template.)
pub fn daemon_set_v1alpha1(ds: &mut ds_a1::DaemonSet, _old: Option<&ds_a1::DaemonSet>) {
    let s = &mut ds.spec;
    daemon_set_common(&mut s.burst_replicas, &mut s.update_strategy, &mut s.revision_history_limit, true);
}

/// v1beta1 DaemonSet: [`daemon_set_common`]; Surging is left for validation to refuse.
pub fn daemon_set_v1beta1(ds: &mut ds_b1::DaemonSet, _old: Option<&ds_b1::DaemonSet>) {
    let s = &mut ds.spec;
    daemon_set_common(&mut s.burst_replicas, &mut s.update_strategy, &mut s.revision_history_limit, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaulting::{Defaults, patch, register as register_all};
    use kube::core::{DynamicObject, admission::AdmissionRequest};
    use serde_json::{Value, json};

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    /// The patch `defaults` makes to `value`, as JSON.
    fn patch_of<K: serde::de::DeserializeOwned + serde::Serialize>(
        value: Value,
        defaults: Defaults<K>,
    ) -> Value {
        serde_json::to_value(patch(&object(value), None, defaults).unwrap()).unwrap()
    }

    fn pods() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    }

    /// The patch operations that fill the pod template at `at`.
    fn pod_ops(at: &str) -> Vec<Value> {
        let spec = format!("{at}/spec");
        let c = format!("{spec}/containers/0");
        vec![
            json!({"op": "add", "path": format!("{c}/imagePullPolicy"), "value": "Always"}),
            json!({"op": "add", "path": format!("{c}/terminationMessagePath"), "value": "/dev/termination-log"}),
            json!({"op": "add", "path": format!("{c}/terminationMessagePolicy"), "value": "File"}),
            json!({"op": "add", "path": format!("{spec}/dnsPolicy"), "value": "ClusterFirst"}),
            json!({"op": "add", "path": format!("{spec}/restartPolicy"), "value": "Always"}),
            json!({"op": "add", "path": format!("{spec}/schedulerName"), "value": "default-scheduler"}),
            json!({"op": "add", "path": format!("{spec}/securityContext"), "value": {}}),
            json!({"op": "add", "path": format!("{spec}/terminationGracePeriodSeconds"), "value": 30}),
        ]
    }

    fn sorted(mut ops: Vec<Value>) -> Vec<Value> {
        ops.sort_by_key(|o| o["path"].as_str().unwrap_or_default().to_owned());
        ops
    }

    fn ops(patch: Value) -> Vec<Value> {
        sorted(patch.as_array().unwrap().clone())
    }

    #[test]
    fn clone_set_defaults() {
        let cs = json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pods(),
                     "updateStrategy": {"type": "InPlaceIfPossible"}}
        });
        let mut want = pod_ops("/spec/template");
        want.extend([
            json!({"op": "add", "path": "/spec/replicas", "value": 1}),
            json!({"op": "add", "path": "/spec/revisionHistoryLimit", "value": 10}),
            json!({"op": "add", "path": "/spec/updateStrategy/inPlaceUpdateStrategy", "value": {}}),
            json!({"op": "add", "path": "/spec/updateStrategy/maxSurge", "value": 0}),
            json!({"op": "add", "path": "/spec/updateStrategy/maxUnavailable", "value": "20%"}),
            json!({"op": "add", "path": "/spec/updateStrategy/partition", "value": 0}),
        ]);
        assert_eq!(ops(patch_of(cs, clone_set as Defaults<CloneSet>)), sorted(want));
    }

    #[test]
    fn stateful_set_defaults_per_version() {
        let sts = |version: &str| {
            json!({
                "apiVersion": format!("apps.kruise.io/{version}"), "kind": "StatefulSet",
                "metadata": {"name": "web"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": pods()},
                "status": {"replicas": 3, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0,
                           "updatedReplicas": 0}
            })
        };
        let mut want = pod_ops("/spec/template");
        want.extend([
            json!({"op": "add", "path": "/spec/podManagementPolicy", "value": "OrderedReady"}),
            json!({"op": "add", "path": "/spec/revisionHistoryLimit", "value": 10}),
            json!({"op": "add", "path": "/spec/updateStrategy", "value": {"type": "RollingUpdate", "rollingUpdate": {
                "partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "ReCreate", "minReadySeconds": 0}}}),
            json!({"op": "remove", "path": "/status"}),
        ]);
        let a1 = ops(patch_of(sts("v1alpha1"), stateful_set_v1alpha1 as Defaults<sts_a1::StatefulSet>));
        assert_eq!(a1, sorted(want.clone()));
        want.push(json!({"op": "add", "path": "/spec/persistentVolumeClaimRetentionPolicy",
                         "value": {"whenDeleted": "Retain", "whenScaled": "Retain"}}));
        let b1 = ops(patch_of(sts("v1beta1"), stateful_set_v1beta1 as Defaults<sts_b1::StatefulSet>));
        assert_eq!(b1, sorted(want));
    }

    #[test]
    fn united_deployment_defaults() {
        let ud = json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "UnitedDeployment", "metadata": {"name": "web"},
            "spec": {
                "replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                "template": {"statefulSetTemplate": {"spec": {"selector": {"matchLabels": {"app": "web"}},
                                                              "template": pods()}}},
                "topology": {"subsets": [{"name": "a", "maxReplicas": 2}, {"name": "b"}]}
            }
        });
        let mut want = pod_ops("/spec/template/statefulSetTemplate/spec/template");
        want.extend([
            json!({"op": "add", "path": "/spec/revisionHistoryLimit", "value": 10}),
            json!({"op": "add", "path": "/spec/topology/subsets/0/minReplicas", "value": 0}),
            json!({"op": "add", "path": "/spec/topology/subsets/1/minReplicas", "value": 0}),
            json!({"op": "add", "path": "/spec/updateStrategy", "value": {"type": "Manual", "manualUpdate": {}}}),
        ]);
        assert_eq!(ops(patch_of(ud, united_deployment as Defaults<UnitedDeployment>)), sorted(want));
    }

    /// The patch `defaults` makes to `value` on an UPDATE from `old`.
    fn update_patch_of<K: serde::de::DeserializeOwned + serde::Serialize>(
        value: Value,
        old: Value,
        defaults: Defaults<K>,
    ) -> Value {
        let old: K = serde_json::from_value(old).unwrap();
        serde_json::to_value(patch(&object(value), Some(&old), defaults).unwrap()).unwrap()
    }

    /// OpenKruise's mutating handlers (`cloneset_create_update_handler.go` and the
    /// StatefulSet, UnitedDeployment, BroadcastJob and AdvancedCronJob ones) inject
    /// the template defaults only on CREATE or when `spec.template` differs from the
    /// stored one: a label change on the object leaves a stored template as it is.
    #[test]
    fn templates_are_defaulted_on_create_or_when_they_change() {
        let cs = |labels: Value, image: &str| {
            json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                "metadata": {"name": "web", "labels": labels},
                "spec": {"replicas": 1, "revisionHistoryLimit": 10, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "app", "image": image}]}},
                         "updateStrategy": {"type": "ReCreate", "partition": 0, "maxUnavailable": "20%",
                                            "maxSurge": 0}}
            })
        };
        let stored = cs(json!({}), "nginx:1.27");
        let relabelled = cs(json!({"team": "a"}), "nginx:1.27");
        let none = update_patch_of(relabelled, stored.clone(), clone_set as Defaults<CloneSet>);
        assert_eq!(none, json!([]), "an unrelated change leaves the stored template alone");
        let new_image = cs(json!({}), "nginx:1.28");
        let changed = ops(update_patch_of(new_image, stored, clone_set as Defaults<CloneSet>));
        assert_eq!(changed, sorted(pod_ops("/spec/template")), "a changed template gets the pod defaults");
    }

    /// Claim templates get `volumeMode: Filesystem` and OpenKruise's
    /// `SetDefaults_PersistentVolumeClaim` (`status.phase: Pending`), in StatefulSets
    /// and in a UnitedDeployment's StatefulSet template.
    #[test]
    fn claim_templates_get_volume_mode() {
        let claims = json!([{"metadata": {"name": "data"},
                             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
        let sts = json!({
            "apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pods(), "volumeClaimTemplates": claims}
        });
        let out = ops(patch_of(sts, stateful_set_v1beta1 as Defaults<sts_b1::StatefulSet>));
        for want in [
            json!({"op": "add", "path": "/spec/volumeClaimTemplates/0/spec/volumeMode", "value": "Filesystem"}),
            json!({"op": "add", "path": "/spec/volumeClaimTemplates/0/status", "value": {"phase": "Pending"}}),
        ] {
            assert!(out.contains(&want), "missing {want} in {out:#?}");
        }
        let ud = json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "UnitedDeployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"statefulSetTemplate": {"spec": {"selector": {"matchLabels": {"app": "web"}},
                                                                   "template": pods(),
                                                                   "volumeClaimTemplates": claims}}},
                     "topology": {"subsets": [{"name": "a"}]}}
        });
        let out = ops(patch_of(ud, united_deployment as Defaults<UnitedDeployment>));
        let at = "/spec/template/statefulSetTemplate/spec/volumeClaimTemplates/0/spec/volumeMode";
        let want = json!({"op": "add", "path": at, "value": "Filesystem"});
        assert!(out.contains(&want), "missing {want} in {out:#?}");
    }

    #[test]
    fn daemon_set_defaults_per_version() {
        let ds = |version: &str, rolling: Value| {
            json!({
                "apiVersion": format!("apps.kruise.io/{version}"), "kind": "DaemonSet", "metadata": {"name": "agent"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pods(),
                         "updateStrategy": {"rollingUpdate": rolling}}
            })
        };
        let common = [
            json!({"op": "add", "path": "/spec/burstReplicas", "value": 250}),
            json!({"op": "add", "path": "/spec/revisionHistoryLimit", "value": 10}),
            json!({"op": "add", "path": "/spec/updateStrategy/type", "value": "RollingUpdate"}),
        ];
        let mut want = common.to_vec();
        want.extend([
            json!({"op": "add", "path": "/spec/updateStrategy/rollingUpdate/maxSurge", "value": 1}),
            json!({"op": "add", "path": "/spec/updateStrategy/rollingUpdate/maxUnavailable", "value": 0}),
            json!({"op": "replace", "path": "/spec/updateStrategy/rollingUpdate/rollingUpdateType", "value": "Standard"}),
        ]);
        let surging = json!({"rollingUpdateType": "Surging"});
        let a1 =
            ops(patch_of(ds("v1alpha1", surging.clone()), daemon_set_v1alpha1 as Defaults<ds_a1::DaemonSet>));
        assert_eq!(a1, sorted(want), "v1alpha1 rewrites Surging, and leaves the pod template alone");
        let mut want = common.to_vec();
        want.extend([
            json!({"op": "add", "path": "/spec/updateStrategy/rollingUpdate/maxSurge", "value": 0}),
            json!({"op": "add", "path": "/spec/updateStrategy/rollingUpdate/maxUnavailable", "value": 1}),
        ]);
        let b1 = ops(patch_of(ds("v1beta1", surging), daemon_set_v1beta1 as Defaults<ds_b1::DaemonSet>));
        assert_eq!(b1, sorted(want), "v1beta1 leaves Surging for validation to refuse");
    }

    fn review(version: &str, kind: &str, object: Value) -> AdmissionRequest<DynamicObject> {
        let review: kube::core::admission::AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "1", "operation": "CREATE", "name": "web", "namespace": "shop",
                "kind": {"group": "apps.kruise.io", "version": version, "kind": kind},
                "resource": {"group": "apps.kruise.io", "version": version,
                             "resource": format!("{}s", kind.to_lowercase())},
                "userInfo": {}, "object": object, "dryRun": false
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    /// The object the registry's handler at `path` makes of `object`.
    fn mutated(path: &str, version: &str, kind: &str, object: Value) -> Value {
        let mut registry = Registry::default();
        register_all(&mut registry);
        let resp = registry.admission_handler(path).unwrap().admit(&review(version, kind, object.clone()));
        assert!(resp.allowed, "{}", resp.result.message);
        let patch: json_patch::Patch = serde_json::from_slice(&resp.patch.expect("a patch")).unwrap();
        let mut out = object;
        json_patch::patch(&mut out, &patch).unwrap();
        out
    }

    #[test]
    fn the_registry_defaults_each_kind() {
        let meta = json!({"name": "web", "namespace": "shop"});
        let selector = json!({"matchLabels": {"app": "web"}});
        let cs = json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": meta,
                        "spec": {"selector": selector, "template": pods()}});
        let out = mutated("/mutate-apps-kruise-io-v1alpha1-cloneset", "v1alpha1", "CloneSet", cs);
        assert_eq!(out["spec"]["updateStrategy"]["type"], "ReCreate");
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");

        for version in ["v1alpha1", "v1beta1"] {
            let sts = json!({"apiVersion": format!("apps.kruise.io/{version}"), "kind": "StatefulSet",
                             "metadata": meta, "spec": {"selector": selector, "template": pods()}});
            let out = mutated("/mutate-apps-kruise-io-statefulset", version, "StatefulSet", sts);
            assert_eq!(out["spec"]["podManagementPolicy"], "OrderedReady", "{version}");
            let retention = &out["spec"]["persistentVolumeClaimRetentionPolicy"];
            assert_eq!(retention.is_null(), version == "v1alpha1", "{version}: {retention}");

            let ds = json!({"apiVersion": format!("apps.kruise.io/{version}"), "kind": "DaemonSet",
                            "metadata": meta, "spec": {"selector": selector, "template": pods()}});
            let out = mutated("/mutate-apps-kruise-io-daemonset", version, "DaemonSet", ds);
            assert_eq!(out["spec"]["burstReplicas"], 250, "{version}");
        }

        let ud = json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "UnitedDeployment", "metadata": meta,
                        "spec": {"selector": selector}});
        let out =
            mutated("/mutate-apps-kruise-io-v1alpha1-uniteddeployment", "v1alpha1", "UnitedDeployment", ud);
        assert_eq!(out["spec"]["updateStrategy"], json!({"type": "Manual", "manualUpdate": {}}));
    }
}
