//! Binding, eviction with PodDisruptionBudgets, garbage collection and the binary.

use std::{io::BufRead, time::Duration};

use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    core::v1::{ConfigMap, Pod},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use stevedore_tests::cluster::skipped_on_real_cluster;

use super::{api_err, eventually, pod, start};

async fn bind(client: &Client, namespace: &str, name: &str, node: &str) -> Result<(), kube::Error> {
    let req = http::Request::post(format!("/api/v1/namespaces/{namespace}/pods/{name}/binding"))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name}, "target": {"kind": "Node", "name": node}}))
            .unwrap(),
        )
        .unwrap();
    client.request::<serde_json::Value>(req).await.map(|_| ())
}

#[tokio::test]
async fn binding_and_eviction() {
    let cluster = start().await;
    let ns = cluster.namespace();
    // kube retries 429 with backoff by default; here it must come back at once.
    let mut cfg = cluster.config();
    cfg.default_retry = false;
    let client = Client::try_from(cfg).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &pod("a")).await.unwrap();
    bind(&client, ns, "a", "n1").await.unwrap();
    assert_eq!(pods.get("a").await.unwrap().spec.unwrap().node_name.as_deref(), Some("n1"));
    let e = api_err(bind(&client, ns, "a", "n2").await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    let nodes = ListParams::default().fields("spec.nodeName=n1");
    assert_eq!(pods.list(&nodes).await.unwrap().items.len(), 1);

    // A running pod under a budget allowing no disruption cannot be evicted. The test
    // writes the budget's status as the disruption controller computes it (a real
    // cluster's does the same).
    let running = Patch::Merge(json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}}));
    pods.patch_status("a", &PatchParams::default(), &running).await.unwrap();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let st =
        Patch::Merge(json!({"status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1,
        "expectedPods": 1, "observedGeneration": 1}}));
    pdbs.patch_status("web", &PatchParams::default(), &st).await.unwrap();
    let e = api_err(pods.evict("a", &EvictParams::default()).await);
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    assert!(pods.get("a").await.is_ok());
    let spec = Patch::Merge(json!({"spec": {"minAvailable": 0}}));
    pdbs.patch("web", &PatchParams::default(), &spec).await.unwrap();
    let st = Patch::Merge(
        json!({"status": {"disruptionsAllowed": 1, "desiredHealthy": 0, "observedGeneration": 2}}),
    );
    pdbs.patch_status("web", &PatchParams::default(), &st).await.unwrap();
    // kube sends `delete_options` (not `deleteOptions`), which a real server ignores too:
    // the pod gets its default grace period and waits for its kubelet.
    pods.evict("a", &EvictParams::default()).await.unwrap();
    assert_eq!(pods.get("a").await.unwrap().metadata.deletion_grace_period_seconds, Some(30));
    pods.delete("a", &DeleteParams::default().grace_period(0)).await.unwrap();
    assert_eq!(api_err(pods.get("a").await).code, 404);
    assert_eq!(pdbs.get("web").await.unwrap().status.unwrap().disruptions_allowed, 0);
    cluster.finish().await.unwrap();
}

fn owned(kind: &str, name: &str, owner: &ReplicaSet, block: bool) -> serde_json::Value {
    json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind,
        "name": owner.name_any(), "uid": owner.uid().unwrap(), "controller": true, "blockOwnerDeletion": block}]}})
}

fn replicaset(name: &str) -> ReplicaSet {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
    .unwrap()
}

#[tokio::test]
async fn garbage_collection() {
    let cluster = start().await;
    let rss: Api<ReplicaSet> = cluster.api();
    let cms: Api<ConfigMap> = cluster.api();
    let pods: Api<Pod> = cluster.api();
    async fn mk(rss: &Api<ReplicaSet>, cms: &Api<ConfigMap>, n: &str) -> ReplicaSet {
        let rs = rss.create(&PostParams::default(), &replicaset(n)).await.unwrap();
        let cm: ConfigMap =
            serde_json::from_value(owned("ReplicaSet", &format!("{n}-cm"), &rs, true)).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        rs
    }
    let gone = |cms: &Api<ConfigMap>, name: &'static str| {
        let cms = cms.clone();
        async move { matches!(cms.get(name).await, Err(kube::Error::Api(s)) if s.code == 404) }
    };
    // Background: dependents go after the owner.
    mk(&rss, &cms, "bg").await;
    rss.delete("bg", &DeleteParams::background()).await.unwrap();
    eventually("background deletion", || gone(&cms, "bg-cm")).await;
    // Orphan: dependents stay, without the reference.
    mk(&rss, &cms, "or").await;
    rss.delete("or", &DeleteParams::orphan()).await.unwrap();
    eventually("the orphaned dependent to lose its reference", || async {
        cms.get("or-cm").await.unwrap().owner_references().is_empty()
    })
    .await;
    // Foreground: the owner waits (with its finalizer) for a blocking dependent that
    // itself waits, here a pod bound to a node in its grace period.
    let rs = mk(&rss, &cms, "fg").await;
    let mut p: Pod = serde_json::from_value(owned("ReplicaSet", "fg-pod", &rs, true)).unwrap();
    p.spec = pod("x").spec;
    p.spec.as_mut().unwrap().node_name = Some("n1".into());
    pods.create(&PostParams::default(), &p).await.unwrap();
    rss.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let waiting = rss.get("fg").await.unwrap();
    assert!(waiting.finalizers().contains(&"foregroundDeletion".to_string()));
    eventually("foreground deletion of the dependents", || async {
        gone(&cms, "fg-cm").await && pods.get("fg-pod").await.unwrap().metadata.deletion_timestamp.is_some()
    })
    .await;
    assert!(rss.get("fg").await.is_ok(), "the owner waits for its blocking dependent");
    pods.delete("fg-pod", &DeleteParams::default().grace_period(0)).await.unwrap();
    eventually("the owner to go", || async {
        matches!(rss.get("fg").await, Err(kube::Error::Api(s)) if s.code == 404)
    })
    .await;
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn binary_serves_with_a_kubeconfig() {
    if skipped_on_real_cluster("it tests the simulator's binary").unwrap() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, r#"{"agent-n1": {"username": "system:node:n1", "extra": {"node": ["n1"]}}}"#)
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stevedore-apiserver"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .arg("--tokens")
        .arg(&tokens)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("http://127.0.0.1:"), "{line}");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    let client = Client::try_from(cfg).unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let r = tokio::time::timeout(Duration::from_secs(5), cms.list(&ListParams::default())).await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = child.wait().unwrap();
    r.unwrap().unwrap();
    assert!(status.success());
}
