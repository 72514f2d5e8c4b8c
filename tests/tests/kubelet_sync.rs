//! The simulated kubelet's pod sync on the real test bed (containerd behind the real
//! proxy), driven directly — one `sync_pod_once` per step — with a hand-written fake
//! of the few API calls a sync makes (pod GET, `pods/status` PUT, DELETE, ConfigMap
//! and Secret GETs). The watch-driven kubelet runs on the simulated API server in
//! `tests/kubelet.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use stevedore_proto::cri::{
    ContainerFilter, ExecSyncRequest, ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter,
};
use stevedore_tests::cri::{self, RuntimeClient};
use stevedore_tests::kubelet::{self, Config, NODE_LABEL};
use stevedore_tests::proxy_process::ProxyProcess;
use stevedore_tests::testbed::TestBed;

/// The fake API: objects by path, and the DELETE bodies it got.
#[derive(Clone, Default)]
struct FakeApi {
    objects: Arc<Mutex<HashMap<String, Value>>>,
    deletes: Arc<Mutex<Vec<(String, Value)>>>,
}

impl FakeApi {
    fn put(&self, path: &str, v: Value) {
        self.objects.lock().unwrap().insert(path.to_owned(), v);
    }

    fn pod(&self, name: &str) -> Pod {
        let v = self.objects.lock().unwrap()[&pod_path(name)].clone();
        serde_json::from_value(v).unwrap()
    }

    fn client(&self) -> kube::Client {
        let me = self.clone();
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect_bytes().await?.to_vec();
                let path = parts.uri.path().trim_end_matches("/status").to_owned();
                let (code, out) = me.answer(&parts.method, &path, body);
                let resp = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap();
                Ok::<_, kube::Error>(resp)
            }
        });
        kube::Client::new(svc, "default")
    }

    fn answer(&self, method: &http::Method, path: &str, body: Vec<u8>) -> (u16, Value) {
        let mut objects = self.objects.lock().unwrap();
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404, "message": format!("{path} not found")});
        match method.as_str() {
            "GET" => objects.get(path).map_or((404, not_found), |v| (200, v.clone())),
            "PUT" => {
                let mut v: Value = serde_json::from_slice(&body).unwrap();
                let rv = objects
                    .get(path)
                    .and_then(|o| o["metadata"]["resourceVersion"].as_str()?.parse::<u64>().ok());
                v["metadata"]["resourceVersion"] = json!((rv.unwrap_or(0) + 1).to_string());
                objects.insert(path.to_owned(), v.clone());
                (200, v)
            }
            "DELETE" => {
                self.deletes
                    .lock()
                    .unwrap()
                    .push((path.to_owned(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
                objects.remove(path).map_or((404, not_found), |v| (200, v))
            }
            _ => (405, json!({"kind": "Status", "code": 405, "status": "Failure"})),
        }
    }
}

fn pod_path(name: &str) -> String {
    format!("/api/v1/namespaces/default/pods/{name}")
}

/// Syncs (re-reading the pod from the fake each time) until `done` holds.
async fn sync_until(
    cfg: &Config,
    api: &FakeApi,
    name: &str,
    what: &str,
    done: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let client = api.client();
    let t0 = Instant::now();
    loop {
        let pod = api.pod(name);
        if done(&pod) {
            return Ok(pod);
        }
        if t0.elapsed() > Duration::from_secs(90) {
            bail!("{what}: not reached in 90 s; status: {}", serde_json::to_string_pretty(&pod.status)?);
        }
        kubelet::sync_pod_once(cfg, &client, &pod).await.with_context(|| format!("sync ({what})"))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn status_of<'a>(pod: &'a Pod, name: &str) -> &'a k8s_openapi::api::core::v1::ContainerStatus {
    let s = pod.status.as_ref().unwrap();
    s.container_statuses
        .iter()
        .chain(s.init_container_statuses.iter())
        .flatten()
        .find(|c| c.name == name)
        .unwrap()
}

use stevedore_tests::kubelet::status::running_and_ready as running;

fn condition(pod: &Pod, t: &str) -> String {
    pod.status.as_ref().unwrap().conditions.iter().flatten().find(|c| c.type_ == t).unwrap().status.clone()
}

async fn containers(
    rt: &mut RuntimeClient,
    uid: &str,
    node: &str,
) -> anyhow::Result<Vec<stevedore_proto::cri::Container>> {
    let filter = ContainerFilter {
        label_selector: HashMap::from([
            ("io.kubernetes.pod.uid".to_owned(), uid.to_owned()),
            (NODE_LABEL.to_owned(), node.to_owned()),
        ]),
        ..Default::default()
    };
    Ok(rt.list_containers(ListContainersRequest { filter: Some(filter) }).await?.into_inner().containers)
}

async fn sandboxes(rt: &mut RuntimeClient, uid: &str, node: &str) -> anyhow::Result<Vec<String>> {
    let filter = PodSandboxFilter {
        label_selector: HashMap::from([
            ("io.kubernetes.pod.uid".to_owned(), uid.to_owned()),
            (NODE_LABEL.to_owned(), node.to_owned()),
        ]),
        ..Default::default()
    };
    let items = rt.list_pod_sandbox(ListPodSandboxRequest { filter: Some(filter) }).await?.into_inner().items;
    Ok(items.into_iter().map(|s| s.id).collect())
}

async fn exec(rt: &mut RuntimeClient, id: &str, cmd: &[&str]) -> anyhow::Result<String> {
    let req = ExecSyncRequest {
        container_id: id.to_owned(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout: 10,
    };
    let r = rt.exec_sync(req).await?.into_inner();
    Ok(String::from_utf8_lossy(&r.stdout).into_owned())
}

fn node_cfg(bed: &TestBed, proxy: &Path, name: &str) -> Config {
    let mut cfg = Config::new(name, Some(proxy.to_owned()), bed.dir().join(format!("kubelet-{name}")));
    cfg.host_ip = "10.0.0.1".to_owned();
    cfg
}

fn the_pod(bed: &TestBed, name: &str, uid: &str, node: &str, out_dir: &Path) -> Value {
    let field = |n: &str, p: &str| json!({"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}});
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "1",
                     "labels": {"app": "web"}, "annotations": {"team": "blue"}},
        "spec": {
            "nodeName": node, "serviceAccountName": "builder", "terminationGracePeriodSeconds": 5,
            "volumes": [{"name": "data", "emptyDir": {}},
                        {"name": "out", "hostPath": {"path": out_dir, "type": "DirectoryOrCreate"}},
                        {"name": "cfg", "configMap": {"name": "settings"}}],
            "initContainers": [{"name": "init", "image": bed.image("app:v1"),
                "command": ["sh", "-c", "echo prepared > /data/ready"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "containers": [
                {"name": "app", "image": bed.image("app:v1"), "imagePullPolicy": "IfNotPresent",
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "envdump", "image": bed.image("app:v1"),
                 "command": ["sh", "-c", "env > /out/env.txt; cat /data/ready > /out/init.txt; trap 'exit 0' TERM; sleep 100000 & wait"],
                 "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                 "readinessProbe": {"exec": {"command": ["test", "-f", "/out/env.txt"]}},
                 "volumeMounts": [{"name": "out", "mountPath": "/out"}, {"name": "data", "mountPath": "/data"}],
                 "env": [field("POD_NAME", "metadata.name"), field("POD_NS", "metadata.namespace"),
                         field("POD_UID", "metadata.uid"), field("APP", "metadata.labels['app']"),
                         field("TEAM", "metadata.annotations['team']"), field("NODE", "spec.nodeName"),
                         field("SA", "spec.serviceAccountName"), field("POD_IP", "status.podIP"),
                         field("HOST_IP", "status.hostIP"),
                         {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                         {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                         {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                         {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                         {"name": "COMBINED", "value": "$(POD_NAME)@$(NODE)"}]}
            ]
        },
        "status": {"phase": "Pending"}
    })
}

fn seed_sources(api: &FakeApi) {
    api.put(
        "/api/v1/namespaces/default/configmaps/settings",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"}, "data": {"greeting": "hello"}}),
    );
    api.put(
        "/api/v1/namespaces/default/secrets/creds",
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"}, "data": {"password": "czNjcmV0"}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_lifecycle_through_the_proxy() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    let mut rt = cri::runtime_client(cri::connect(proxy.socket()).await?);
    let cfg = node_cfg(&bed, proxy.socket(), "node-a");
    let out = bed.dir().join("out-a");
    let api = FakeApi::default();
    seed_sources(&api);
    api.put(&pod_path("web"), the_pod(&bed, "web", "uid-web-1", "node-a", &out));

    // Init container, then both containers: Running and Ready.
    let pod = sync_until(&cfg, &api, "web", "running", running).await?;
    let st = pod.status.as_ref().unwrap();
    for c in ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled"] {
        assert_eq!(condition(&pod, c), "True", "{c}");
    }
    let init = status_of(&pod, "init");
    assert_eq!(
        init.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(),
        Some("Completed")
    );
    let pod_ip = st.pod_ip.clone().unwrap();
    assert!(pod_ip.starts_with(&format!("10.234.{}.", bed.slot())), "{pod_ip}");
    assert_eq!(st.host_ip.as_deref(), Some("10.0.0.1"));
    assert!(st.start_time.is_some());
    for name in ["app", "envdump"] {
        let cs = status_of(&pod, name);
        assert!(cs.ready && cs.started == Some(true), "{name}");
        assert_eq!(cs.restart_count, 0);
        assert!(cs.container_id.as_deref().unwrap().starts_with("containerd://"));
        assert!(!cs.image_id.is_empty());
        assert!(cs.state.as_ref().unwrap().running.is_some());
    }
    // kubelet's labels and annotations on the container.
    let ctrs = containers(&mut rt, "uid-web-1", "node-a").await?;
    let app = ctrs.iter().find(|c| c.metadata.as_ref().unwrap().name == "app").unwrap();
    assert_eq!(app.labels["io.kubernetes.pod.name"], "web");
    assert_eq!(app.labels["io.kubernetes.container.name"], "app");
    assert_eq!(
        app.annotations["io.kubernetes.container.hash"],
        kubelet::hash::container_hash_annotation("app", &bed.image("app:v1"))
    );
    assert_eq!(app.annotations["io.kubernetes.container.restartCount"], "0");

    // The environment, resolved at creation.
    let env = std::fs::read_to_string(out.join("env.txt"))?;
    let want = [
        "POD_NAME=web".to_owned(),
        "POD_NS=default".to_owned(),
        "POD_UID=uid-web-1".to_owned(),
        "APP=web".to_owned(),
        "TEAM=blue".to_owned(),
        "NODE=node-a".to_owned(),
        "SA=builder".to_owned(),
        format!("POD_IP={pod_ip}"),
        "HOST_IP=10.0.0.1".to_owned(),
        "CPU_M=500".to_owned(),
        "MEM_MI=64".to_owned(),
        "GREETING=hello".to_owned(),
        "PASSWORD=s3cret".to_owned(),
        "COMBINED=web@node-a".to_owned(),
    ];
    for w in &want {
        assert!(env.lines().any(|l| l == w), "{w} missing from:\n{env}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("init.txt"))?.trim(),
        "prepared",
        "emptyDir shared with init"
    );

    // An image change: the same sandbox, the container recreated, restartCount 1.
    let sandbox_before = sandboxes(&mut rt, "uid-web-1", "node-a").await?;
    let mut v = serde_json::to_value(api.pod("web"))?;
    v["spec"]["containers"][0]["image"] = json!(bed.image("app:v2"));
    api.put(&pod_path("web"), v);
    let pod = sync_until(&cfg, &api, "web", "restarted on v2", |p| {
        let cs = status_of(p, "app");
        cs.restart_count == 1 && cs.ready && running(p)
    })
    .await?;
    assert_eq!(sandboxes(&mut rt, "uid-web-1", "node-a").await?, sandbox_before);
    let cs = status_of(&pod, "app");
    assert_eq!(cs.image, bed.image("app:v2"));
    assert!(cs.last_state.as_ref().unwrap().terminated.is_some());
    let id = cs.container_id.as_deref().unwrap().trim_start_matches("containerd://").to_owned();
    assert_eq!(exec(&mut rt, &id, &["cat", "/etc/app-version"]).await?.trim(), "v2");
    assert_eq!(status_of(&pod, "envdump").restart_count, 0);

    // A restarted kubelet (a fresh connection, no memory) adopts what runs.
    let ids_before: Vec<String> =
        containers(&mut rt, "uid-web-1", "node-a").await?.into_iter().map(|c| c.id).collect();
    let mut restarted = node_cfg(&bed, proxy.socket(), "node-a");
    restarted.sync_interval = Duration::from_millis(100);
    for _ in 0..3 {
        kubelet::sync_pod_once(&restarted, &api.client(), &api.pod("web")).await?;
    }
    let mut ids_after: Vec<String> =
        containers(&mut rt, "uid-web-1", "node-a").await?.into_iter().map(|c| c.id).collect();
    let mut sorted_before = ids_before.clone();
    sorted_before.sort();
    ids_after.sort();
    assert_eq!(ids_after, sorted_before);
    assert_eq!(status_of(&api.pod("web"), "app").restart_count, 1);

    // Graceful deletion: containers stopped (they exit on TERM), sandbox removed, the
    // pod deleted with grace 0.
    let mut v = serde_json::to_value(api.pod("web"))?;
    v["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
    v["metadata"]["deletionGracePeriodSeconds"] = json!(5);
    api.put(&pod_path("web"), v);
    let t0 = Instant::now();
    assert!(kubelet::sync_pod_once(&cfg, &api.client(), &api.pod("web")).await?);
    assert!(t0.elapsed() < Duration::from_secs(5), "stopped within the grace period");
    let deletes = api.deletes.lock().unwrap().clone();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].1["gracePeriodSeconds"], json!(0));
    assert_eq!(deletes[0].1["preconditions"]["uid"], json!("uid-web-1"));
    assert!(containers(&mut rt, "uid-web-1", "node-a").await?.is_empty());
    assert!(sandboxes(&mut rt, "uid-web-1", "node-a").await?.is_empty());
    assert!(!cfg.root_dir.join("pods/uid-web-1").exists(), "emptyDir removed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_containerd_keep_apart() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let mut rt = cri::runtime_client(cri::connect(bed.containerd_socket()).await?);
    let (a, b) = (
        node_cfg(&bed, bed.containerd_socket(), "node-a"),
        node_cfg(&bed, bed.containerd_socket(), "node-b"),
    );
    // Both nodes are given a pod with the same uid (the worst case for filtering; the
    // names differ, as containerd reserves sandbox names by name, namespace and uid).
    let (api_a, api_b) = (FakeApi::default(), FakeApi::default());
    for (api, node) in [(&api_a, "node-a"), (&api_b, "node-b")] {
        seed_sources(api);
        api.put(
            &pod_path(node),
            the_pod(&bed, node, "uid-same", node, &bed.dir().join(format!("out-{node}"))),
        );
    }
    sync_until(&a, &api_a, "node-a", "running on a", running).await?;
    sync_until(&b, &api_b, "node-b", "running on b", running).await?;
    let ids_a: Vec<String> =
        containers(&mut rt, "uid-same", "node-a").await?.into_iter().map(|c| c.id).collect();
    assert_eq!(ids_a.len(), 3, "init + two containers");
    assert_eq!(containers(&mut rt, "uid-same", "node-b").await?.len(), 3);
    let status_a = api_a.pod("node-a").status.unwrap();
    let status_b = api_b.pod("node-b").status.unwrap();
    assert_ne!(status_a.pod_ip, status_b.pod_ip, "each node its own sandbox");

    // Node b deletes its pod; node a's containers and sandbox are untouched.
    let mut v = serde_json::to_value(api_b.pod("node-b"))?;
    v["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
    v["metadata"]["deletionGracePeriodSeconds"] = json!(2);
    api_b.put(&pod_path("node-b"), v);
    assert!(kubelet::sync_pod_once(&b, &api_b.client(), &api_b.pod("node-b")).await?);
    assert!(containers(&mut rt, "uid-same", "node-b").await?.is_empty());
    let mut after: Vec<String> =
        containers(&mut rt, "uid-same", "node-a").await?.into_iter().map(|c| c.id).collect();
    let mut before = ids_a.clone();
    before.sort();
    after.sort();
    assert_eq!(after, before);
    assert_eq!(sandboxes(&mut rt, "uid-same", "node-a").await?.len(), 1);
    // And node a syncing again changes nothing.
    kubelet::sync_pod_once(&a, &api_a.client(), &api_a.pod("node-a")).await?;
    assert!(running(&api_a.pod("node-a")));
    Ok(())
}
