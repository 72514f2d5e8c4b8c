//! The controller's decisions as pure functions of the request, its pod and the time.

use serde_json::{Value, json};

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A request created at 10:00:00 for `web-0` (uid `uid-1`), with `extra` merged
/// into it.
fn crr(extra: Value) -> ContainerRecreateRequest {
    let mut v = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ContainerRecreateRequest",
        "metadata": {"name": "r", "namespace": "shop", "creationTimestamp": "2026-12-01T10:00:00Z",
                     "labels": {"crr.apps.kruise.io/pod-uid": "uid-1"}},
        "spec": {"podName": "web-0", "containers": [{"name": "app"}, {"name": "sidecar"}]}
    });
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

fn pod(extra: Value) -> Pod {
    let mut v = json!({"metadata": {"name": "web-0", "namespace": "shop", "uid": "uid-1"}});
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_agent_has_a_minute_to_answer_a_new_request() {
    let fresh = crr(json!({}));
    assert_eq!(deadlines(&fresh, at("2026-12-01T10:00:20Z")), Due::Wait(Some(Duration::from_secs(40))));
    assert_eq!(
        deadlines(&fresh, at("2026-12-01T10:01:00Z")),
        Due::Complete("daemon has not responded for a long time")
    );
    let answered = crr(json!({"status": {"phase": "Pending"}}));
    assert_eq!(deadlines(&answered, at("2026-12-01T11:00:00Z")), Due::Wait(None), "a status is an answer");
}

#[test]
fn the_active_deadline_counts_from_creation_and_the_earliest_deadline_is_next() {
    let short = crr(json!({"spec": {"activeDeadlineSeconds": 10}}));
    assert_eq!(deadlines(&short, at("2026-12-01T10:00:04Z")), Due::Wait(Some(Duration::from_secs(6))));
    let long = crr(json!({"spec": {"activeDeadlineSeconds": 300}}));
    assert_eq!(
        deadlines(&long, at("2026-12-01T10:00:04Z")),
        Due::Wait(Some(Duration::from_secs(56))),
        "the agent's minute first"
    );
    let recreating = crr(json!({"spec": {"activeDeadlineSeconds": 300}, "status": {"phase": "Recreating"}}));
    assert_eq!(
        deadlines(&recreating, at("2026-12-01T10:04:59.5Z")),
        Due::Wait(Some(Duration::from_millis(500)))
    );
    assert_eq!(
        deadlines(&recreating, at("2026-12-01T10:05:00Z")),
        Due::Complete("recreating has exceeded the activeDeadlineSeconds")
    );
}

#[test]
fn the_ttl_counts_from_completion() {
    let done = crr(json!({"spec": {"ttlSecondsAfterFinished": 30},
                          "status": {"phase": "Completed", "completionTime": "2026-12-01T10:02:00Z"}}));
    assert_eq!(ttl_left(&done, at("2026-12-01T10:02:10Z")), Some(Duration::from_secs(20)));
    assert_eq!(ttl_left(&done, at("2026-12-01T10:02:30Z")), Some(Duration::ZERO));
    assert_eq!(ttl_left(&done, at("2026-12-01T10:09:00Z")), Some(Duration::ZERO));
    let kept = crr(json!({"status": {"phase": "Completed", "completionTime": "2026-12-01T10:02:00Z"}}));
    assert_eq!(ttl_left(&kept, at("2026-12-01T10:09:00Z")), None, "no TTL: kept");
    let running = crr(json!({"spec": {"ttlSecondsAfterFinished": 30}, "status": {"phase": "Recreating"}}));
    assert_eq!(ttl_left(&running, at("2026-12-01T10:09:00Z")), None, "not finished");
}

#[test]
fn a_pod_deleted_being_deleted_or_replaced_is_gone() {
    let r = crr(json!({}));
    assert!(!pod_gone(&r, Some(&pod(json!({})))));
    assert!(pod_gone(&r, None));
    assert!(pod_gone(&r, Some(&pod(json!({"metadata": {"deletionTimestamp": "2026-12-01T10:00:05Z"}})))));
    assert!(pod_gone(&r, Some(&pod(json!({"metadata": {"uid": "uid-2"}})))));
}

#[test]
fn finished_means_completed_or_being_deleted() {
    assert!(!is_finished(&crr(json!({"status": {"phase": "Recreating"}}))));
    assert!(is_finished(&crr(
        json!({"status": {"phase": "Completed", "completionTime": "2026-12-01T10:02:00Z"}})
    )));
    assert!(is_finished(&crr(json!({"metadata": {"deletionTimestamp": "2026-12-01T10:02:00Z"}}))));
}

#[test]
fn synced_statuses_are_the_named_containers_running_since_the_request() {
    let p = pod(json!({"status": {"containerStatuses": [
        {"name": "app", "ready": true, "restartCount": 3, "containerID": "containerd://new", "image": "", "imageID": "",
         "state": {"running": {"startedAt": "2026-12-01T10:00:30Z"}}},
        {"name": "sidecar", "ready": true, "restartCount": 0, "containerID": "containerd://old", "image": "", "imageID": "",
         "state": {"running": {"startedAt": "2026-12-01T09:00:00Z"}}},
        {"name": "other", "ready": false, "restartCount": 0, "containerID": "containerd://x", "image": "", "imageID": "",
         "state": {"running": {"startedAt": "2026-12-01T10:00:30Z"}}}
    ]}}));
    let r = crr(json!({}));
    let synced = synced_statuses(&r, &p);
    assert_eq!(
        serde_json::to_value(&synced).unwrap(),
        json!([{"name": "app", "ready": true, "restartCount": 3, "containerID": "containerd://new"}]),
        "sidecar runs since before the request; other is not named"
    );
    let waiting = pod(json!({"status": {"containerStatuses": [
        {"name": "app", "ready": false, "restartCount": 3, "image": "", "imageID": "",
         "state": {"waiting": {"reason": "ContainerCreating"}}}]}}));
    assert!(synced_statuses(&r, &waiting).is_empty(), "not running");
}

#[test]
fn the_readiness_key_names_the_request() {
    assert_eq!(
        readiness_message(&crr(json!({}))),
        Message { user_agent: "ContainerRecreateRequest".into(), key: "shop/r".into() }
    );
}
