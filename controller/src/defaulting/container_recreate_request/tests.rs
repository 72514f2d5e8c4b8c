//! The handler against a fixed set of pods: what it refuses, with which message, and
//! what it fills in.

use serde_json::{Value, json};

use super::*;
use crate::{validation::jobs::tests::review, webhook::cluster::Objects};

const KIND: &str = "ContainerRecreateRequest";

/// `web-0` in `shop`, scheduled and running `app` (preStop httpGet, a port) and
/// `sidecar` (no preStop), with `init` done.
fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "shop", "name": "web-0", "uid": "uid-1"},
        "spec": {
            "nodeName": "node-a", "terminationGracePeriodSeconds": 45,
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "app", "image": "nginx", "ports": [{"containerPort": 8080, "name": "http"}],
                 "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 8080}}}},
                {"name": "sidecar", "image": "envoy", "ports": [{"containerPort": 9901}]}
            ]
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "containerID": "containerd://aaa", "restartCount": 2, "ready": true,
                 "image": "nginx", "imageID": ""},
                {"name": "sidecar", "containerID": "containerd://bbb", "restartCount": 0, "ready": true,
                 "image": "envoy", "imageID": ""}
            ]
        }
    })
}

fn handler(pods: &[Value]) -> Admission {
    let objects = pods
        .iter()
        .fold(Objects::default(), |o, p| o.with(&serde_json::from_value::<Pod>(p.clone()).unwrap()));
    Admission::new(Arc::new(objects))
}

fn crr(containers: Value) -> Value {
    json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": KIND,
           "metadata": {"name": "x", "namespace": "shop"},
           "spec": {"podName": "web-0", "containers": containers}})
}

fn create(h: &Admission, obj: Value) -> AdmissionResponse {
    h.admit(&review(KIND, "v1alpha1", "CREATE", obj, Value::Null))
}

/// The object after the answer's patch.
fn patched(obj: &Value, resp: &AdmissionResponse) -> Value {
    assert!(resp.allowed, "{}", resp.result.message);
    let mut out = obj.clone();
    let patch: json_patch::Patch = serde_json::from_slice(resp.patch.as_ref().unwrap()).unwrap();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

#[test]
fn labels_strategy_and_containers_are_filled_in_from_the_pod() {
    let obj = crr(json!([{"name": "app"}, {"name": "sidecar"}]));
    let out = patched(&obj, &create(&handler(&[pod()]), obj.clone()));
    assert_eq!(
        out["metadata"]["labels"],
        json!({"crr.apps.kruise.io/active": "true", "crr.apps.kruise.io/node-name": "node-a",
               "crr.apps.kruise.io/pod-uid": "uid-1"})
    );
    assert_eq!(
        out["spec"]["strategy"],
        json!({"failurePolicy": "Fail", "terminationGracePeriodSeconds": 45})
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([
            {"name": "app", "preStop": {"httpGet": {"path": "/drain", "port": 8080}},
             "ports": [{"containerPort": 8080, "name": "http"}],
             "statusContext": {"containerID": "containerd://aaa", "restartCount": 2}},
            {"name": "sidecar", "statusContext": {"containerID": "containerd://bbb", "restartCount": 0}}
        ]),
        "ports only with an httpGet preStop"
    );
}

#[test]
fn a_grace_period_the_request_sets_is_kept() {
    let mut obj = crr(json!([{"name": "sidecar"}]));
    obj["spec"]["strategy"] = json!({"terminationGracePeriodSeconds": 3, "failurePolicy": "Ignore"});
    let out = patched(&obj, &create(&handler(&[pod()]), obj.clone()));
    assert_eq!(
        out["spec"]["strategy"],
        json!({"terminationGracePeriodSeconds": 3, "failurePolicy": "Ignore"})
    );
}

#[test]
fn requests_the_pod_cannot_take_are_refused_naming_the_field() {
    let mut deleted = pod();
    deleted["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let mut succeeded = pod();
    succeeded["status"]["phase"] = json!("Succeeded");
    let mut pending = pod();
    pending["spec"].as_object_mut().unwrap().remove("nodeName");
    let mut starting = pod();
    starting["status"]["containerStatuses"][1].as_object_mut().unwrap().remove("containerID");
    let inactive = "spec.podName: pod shop/web-0 is not active (being deleted, Succeeded or Failed)";
    let cases: &[(&str, Vec<Value>, Value, u16, &str)] = &[
        ("no pod", vec![], json!([{"name": "app"}]), 400, "spec.podName: pod shop/web-0 not found"),
        ("deleted", vec![deleted], json!([{"name": "app"}]), 400, inactive),
        ("succeeded", vec![succeeded], json!([{"name": "app"}]), 400, inactive),
        (
            "pending",
            vec![pending],
            json!([{"name": "app"}]),
            400,
            "spec.podName: pod shop/web-0 is not scheduled yet (no spec.nodeName)",
        ),
        (
            "twice",
            vec![pod()],
            json!([{"name": "app"}, {"name": "app"}]),
            400,
            "spec.containers: Duplicate value: \"app\"",
        ),
        (
            "not in the pod",
            vec![pod()],
            json!([{"name": "app"}, {"name": "db"}]),
            400,
            "spec.containers[1].name: container \"db\" not found in pod shop/web-0",
        ),
        (
            "not started",
            vec![starting],
            json!([{"name": "sidecar"}]),
            400,
            "spec.containers[0].name: container \"sidecar\" has no containerID in the status of pod shop/web-0 yet",
        ),
        (
            "an init container has no status",
            vec![pod()],
            json!([{"name": "init"}]),
            400,
            "spec.containers[0].name: container \"init\" has no containerID",
        ),
    ];
    for (case, pods, containers, code, message) in cases {
        let resp = create(&handler(pods), crr(containers.clone()));
        assert!(!resp.allowed, "{case}: allowed");
        assert_eq!(resp.result.code, *code, "{case}: {}", resp.result.message);
        assert!(resp.result.message.starts_with(message), "{case}: {}", resp.result.message);
    }
}

#[test]
fn a_pod_the_sidecar_terminator_ended_still_takes_requests() {
    let mut ended = pod();
    ended["status"]["phase"] = json!("Succeeded");
    ended["status"]["conditions"] = json!([{"type": "SidecarTerminated", "status": "True"}]);
    let obj = crr(json!([{"name": "sidecar"}]));
    assert!(create(&handler(&[ended]), obj).allowed);
}

#[test]
fn without_a_cluster_a_create_is_an_internal_error_and_an_update_is_judged() {
    let h = Admission::new(Arc::new(crate::webhook::cluster::NoCluster));
    let obj = crr(json!([{"name": "app"}]));
    let resp = create(&h, obj.clone());
    assert_eq!(resp.result.code, 500);
    assert_eq!(resp.result.message, "spec.podName: the webhook server has no API server client");
    let mut stored = obj.clone();
    stored["metadata"]["labels"] = json!({"crr.apps.kruise.io/pod-uid": "uid-1"});
    let mut changed = stored.clone();
    changed["metadata"]["labels"]["crr.apps.kruise.io/pod-uid"] = json!("uid-2");
    let resp = h.admit(&review(KIND, "v1alpha1", "UPDATE", changed, stored.clone()));
    assert_eq!(resp.result.code, 403);
    assert!(resp.result.message.contains("crr.apps.kruise.io/pod-uid"), "{}", resp.result.message);
    assert!(h.admit(&review(KIND, "v1alpha1", "UPDATE", stored.clone(), stored)).allowed);
}

#[test]
fn the_registry_serves_it_at_openkruises_path_reading_its_cluster() {
    let objects = Objects::default().with(&serde_json::from_value::<Pod>(pod()).unwrap());
    let mut registry = crate::webhook::Registry::new(Arc::new(objects));
    crate::defaulting::register(&mut registry);
    let handler =
        registry.admission_handler("/mutate-apps-kruise-io-v1alpha1-containerrecreaterequest").unwrap();
    let obj = crr(json!([{"name": "app"}]));
    let out = patched(&obj, &handler.admit(&review(KIND, "v1alpha1", "CREATE", obj.clone(), Value::Null)));
    assert_eq!(out["metadata"]["labels"]["crr.apps.kruise.io/pod-uid"], "uid-1");
}
