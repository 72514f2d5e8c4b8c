//! The workloads' defaults, as OpenKruise v1.9.0's mutating webhooks set them:
//! CloneSet, Advanced StatefulSet, UnitedDeployment and Advanced DaemonSet.
//!
//! Pod templates get the defaults that matter to the controllers ([`pod_spec`]);
//! OpenKruise applies the rest of Kubernetes' pod defaults too, and skips them all
//! on an update that leaves the template alone. Here they are applied on every
//! request, which changes nothing on a template defaulted before. No webhook
//! defaults scaleStrategy: OpenKruise's only shows up as `{}` because Go writes
//! empty structs, which carries no meaning.

use std::sync::Arc;

use k8s_openapi::{
    api::core::v1::{PodSecurityContext, PodSpec, PodTemplateSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};
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
        PodManagementPolicy, PodUpdatePolicyType, StatefulSetUpdateStrategy, StatefulSetUpdateStrategyType,
        v1alpha1 as sts_a1, v1beta1 as sts_b1,
    },
    united_deployment::{ManualUpdate, UnitedDeployment, UnitedDeploymentUpdateStrategyType},
};

use super::Defaulter;
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

/// The pod defaults that matter to the workload controllers: restartPolicy Always,
/// dnsPolicy ClusterFirst, terminationGracePeriodSeconds 30, schedulerName
/// default-scheduler, an empty securityContext; for each container
/// terminationMessagePath `/dev/termination-log`, terminationMessagePolicy File,
/// port protocol TCP, and imagePullPolicy Always (OpenKruise's choice, so that an
/// in-place update pulls the new image; init containers get Kubernetes' rule:
/// Always for `:latest` or no tag, else IfNotPresent).
///
/// Skipped (the API server's pod defaulting fills them when pods are created):
/// probe timings and HTTP schemes, fieldRef API versions, volume sources and
/// modes, host ports under hostNetwork, resource lists, ephemeral containers, and
/// volumeClaimTemplates' claim defaults.
pub fn pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name.get_or_insert_with(|| "default-scheduler".into());
    spec.security_context.get_or_insert_with(PodSecurityContext::default);
    let init = spec.init_containers.iter_mut().flatten().map(|c| (c, false));
    for (c, app) in init.chain(spec.containers.iter_mut().map(|c| (c, true))) {
        if c.image_pull_policy.is_none() {
            let latest = app || image_tag(c.image.as_deref().unwrap_or_default()) == Some("latest");
            c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
        }
        c.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy.get_or_insert_with(|| "File".into());
        for port in c.ports.iter_mut().flatten() {
            port.protocol.get_or_insert_with(|| "TCP".into());
        }
    }
}

/// An image reference's tag: `latest` when it names none, `None` when it is pinned
/// by digest only.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest => None,
        None => Some("latest"),
    }
}

fn template(t: &mut PodTemplateSpec) {
    pod_spec(t.spec.get_or_insert_with(PodSpec::default));
}

/// CloneSet: replicas 1, revisionHistoryLimit 10, update type ReCreate (an
/// `inPlaceUpdateStrategy: {}` for the InPlace types), partition 0, maxUnavailable
/// 20%, maxSurge 0; the pod template's defaults.
pub fn clone_set(cs: &mut CloneSet) {
    let spec = &mut cs.spec;
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    template(&mut spec.template);
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

/// What both StatefulSet versions default: podManagementPolicy OrderedReady, update
/// type RollingUpdate and under it partition 0, maxUnavailable 1, podUpdatePolicy
/// ReCreate and minReadySeconds 0; replicas 1, revisionHistoryLimit 10; the pod
/// template's defaults.
fn stateful_set_common(
    policy: &mut Option<PodManagementPolicy>,
    update: &mut Option<StatefulSetUpdateStrategy>,
    replicas: &mut Option<i32>,
    history: &mut Option<i32>,
    pods: &mut PodTemplateSpec,
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
    template(pods);
}

/// v1beta1 StatefulSet: [`stateful_set_common`], retention policies Retain (the
/// StatefulSetAutoDeletePVC gate is on by default; volumeClaimUpdateStrategy is
/// left alone, its gate being off), and no status.
pub fn stateful_set_v1beta1(sts: &mut sts_b1::StatefulSet) {
    let s = &mut sts.spec;
    stateful_set_common(
        &mut s.pod_management_policy,
        &mut s.update_strategy,
        &mut s.replicas,
        &mut s.revision_history_limit,
        &mut s.template,
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
pub fn stateful_set_v1alpha1(sts: &mut sts_a1::StatefulSet) {
    let s = &mut sts.spec;
    stateful_set_common(
        &mut s.pod_management_policy,
        &mut s.update_strategy,
        &mut s.replicas,
        &mut s.revision_history_limit,
        &mut s.template,
    );
    sts.status = None;
}

/// UnitedDeployment: revisionHistoryLimit 10, update type Manual with
/// `manualUpdate: {}`, the pod defaults in a statefulSetTemplate (OpenKruise
/// touches no other template), minReplicas 0 on every subset when some subset
/// sets minReplicas or maxReplicas and none sets replicas; no status. (spec.replicas
/// is not defaulted by the webhook.)
pub fn united_deployment(ud: &mut UnitedDeployment) {
    let spec = &mut ud.spec;
    spec.revision_history_limit.get_or_insert(10);
    let update = spec.update_strategy.get_or_insert_with(Default::default);
    let kind = update.type_.get_or_insert(UnitedDeploymentUpdateStrategyType::Manual).clone();
    if kind == UnitedDeploymentUpdateStrategyType::Manual {
        update.manual_update.get_or_insert_with(ManualUpdate::default);
    }
    if let Some(sts) = spec.template.as_mut().and_then(|t| t.stateful_set_template.as_mut()) {
        template(&mut sts.spec.template);
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
pub fn daemon_set_v1alpha1(ds: &mut ds_a1::DaemonSet) {
    let s = &mut ds.spec;
    daemon_set_common(&mut s.burst_replicas, &mut s.update_strategy, &mut s.revision_history_limit, true);
}

/// v1beta1 DaemonSet: [`daemon_set_common`]; Surging is left for validation to refuse.
pub fn daemon_set_v1beta1(ds: &mut ds_b1::DaemonSet) {
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
        serde_json::to_value(patch(&object(value), defaults).unwrap()).unwrap()
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
    fn pod_spec_defaults() {
        let mut spec: PodSpec = serde_json::from_value(json!({
            "initContainers": [{"name": "a", "image": "busybox:1.36"}, {"name": "b", "image": "busybox"},
                               {"name": "c", "image": "reg:5000/busybox@sha256:ab"}],
            "containers": [{"name": "app", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 80}]}]
        }))
        .unwrap();
        pod_spec(&mut spec);
        let pull: Vec<_> =
            spec.init_containers.iter().flatten().map(|c| c.image_pull_policy.clone().unwrap()).collect();
        assert_eq!(pull, ["IfNotPresent", "Always", "IfNotPresent"]);
        assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"), "kept");
        assert_eq!(spec.containers[0].ports.as_ref().unwrap()[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(image_tag("reg:5000/app"), Some("latest"));
        assert_eq!(image_tag("reg:5000/app:v1@sha256:ab"), Some("v1"));
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
