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

/// A hand-written API server: answers GETs of `web-0` from `pod` (404 when `None`),
/// echoes writes, and records every write as `(method, path, body)`.
mod fake {
    use std::sync::{Arc, Mutex};

    use http::{Method, Request, Response};
    use http_body_util::BodyExt as _;
    use kube::client::Body;
    use serde_json::{Value, json};

    pub type Writes = Arc<Mutex<Vec<(Method, String, Value)>>>;

    pub fn client(pod: Option<Value>) -> (kube::Client, Writes) {
        let writes: Writes = Arc::default();
        let log = writes.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let (pod, log) = (pod.clone(), log.clone());
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let path = parts.uri.path().to_owned();
                let (code, answer) = if parts.method == Method::GET {
                    match (&pod, path.ends_with("/pods/web-0")) {
                        (Some(p), true) => (200, p.clone()),
                        _ => (
                            404,
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                          "reason": "NotFound", "code": 404, "message": "not found"}),
                        ),
                    }
                } else {
                    if !path.contains("/events") {
                        log.lock().unwrap().push((parts.method.clone(), path.clone(), body.clone()));
                    }
                    let mut echo = body;
                    if echo.get("kind").is_none() {
                        // a patch: answer with some object of the kind
                        echo = json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ContainerRecreateRequest",
                                      "metadata": {"name": "r", "namespace": "shop"},
                                      "spec": {"podName": "web-0", "containers": []}});
                    }
                    (200, echo)
                };
                let resp = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        (kube::Client::new(service, "default"), writes)
    }
}

fn ctx(pod: Option<Value>) -> (Arc<Ctx>, fake::Writes) {
    let (client, writes) = fake::client(pod);
    let events = Events::new(client.clone(), "test");
    (Arc::new(Ctx { client, events }), writes)
}

fn gated_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-0", "namespace": "shop", "uid": "uid-1", "resourceVersion": "7"},
           "spec": {"containers": [{"name": "app", "image": "nginx"}],
                    "readinessGates": [{"conditionType": "KruisePodReady"}]},
           "status": {"conditions": [{"type": "KruisePodReady", "status": "True", "message": "[]"}]}})
}

fn paths(writes: &fake::Writes) -> Vec<(String, String)> {
    let w = writes.lock().unwrap();
    w.iter().map(|(m, p, _)| (m.to_string(), p.rsplit('/').take(2).collect::<Vec<_>>().join("<"))).collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_finalizer_comes_before_the_key_and_the_annotation_after() {
    let created = rfc3339(Timestamp::now());
    let r = crr(json!({"metadata": {"creationTimestamp": created},
                       "spec": {"strategy": {"unreadyGracePeriodSeconds": 5}},
                       "status": {"phase": "Recreating"}}));
    let (ctx, writes) = ctx(Some(gated_pod()));
    let action = reconcile(Arc::new(r), ctx).await.unwrap();
    assert_eq!(action, Action::await_change(), "no deadline: nothing to requeue for");
    assert_eq!(
        paths(&writes),
        [
            ("PATCH".into(), "r<containerrecreaterequests".into()), // sync-container-statuses
            ("PATCH".into(), "r<containerrecreaterequests".into()), // finalizer
            ("PUT".into(), "status<web-0".into()),                  // the pod's key
            ("PATCH".into(), "r<containerrecreaterequests".into()), // unready-acquired
        ]
    );
    let w = writes.lock().unwrap();
    assert_eq!(w[0].2["metadata"]["annotations"][keys::CRR_SYNC_CONTAINER_STATUSES], "[]");
    assert_eq!(w[1].2["metadata"]["finalizers"], json!([keys::CRR_UNREADY_ACQUIRED]));
    let kpr = &w[2].2["status"]["conditions"][0];
    assert_eq!(
        (kpr["status"].as_str(), kpr["message"].as_str()),
        (Some("False"), Some(r#"[{"userAgent":"ContainerRecreateRequest","key":"shop/r"}]"#))
    );
    assert!(w[3].2["metadata"]["annotations"][keys::CRR_UNREADY_ACQUIRED].is_string());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_finished_request_releases_the_key_then_the_finalizer_then_drops_its_label() {
    let mut pod = gated_pod();
    pod["status"]["conditions"][0] = json!({"type": "KruisePodReady", "status": "False",
        "message": r#"[{"userAgent":"ContainerRecreateRequest","key":"shop/r"}]"#});
    let r = crr(json!({"metadata": {"finalizers": [keys::CRR_UNREADY_ACQUIRED],
                                    "labels": {keys::CRR_ACTIVE: "true"}},
                       "spec": {"ttlSecondsAfterFinished": 600},
                       "status": {"phase": "Completed", "completionTime": rfc3339(Timestamp::now())}}));
    let (ctx, writes) = ctx(Some(pod));
    let action = reconcile(Arc::new(r), ctx).await.unwrap();
    assert_eq!(action, Action::await_change(), "the label change comes back through the watch");
    assert_eq!(
        paths(&writes),
        [
            ("PUT".into(), "status<web-0".into()),
            ("PATCH".into(), "r<containerrecreaterequests".into()),
            ("PATCH".into(), "r<containerrecreaterequests".into()),
        ]
    );
    let w = writes.lock().unwrap();
    let kpr = &w[0].2["status"]["conditions"][0];
    assert_eq!((kpr["status"].as_str(), kpr["message"].as_str()), (Some("True"), Some("[]")));
    assert_eq!(w[1].2["metadata"]["finalizers"], json!([]));
    assert_eq!(w[2].2["metadata"]["labels"][keys::CRR_ACTIVE], Value::Null);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_silent_agent_or_a_missing_pod_completes_the_request() {
    let long_ago = rfc3339(Timestamp::now() - SignedDuration::from_mins(2));
    let silent = crr(json!({"metadata": {"creationTimestamp": long_ago}}));
    let (c, writes) = ctx(Some(gated_pod()));
    reconcile(Arc::new(silent), c).await.unwrap();
    let w = writes.lock().unwrap().clone();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].1.ends_with("/containerrecreaterequests/r/status"));
    assert_eq!(w[0].2["status"]["phase"], "Completed");
    assert_eq!(w[0].2["status"]["message"], "daemon has not responded for a long time");

    let orphan = crr(json!({"status": {"phase": "Recreating"}}));
    let (c, writes) = ctx(None);
    reconcile(Arc::new(orphan), c).await.unwrap();
    let w = writes.lock().unwrap().clone();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].2["status"]["message"], "pod has gone");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_pending_request_is_requeued_for_its_next_deadline() {
    let created = Timestamp::now() - SignedDuration::from_secs(15);
    let r = crr(
        json!({"metadata": {"creationTimestamp": rfc3339(created)}, "spec": {"activeDeadlineSeconds": 30},
                       "status": {"phase": "Pending"}}),
    );
    let (c, writes) = ctx(Some(gated_pod()));
    let action = reconcile(Arc::new(r.clone()), c).await.unwrap();
    assert!(writes.lock().unwrap().is_empty(), "nothing to write while Pending");
    // the deadline is 30 s after creation (whole seconds): 14-15 s away
    let Due::Wait(Some(left)) = deadlines(&r, Timestamp::now()) else { panic!("no deadline") };
    assert!(left > Duration::from_secs(13) && left <= Duration::from_secs(15), "{left:?}");
    assert!(format!("{action:?}").contains("requeue_after: Some"), "{action:?}");
}
