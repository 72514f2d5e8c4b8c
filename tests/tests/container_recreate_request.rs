//! ContainerRecreateRequest, the controller's side, with the real controller binary
//! against the simulated API server: its mutating webhook looking the pod up
//! (refusing a request for a missing pod, filling in labels, preStop, ports and
//! statusContext), and its controller completing a request whose pod is deleted or
//! whose activeDeadlineSeconds pass, deleting a finished one after its TTL, syncing
//! the pod's restarted containers into the request, and holding the pod not ready
//! (finalizer, KruisePodReady key, annotation) while it is Recreating with an unready
//! grace, released on completion; a request on a pod a node agent runs (left out of
//! the controller's pod watch) completing too once its pod is deleted. The test plays the node agent: it writes the
//! requests' status as the agent would.

use std::time::{Duration, Instant};

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use stevedore_proto::{crd::container_recreate_request::ContainerRecreateRequest, keys};
use stevedore_tests::{
    apiserver::{ADMIN_TOKEN, Hooks, Options},
    cluster::{Services, TestCluster},
    controller_process::serving_webhooks,
    pod_objects,
    wait::until,
};

const WAIT: Duration = Duration::from_secs(20);

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn request(ns: &str, name: &str, pod: &str, containers: &[&str], spec: Value) -> ContainerRecreateRequest {
    let containers: Vec<Value> = containers.iter().map(|c| json!({"name": c})).collect();
    let mut v = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ContainerRecreateRequest",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"podName": pod, "containers": containers}
    });
    json_patch::merge(&mut v["spec"], &spec);
    serde_json::from_value(v).unwrap()
}

/// Writes the request's status as the agent would.
async fn agent_status(api: &Api<ContainerRecreateRequest>, name: &str, status: Value) {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await.unwrap();
}

fn condition(pod: &Pod, type_: &str) -> Option<(String, String)> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.message.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_admitted_completed_released_and_deleted() {
    let services = Services::default();
    let opts = Options { hooks: Hooks::webhooks(services.clone()), ..Options::default() };
    let Some(cluster) = TestCluster::simulator_only_with(
        "it installs the project's CRDs and webhooks, which would replace OpenKruise's",
        opts,
        services.clone(),
    )
    .await
    .unwrap() else {
        return;
    };
    let client: Client = cluster.client();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.simulator().unwrap().write_kubeconfig(&kubeconfig, ADMIN_TOKEN).unwrap();
    let controller = serving_webhooks(&client, &services, &kubeconfig, dir.path()).await.unwrap();
    let ns = cluster.namespace().to_owned();
    let crrs: Api<ContainerRecreateRequest> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let log = || controller.log_tail(30);

    // web: app (preStop httpGet, a port) and sidecar, with the KruisePodReady gate
    let mut web = pod_objects::running(&ns, "web", "node-a", &["app", "sidecar"]);
    web["spec"]["containers"][0]["lifecycle"] =
        json!({"preStop": {"httpGet": {"path": "/drain", "port": 8080}}});
    web["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 8080, "name": "http", "protocol": "TCP"}]);
    web["spec"]["readinessGates"] = json!([{"conditionType": "KruisePodReady"}]);
    web["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "KruisePodReady", "status": "True", "message": "[]"}));
    let web = pod_objects::create(&client, &web).await.unwrap();
    let doomed =
        pod_objects::create(&client, &pod_objects::running(&ns, "doomed", "node-b", &["app"])).await.unwrap();

    // Admission: a request for a missing pod is refused, naming the field; a good
    // one gets the pod's labels, preStop, ports and statusContext.
    let missing =
        crrs.create(&PostParams::default(), &request(&ns, "missing", "nosuch", &["app"], json!({}))).await;
    match missing {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 400, "{}", e.message);
            assert!(e.message.contains(&format!("spec.podName: pod {ns}/nosuch not found")), "{}", e.message);
        }
        other => panic!("a request for a missing pod: {other:?}"),
    }
    let filled = crrs
        .create(&PostParams::default(), &request(&ns, "filled", "web", &["app", "sidecar"], json!({})))
        .await;
    let filled = filled.unwrap_or_else(|e| panic!("refused: {e}\n{}", log()));
    let labels = filled.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("crr.apps.kruise.io/pod-uid"), web.metadata.uid.as_ref());
    assert_eq!(labels.get("crr.apps.kruise.io/node-name").map(String::as_str), Some("node-a"));
    assert_eq!(labels.get("crr.apps.kruise.io/active").map(String::as_str), Some("true"));
    let spec = serde_json::to_value(&filled.spec).unwrap();
    assert_eq!(spec["containers"][0]["preStop"], json!({"httpGet": {"path": "/drain", "port": 8080}}));
    assert_eq!(spec["containers"][0]["ports"][0]["containerPort"], 8080);
    assert_eq!(
        spec["containers"][0]["statusContext"],
        json!({"containerID": "containerd://web-0", "restartCount": 0})
    );
    assert_eq!(
        spec["containers"][1]["statusContext"],
        json!({"containerID": "containerd://web-1", "restartCount": 0})
    );
    assert_eq!(spec["strategy"]["terminationGracePeriodSeconds"], 45, "the pod's");

    // Pod deleted: completed with a message, the active label dropped.
    crrs.create(&PostParams::default(), &request(&ns, "gone", "doomed", &["app"], json!({}))).await.unwrap();
    agent_status(&crrs, "gone", json!({"phase": "Pending"})).await;
    pods.delete("doomed", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .unwrap();
    drop(doomed);
    let gone = until("the request of a deleted pod completed", WAIT, async || {
        let r = crrs.get("gone").await?;
        let done = r.status.as_ref().is_some_and(|s| s.completion_time.is_some())
            && !r.metadata.labels.as_ref().is_some_and(|l| l.contains_key("crr.apps.kruise.io/active"));
        Ok(done.then_some(r))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let status = gone.status.unwrap();
    assert_eq!(format!("{:?}", status.phase), "Completed");
    assert_eq!(status.message.as_deref(), Some("pod has gone"));

    // The same for a pod a node agent runs (an Advanced DaemonSet's), which the
    // controller's pod watch leaves out: the request is looked at while unfinished.
    let mut local = pod_objects::running(&ns, "daemon", "node-c", &["app"]);
    local["metadata"]["labels"] = json!({keys::NODE_LOCAL: "true"});
    pod_objects::create(&client, &local).await.unwrap();
    crrs.create(&PostParams::default(), &request(&ns, "gone-local", "daemon", &["app"], json!({})))
        .await
        .unwrap();
    agent_status(&crrs, "gone-local", json!({"phase": "Pending"})).await;
    pods.delete("daemon", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .unwrap();
    let gone = until("the request of a node agent's deleted pod completed", WAIT, async || {
        let r = crrs.get("gone-local").await?;
        Ok(r.status.filter(|s| s.completion_time.is_some()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(gone.message.as_deref(), Some("pod has gone"));

    // activeDeadlineSeconds: completed when they pass, not before.
    let created = Instant::now();
    crrs.create(
        &PostParams::default(),
        &request(&ns, "late", "web", &["app"], json!({"activeDeadlineSeconds": 3})),
    )
    .await
    .unwrap();
    agent_status(&crrs, "late", json!({"phase": "Pending"})).await;
    let late = until("the request past its deadline completed", WAIT, async || {
        let r = crrs.get("late").await?;
        Ok(r.status.filter(|s| s.completion_time.is_some()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    // creationTimestamp has whole seconds: the deadline may fall up to 1 s early
    assert!(created.elapsed() >= Duration::from_secs(2), "completed after {:?}", created.elapsed());
    assert_eq!(late.message.as_deref(), Some("recreating has exceeded the activeDeadlineSeconds"));

    // Unready grace: while Recreating, the finalizer, the pod's not-ready key and the
    // annotation; a restarted container synced into the request; all released on
    // completion, then the request deleted after its TTL.
    let spec = json!({"strategy": {"unreadyGracePeriodSeconds": 1}, "ttlSecondsAfterFinished": 2});
    crrs.create(&PostParams::default(), &request(&ns, "graced", "web", &["app"], spec)).await.unwrap();
    agent_status(&crrs, "graced", json!({"phase": "Recreating"})).await;
    let key = format!(r#"{{"userAgent":"ContainerRecreateRequest","key":"{ns}/graced"}}"#);
    let acquired = until("the pod held not ready", WAIT, async || {
        let r = crrs.get("graced").await?;
        let p = pods.get("web").await?;
        let held = condition(&p, "KruisePodReady").is_some_and(|(s, m)| s == "False" && m.contains(&key));
        let annotated = r
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("crr.apps.kruise.io/unready-acquired"));
        Ok((held && annotated).then_some((r, p)))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    let (r, p) = acquired;
    assert!(
        r.metadata.finalizers.unwrap_or_default().contains(&"crr.apps.kruise.io/unready-acquired".to_owned())
    );
    assert_eq!(condition(&p, "Ready").map(|(s, _)| s).as_deref(), Some("False"), "Ready follows the gate");
    let annotations = r.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("crr.apps.kruise.io/sync-container-statuses").map(String::as_str), Some("[]"));

    // the agent restarts app: the new container is synced into the request
    let restarted = json!({"status": {"containerStatuses": [
        {"name": "app", "image": "busybox", "imageID": "", "ready": true, "restartCount": 1,
         "containerID": "containerd://web-0-new", "state": {"running": {"startedAt": now()}}},
        {"name": "sidecar", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0,
         "containerID": "containerd://web-1", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}});
    pods.patch_status("web", &PatchParams::default(), &Patch::Strategic(&restarted)).await.unwrap();
    until("the restarted container synced", WAIT, async || {
        let r = crrs.get("graced").await?;
        let synced =
            r.metadata.annotations.unwrap_or_default().remove("crr.apps.kruise.io/sync-container-statuses");
        let want = r#"[{"name":"app","ready":true,"restartCount":1,"containerID":"containerd://web-0-new"}]"#;
        Ok((synced.as_deref() == Some(want)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));

    let completed = Instant::now();
    agent_status(&crrs, "graced", json!({"phase": "Completed", "completionTime": now()})).await;
    until("the pod's key released", WAIT, async || {
        let p = pods.get("web").await?;
        Ok(condition(&p, "KruisePodReady").filter(|(s, m)| s == "True" && m == "[]").map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    until("the request deleted after its TTL", WAIT, async || {
        Ok(crrs.get_opt("graced").await?.is_none().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert!(completed.elapsed() >= Duration::from_secs(1), "deleted after {:?}", completed.elapsed());

    drop(controller);
    cluster.finish().await.unwrap();
}
