//! The pod defaults OpenKruise applies to templates (`SetDefaultPodSpec`), sidecars
//! (`setDefaultContainer`) and claim templates, built from Kubernetes' own
//! (`k8s.io/kubernetes/pkg/apis/core/v1/defaults.go`): one place for every kind.

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, HTTPGetAction, Lifecycle, ObjectFieldSelector,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, Probe, Volume,
};
use stevedore_proto::{crd::stateful_set::PersistentVolumeClaimTemplate, image::default_pull_policy};

/// What kind of container is defaulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An app container of a workload template: imagePullPolicy Always when unset
    /// (OpenKruise's choice, so that an in-place update pulls the new image).
    App,
    /// An init container: Kubernetes' imagePullPolicy rule.
    Init,
    /// A SidecarSet container: Kubernetes' rule, and no startupProbe defaults (as
    /// OpenKruise's `setDefaultContainer`).
    Sidecar,
}

/// `SetDefaultPodSpec`: restartPolicy Always, dnsPolicy ClusterFirst,
/// terminationGracePeriodSeconds 30, schedulerName default-scheduler, an empty
/// securityContext (`SetDefaults_PodSpec`); the volumes' defaults; every
/// container's (init containers by Kubernetes' pull rule, app containers Always);
/// ephemeral containers' ports, fieldRefs and probes. (Host ports under hostNetwork
/// are left alone: Kubernetes fills them in templates only behind a gate that is off
/// by default since 1.28.)
pub fn pod_spec(spec: &mut PodSpec) {
    empty_to(&mut spec.dns_policy, "ClusterFirst");
    empty_to(&mut spec.restart_policy, "Always");
    spec.security_context.get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    empty_to(&mut spec.scheduler_name, "default-scheduler");
    volumes(spec.volumes.iter_mut().flatten());
    for c in spec.init_containers.iter_mut().flatten() {
        container(c, Role::Init);
    }
    for c in &mut spec.containers {
        container(c, Role::App);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        for p in c.ports.iter_mut().flatten() {
            empty_to(&mut p.protocol, "TCP");
        }
        env_field_refs(c.env.iter_mut().flatten());
        for p in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
            probe(p);
        }
        lifecycle(c.lifecycle.as_mut());
    }
}

/// A template's pod defaults ([`pod_spec`]); a template without a spec is left as
/// it is (validation refuses it: a pod needs containers).
pub fn template(t: &mut k8s_openapi::api::core::v1::PodTemplateSpec) {
    if let Some(spec) = t.spec.as_mut() {
        pod_spec(spec);
    }
}

/// Sets `field` to `value` when it is unset or `""` (Go's zero value).
fn empty_to(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.into());
    }
}

/// A container's defaults (`SetDefaults_Container` and what OpenKruise adds):
/// imagePullPolicy (see [`Role`]), terminationMessagePath and Policy, port
/// protocol TCP, fieldRef apiVersion v1, probe timings and HTTP actions, lifecycle
/// HTTP actions.
pub fn container(c: &mut Container, role: Role) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let policy = match role {
            Role::App => "Always",
            Role::Init | Role::Sidecar => default_pull_policy(c.image.as_deref().unwrap_or_default()),
        };
        c.image_pull_policy = Some(policy.into());
    }
    empty_to(&mut c.termination_message_path, "/dev/termination-log");
    empty_to(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        empty_to(&mut p.protocol, "TCP");
    }
    env_field_refs(c.env.iter_mut().flatten());
    let startup = if role == Role::Sidecar { None } else { c.startup_probe.as_mut() };
    for p in [c.liveness_probe.as_mut(), c.readiness_probe.as_mut(), startup].into_iter().flatten() {
        probe(p);
    }
    lifecycle(c.lifecycle.as_mut());
}

fn env_field_refs<'a>(env: impl Iterator<Item = &'a mut k8s_openapi::api::core::v1::EnvVar>) {
    for e in env {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            field_selector(f);
        }
    }
}

/// `SetDefaults_ObjectFieldSelector`: apiVersion v1.
pub fn field_selector(f: &mut ObjectFieldSelector) {
    empty_to(&mut f.api_version, "v1");
}

/// `SetDefaults_Probe` (a zero counts as unset, as in Go: timeout 1, period 10,
/// success threshold 1, failure threshold 3) and the HTTP action's defaults.
fn probe(p: &mut Probe) {
    for (field, value) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if field.unwrap_or(0) == 0 {
            *field = Some(value);
        }
    }
    if let Some(get) = p.http_get.as_mut() {
        http_get(get);
    }
}

fn lifecycle(l: Option<&mut Lifecycle>) {
    let Some(l) = l else { return };
    for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
        if let Some(get) = h.http_get.as_mut() {
            http_get(get);
        }
    }
}

/// `SetDefaults_HTTPGetAction`: path `/`, scheme HTTP.
fn http_get(get: &mut HTTPGetAction) {
    empty_to(&mut get.path, "/");
    empty_to(&mut get.scheme, "HTTP");
}

/// `SetDefaultPodVolumes`: a volume with no source is an emptyDir
/// (`SetDefaults_Volume`); hostPath type `""`; secret, configMap, downwardAPI and
/// projected defaultMode 0644; downwardAPI fieldRef apiVersion v1;
/// serviceAccountToken expirationSeconds 3600.
pub fn volumes<'a>(list: impl Iterator<Item = &'a mut Volume>) {
    for v in list {
        let sources = serde_json::to_value(&*v)
            .ok()
            .and_then(|j| j.as_object().map(|o| o.keys().filter(|k| *k != "name").count()))
            .unwrap_or(0);
        if sources == 0 {
            v.empty_dir = Some(Default::default());
        }
        if let Some(h) = v.host_path.as_mut() {
            h.type_.get_or_insert_with(String::new);
        }
        if let Some(s) = v.secret.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(c) = v.config_map.as_mut() {
            c.default_mode.get_or_insert(0o644);
        }
        if let Some(d) = v.downward_api.as_mut() {
            d.default_mode.get_or_insert(0o644);
            downward_items(d.items.iter_mut().flatten());
        }
        if let Some(p) = v.projected.as_mut() {
            p.default_mode.get_or_insert(0o644);
            for s in p.sources.iter_mut().flatten() {
                if let Some(d) = s.downward_api.as_mut() {
                    downward_items(d.items.iter_mut().flatten());
                }
                if let Some(t) = s.service_account_token.as_mut() {
                    t.expiration_seconds.get_or_insert(3600);
                }
            }
        }
    }
}

fn downward_items<'a>(items: impl Iterator<Item = &'a mut DownwardAPIVolumeFile>) {
    for item in items {
        if let Some(f) = item.field_ref.as_mut() {
            field_selector(f);
        }
    }
}

/// A claim template's defaults: `status.phase: Pending`
/// (`SetDefaults_PersistentVolumeClaim`, what OpenKruise applies) and
/// `volumeMode: Filesystem` (`SetDefaults_PersistentVolumeClaimSpec`, as
/// kube-apiserver defaults the claim templates of an apps/v1 StatefulSet).
pub fn claim_template(t: &mut PersistentVolumeClaimTemplate) {
    let spec: &mut PersistentVolumeClaimSpec = t.spec.get_or_insert_with(Default::default);
    empty_to(&mut spec.volume_mode, "Filesystem");
    empty_to(&mut t.status.get_or_insert_with(Default::default).phase, "Pending");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pod_spec_gets_kubernetes_defaults() {
        let mut spec: PodSpec = serde_json::from_value(json!({
            "dnsPolicy": "",
            "initContainers": [{"name": "i", "image": "busybox:1.36"}],
            "containers": [{
                "name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 0, "timeoutSeconds": 5},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": ""}}}
            }],
            "volumes": [{"name": "a"}, {"name": "s", "secret": {"secretName": "x"}},
                        {"name": "h", "hostPath": {"path": "/x"}},
                        {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}},
                            {"downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}]
        }))
        .unwrap();
        pod_spec(&mut spec);
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["dnsPolicy"], "ClusterFirst");
        assert_eq!(
            (v["restartPolicy"].clone(), v["schedulerName"].clone()),
            (json!("Always"), json!("default-scheduler"))
        );
        assert_eq!(v["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
        let c = &v["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always", "app containers pull for in-place updates");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "periodSeconds": 10,
                   "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["path"], "/");
        assert_eq!(v["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(v["volumes"][1]["secret"]["defaultMode"], 420);
        assert_eq!(v["volumes"][2]["hostPath"]["type"], "");
        let projected = &v["volumes"][3]["projected"];
        assert_eq!(projected["defaultMode"], 420);
        assert_eq!(projected["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3600);
        assert_eq!(projected["sources"][1]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn sidecars_keep_their_startup_probe_and_pull_by_tag() {
        let mut c: Container = serde_json::from_value(json!({
            "name": "s", "image": "envoy:latest@sha256:0123", "startupProbe": {"exec": {"command": ["x"]}}
        }))
        .unwrap();
        container(&mut c, Role::Sidecar);
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(c.startup_probe.unwrap().period_seconds, None);
    }

    #[test]
    fn claim_templates_get_a_volume_mode_and_a_phase() {
        let mut t: PersistentVolumeClaimTemplate = serde_json::from_value(
            json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}),
        )
        .unwrap();
        claim_template(&mut t);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            (v["spec"]["volumeMode"].clone(), v["status"]["phase"].clone()),
            (json!("Filesystem"), json!("Pending"))
        );
    }
}
