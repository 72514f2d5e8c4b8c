//! Pods as API objects for suites that run no kubelet: created, then given the status
//! a kubelet would have written (through `pods/status`, as kube-apiserver drops a
//! status sent with the create).

use k8s_openapi::{
    api::core::v1::Pod,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// A pod `namespace/name` bound to `node`, running `containers` (image `busybox`),
/// started an hour ago, with a 45 s termination grace, as JSON to adjust before
/// [`create`].
pub fn running(namespace: &str, name: &str, node: &str, containers: &[&str]) -> Value {
    let started = Timestamp::now() - SignedDuration::from_hours(1);
    let started = started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let specs: Vec<Value> = containers.iter().map(|c| json!({"name": c, "image": "busybox"})).collect();
    let statuses: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"name": c, "image": "busybox", "imageID": "", "ready": true, "restartCount": 0,
                   "containerID": format!("containerd://{name}-{i}"), "started": true,
                   "state": {"running": {"startedAt": started}}})
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 45, "containers": specs},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
            "containerStatuses": statuses
        }
    })
}

/// Creates `pod` (JSON, with its `status`) and writes its status; the stored pod.
///
/// # Errors
/// The API server refuses.
pub async fn create(client: &Client, pod: &Value) -> anyhow::Result<Pod> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut spec = pod.clone();
    let status = spec.as_object_mut().and_then(|o| o.remove("status"));
    api.create(&PostParams::default(), &serde_json::from_value(spec)?).await?;
    let Some(status) = status else { return Ok(api.get(name).await?) };
    Ok(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?)
}
