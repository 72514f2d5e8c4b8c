//! In-place env updates from pod metadata. A container env that reads a pod label or
//! annotation through `fieldRef` (`metadata.labels['k']`, `metadata.annotations['k']`)
//! gets its value when the container is created; kubelet never refreshes it. When such
//! a label or annotation changes on a running pod of this node, the agent recreates
//! that container once, through the proxy's `RecreateContainer` with the new values as
//! env overrides (or, without a proxy, by stopping it: kubelet's restart resolves the
//! new values).
//!
//! When the pod's image changed too, kubelet restarts the container itself for the
//! image, and that restart already resolves the new values: the agent then leaves it
//! alone, so an image and env change together cost exactly one restart.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Container, Pod};
use stevedore_proto::{
    control::{KeyValue, RecreateContainerRequest, control_client::ControlClient},
    cri::{ContainerStatusRequest, StopContainerRequest, runtime_service_client::RuntimeServiceClient},
    inplace::subscript,
    uds,
};
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};
use tracing::{debug, info, warn};

use crate::{
    metrics::Metrics,
    node_pods::{NodePods, PodEvent},
};

/// The env vars of `c` that read pod metadata, with the values the pod's metadata
/// gives them now (a missing key reads as the empty string, as kubelet does).
pub fn desired(pod: &Pod, c: &Container) -> BTreeMap<String, String> {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let mut out = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let Some(path) =
            e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str())
        else {
            continue;
        };
        let value = if let Some(key) = subscript(path, "metadata.labels") {
            labels.get(key).cloned().unwrap_or_default()
        } else if let Some(key) = subscript(path, "metadata.annotations") {
            annotations.get(key).cloned().unwrap_or_default()
        } else {
            continue;
        };
        out.insert(e.name.clone(), value);
    }
    out
}

/// An image reference as kubelet would resolve it: `busybox` and
/// `docker.io/library/busybox:latest` are one image.
pub fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let name =
        if digest.is_none() && !last.contains(':') { format!("{name}:latest") } else { name.to_owned() };
    let first = name.split('/').next().unwrap_or_default();
    let has_host = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = match (has_host, name.contains('/')) {
        (true, _) => name,
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    };
    match digest {
        Some(d) => format!("{name}@{d}"),
        None => name,
    }
}

/// The env a running container was created with, from the runtime's verbose status
/// (containerd: `info.config.envs`). `None` when the runtime does not tell.
pub fn running_env(info: &HashMap<String, String>) -> Option<BTreeMap<String, String>> {
    let v: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    let envs = v.get("config")?.get("envs")?.as_array()?;
    Some(
        envs.iter()
            .filter_map(|e| Some((e.get("key")?.as_str()?.to_owned(), e.get("value")?.as_str()?.to_owned())))
            .collect(),
    )
}

/// What to do with one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its env is current (or it does not read metadata).
    Current,
    /// kubelet restarts it anyway (its image changed): leave it.
    KubeletRestarts,
    /// Recreate it with these values.
    Recreate(Vec<(String, String)>),
}

/// Decides for container `c` of `pod`, whose running instance has `running` env and
/// runs `running_image` (the pod status's image).
pub fn decide(
    pod: &Pod,
    c: &Container,
    running: &BTreeMap<String, String>,
    running_image: Option<&str>,
) -> Decision {
    let want = desired(pod, c);
    let stale: Vec<(String, String)> = want.into_iter().filter(|(k, v)| running.get(k) != Some(v)).collect();
    if stale.is_empty() {
        return Decision::Current;
    }
    let spec_image = c.image.as_deref().map(normalize_image);
    if let (Some(spec), Some(run)) = (spec_image, running_image.map(normalize_image))
        && spec != run
    {
        return Decision::KubeletRestarts;
    }
    Decision::Recreate(stale)
}

/// Follows the pods of one node and refreshes metadata env.
pub struct MetadataEnv {
    node: String,
    pods: NodePods,
    runtime: RuntimeServiceClient<Channel>,
    control: Option<ControlClient<Channel>>,
    metrics: Arc<Metrics>,
    /// Containers recreated already, by pod uid and name, until the pod reports
    /// their successor.
    done: HashMap<(String, String), String>,
}

impl std::fmt::Debug for MetadataEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataEnv").field("node", &self.node).field("recreated", &self.done.len()).finish()
    }
}

impl MetadataEnv {
    /// For `node`, whose pods `pods` watches, with CRI on `cri_socket` and the proxy's
    /// control API on `control_socket` (if any).
    pub fn new(
        node: &str,
        pods: NodePods,
        cri_socket: &std::path::Path,
        control_socket: Option<&std::path::Path>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let runtime = RuntimeServiceClient::new(uds::connect_lazy(cri_socket))
            .max_decoding_message_size(uds::MAX_MESSAGE_SIZE);
        let control = control_socket.map(|p| ControlClient::new(uds::connect_lazy(p)));
        Self { node: node.to_owned(), pods, runtime, control, metrics, done: HashMap::new() }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let store = self.pods.store();
        let mut changes = std::pin::pin!(self.pods.changes());
        loop {
            let pods = tokio::select! {
                () = shutdown.cancelled() => return,
                next = changes.next() => match next {
                    Some(PodEvent::Applied(pod)) => vec![pod],
                    Some(PodEvent::Deleted(_)) => continue,
                    Some(PodEvent::Resync) => store.state(),
                    None => return,
                },
            };
            for pod in pods {
                self.sync(&pod).await;
            }
        }
    }

    async fn sync(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            self.done.retain(|(u, _), _| *u != uid);
            return;
        }
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
            return;
        }
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            if desired(pod, c).is_empty() {
                continue;
            }
            let Some(status) = statuses.and_then(|s| s.iter().find(|s| s.name == c.name)) else { continue };
            let running = status.state.as_ref().is_some_and(|s| s.running.is_some());
            let Some(id) = status.container_id.as_deref().filter(|_| running) else { continue };
            let id = id.split_once("://").map_or(id, |(_, rest)| rest).to_owned();
            let key = (uid.clone(), c.name.clone());
            match self.done.get(&key) {
                // recreated; the pod's status has not caught up yet
                Some(old) if *old == id => continue,
                Some(_) => {
                    self.done.remove(&key);
                }
                None => {}
            }
            let verbose = self
                .runtime
                .clone()
                .container_status(ContainerStatusRequest { container_id: id.clone(), verbose: true })
                .await;
            let env = match verbose.map(|r| running_env(&r.into_inner().info)) {
                Ok(Some(env)) => env,
                Ok(None) => {
                    debug!(container.id = %id, "the runtime does not report a container's env; metadata env not refreshed");
                    continue;
                }
                Err(status) => {
                    debug!(container.id = %id, %status, "container status");
                    continue;
                }
            };
            match decide(pod, c, &env, Some(status.image.as_str())) {
                Decision::Current => {}
                Decision::KubeletRestarts => {
                    debug!(container.id = %id, container.name = %c.name, "image changed too: kubelet's restart brings the new env");
                }
                Decision::Recreate(stale) => {
                    let grace =
                        pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
                    if self.recreate(pod, &c.name, &id, grace, stale).await {
                        self.done.insert(key, id);
                    }
                }
            }
        }
    }

    /// Recreates (or stops) the container; whether it did.
    async fn recreate(
        &self,
        pod: &Pod,
        name: &str,
        id: &str,
        grace: i64,
        stale: Vec<(String, String)>,
    ) -> bool {
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let keys: Vec<&str> = stale.iter().map(|(k, _)| k.as_str()).collect();
        let overrides: Vec<KeyValue> =
            stale.iter().map(|(k, v)| KeyValue { key: k.clone(), value: v.clone() }).collect();
        if let Some(control) = &self.control {
            let req = RecreateContainerRequest {
                container_id: id.to_owned(),
                grace_period_seconds: grace,
                env_overrides: overrides,
                image: String::new(),
            };
            match control.clone().recreate_container(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    self.metrics.metadata_env_recreate(if r.recorded { "proxy" } else { "kubelet" }, "ok");
                    info!(pod = pod_name, container.name = name, env = ?keys, new.id = %r.container_id, recorded = r.recorded, "container recreated for changed metadata env");
                    return true;
                }
                Err(s) if matches!(s.code(), Code::Unimplemented | Code::Unavailable) => {
                    debug!(status = %s, "no RecreateContainer on the proxy; stopping the container for kubelet");
                }
                Err(s) => {
                    self.metrics.metadata_env_recreate("proxy", "error");
                    warn!(pod = pod_name, container.name = name, status = %s, "recreating a container for changed metadata env failed");
                    return false;
                }
            }
        }
        let stop = StopContainerRequest { container_id: id.to_owned(), timeout: grace };
        match self.runtime.clone().stop_container(stop).await {
            Ok(_) => {
                self.metrics.metadata_env_recreate("kubelet", "ok");
                info!(pod = pod_name, container.name = name, env = ?keys, "container stopped for kubelet to restart with changed metadata env");
                true
            }
            Err(s) => {
                self.metrics.metadata_env_recreate("kubelet", "error");
                warn!(pod = pod_name, container.name = name, status = %s, "stopping a container for changed metadata env failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(labels: serde_json::Value, image: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": labels, "annotations": {"tier": "gold"}},
            "spec": {"containers": [{"name": "app", "image": image, "env": [
                {"name": "ZONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['zone']"}}},
                {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations[\"tier\"]"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "PLAIN", "value": "x"}]}]}
        }))
        .unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn only_metadata_field_refs_are_read_and_missing_keys_are_empty() {
        let p = pod(json!({"zone": "a"}), "busybox");
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(desired(&p, c), env(&[("TIER", "gold"), ("ZONE", "a")]));
        let p = pod(json!({}), "busybox");
        assert_eq!(desired(&p, &p.spec.as_ref().unwrap().containers[0])["ZONE"], "");
    }

    #[test]
    fn a_changed_label_recreates_once_but_not_when_the_image_changes_too() {
        let p = pod(json!({"zone": "b"}), "busybox");
        let c = &p.spec.as_ref().unwrap().containers[0];
        let running = env(&[("ZONE", "a"), ("TIER", "gold"), ("PLAIN", "x")]);
        assert_eq!(
            decide(&p, c, &running, Some("docker.io/library/busybox:latest")),
            Decision::Recreate(vec![("ZONE".into(), "b".into())])
        );
        assert_eq!(decide(&p, c, &running, Some("busybox:1.36")), Decision::KubeletRestarts);
        let current = env(&[("ZONE", "b"), ("TIER", "gold")]);
        assert_eq!(decide(&p, c, &current, Some("busybox")), Decision::Current);
    }

    #[test]
    fn images_normalize_like_kubelet_resolves_them() {
        assert_eq!(normalize_image("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize_image("me/app:1"), "docker.io/me/app:1");
        assert_eq!(normalize_image("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app:v1");
        assert_eq!(normalize_image("localhost/app"), "localhost/app:latest");
        assert_eq!(normalize_image("busybox@sha256:ab"), "docker.io/library/busybox@sha256:ab");
    }

    #[test]
    fn the_running_env_comes_from_containerds_verbose_info() {
        let info = HashMap::from([(
            "info".to_owned(),
            json!({"config": {"envs": [{"key": "ZONE", "value": "a"}, {"key": "PATH", "value": "/bin"}]}})
                .to_string(),
        )]);
        assert_eq!(running_env(&info), Some(env(&[("PATH", "/bin"), ("ZONE", "a")])));
        assert_eq!(running_env(&HashMap::new()), None);
    }
}
