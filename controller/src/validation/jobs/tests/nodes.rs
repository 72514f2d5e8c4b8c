//! NodeImage and ContainerRecreateRequest rules.

use serde_json::{Value, json};

use super::*;

#[test]
fn node_image_rules() {
    let tag = json!({"tag": "1.27", "createdAt": "2025-01-01T00:00:00Z", "version": 1,
                     "pullPolicy": {"ttlSecondsAfterFinished": 300}});
    let good = json!({"metadata": {"name": "node-a"}, "spec": {"images": {"nginx": {"tags": [tag]}}}});
    table(
        node_image,
        &good,
        vec![
            |v| {
                push(
                    &mut v["spec"]["images"]["nginx"]["tags"],
                    json!({"tag": "1.28", "createdAt": "2025-01-01T00:00:00Z",
            "pullPolicy": {"ttlSecondsAfterFinished": 1}}),
                )
            },
            |v| v["spec"] = json!({}),
        ],
        vec![
            (
                |v| {
                    let images: serde_json::Map<String, Value> =
                        (0..257).map(|i| (format!("img{i}"), json!({"tags": []}))).collect();
                    v["spec"]["images"] = Value::Object(images);
                },
                "spec.images: Too many: 257: must have at most 256 items",
            ),
            (
                |v| v["spec"]["images"][""] = json!({"tags": []}),
                "spec.images: Required value: an image name must not be empty",
            ),
            (
                |v| v["spec"]["images"]["nginx"]["tags"][0]["tag"] = json!(""),
                "spec.images[nginx].tags[0].tag: Required value",
            ),
            (
                |v| {
                    let t = v["spec"]["images"]["nginx"]["tags"][0].clone();
                    push(&mut v["spec"]["images"]["nginx"]["tags"], t);
                },
                "spec.images[nginx].tags[1].tag: Duplicate value: \"1.27\"",
            ),
            (
                |v| {
                    v["spec"]["images"]["nginx"]["tags"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("createdAt")
                        .map(drop)
                        .unwrap()
                },
                "spec.images[nginx].tags[0].createdAt: Required value",
            ),
            (
                |v| v["spec"]["images"]["nginx"]["tags"][0]["version"] = json!(-1),
                "spec.images[nginx].tags[0].version: Invalid value: -1: must not be negative",
            ),
            (
                |v| {
                    v["spec"]["images"]["nginx"]["tags"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("pullPolicy")
                        .map(drop)
                        .unwrap()
                },
                "spec.images[nginx].tags[0].pullPolicy: Required value",
            ),
            (
                |v| v["spec"]["images"]["nginx"]["tags"][0]["pullPolicy"] = json!({"backoffLimit": 3}),
                "spec.images[nginx].tags[0].pullPolicy.ttlSecondsAfterFinished: Required value",
            ),
        ],
    );
}

fn crr() -> Value {
    json!({"metadata": {"name": "restart", "namespace": "shop", "labels": {"crr.apps.kruise.io/pod-uid": "u1"}},
           "spec": {"podName": "web-0", "containers": [{"name": "app"}, {"name": "sidecar"}],
                    "activeDeadlineSeconds": 3, "strategy": {"failurePolicy": "Ignore", "terminationGracePeriodSeconds": 0}}})
}

#[test]
fn container_recreate_request_rules() {
    table(
        container_recreate_request,
        &crr(),
        vec![|v| v["spec"].as_object_mut().unwrap().remove("strategy").map(drop).unwrap()],
        vec![
            (|v| v["spec"]["podName"] = json!(""), "spec.podName: Required value"),
            (|v| v["spec"]["containers"] = json!([]), "spec.containers: Required value"),
            (
                |v| v["spec"]["containers"][1]["name"] = json!("app"),
                "spec.containers: Duplicate value: \"app\"",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["statusContext"] =
                        json!({"containerID": "x", "restartCount": 0})
                },
                "spec.containers[0]: Forbidden: preStop, ports and statusContext are read-only",
            ),
            (
                |v| v["spec"]["activeDeadlineSeconds"] = json!(2),
                "spec.activeDeadlineSeconds: Invalid value: 2: must be at least 3",
            ),
            (
                |v| v["spec"]["strategy"]["terminationGracePeriodSeconds"] = json!(-1),
                "spec.strategy.terminationGracePeriodSeconds: Invalid value: -1: must not be negative",
            ),
            (
                |v| v["spec"]["strategy"]["unreadyGracePeriodSeconds"] = json!(-5),
                "spec.strategy.unreadyGracePeriodSeconds: Invalid value: -5: must not be negative",
            ),
        ],
    );
    let old = crr();
    let mut new = old.clone();
    new["metadata"]["labels"]["crr.apps.kruise.io/active"] = json!("false");
    new["metadata"]["annotations"] = json!({"crr.apps.kruise.io/unready-acquired": "2025-01-01T00:00:00Z"});
    assert_eq!(check(container_recreate_request, &new, Some(&old)), Vec::<String>::new());
    let old = new.clone();
    new["spec"]["podName"] = json!("web-1");
    new["metadata"]["labels"]["crr.apps.kruise.io/pod-uid"] = json!("u2");
    new["metadata"]["annotations"]["crr.apps.kruise.io/unready-acquired"] = json!("later");
    assert_eq!(
        check(container_recreate_request, &new, Some(&old)),
        [
            "spec: Forbidden: is immutable",
            "metadata.labels[crr.apps.kruise.io/pod-uid]: Forbidden: is immutable",
            "metadata.annotations[crr.apps.kruise.io/unready-acquired]: Forbidden: is immutable"
        ]
    );
}
