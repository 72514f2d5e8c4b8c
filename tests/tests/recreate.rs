//! Fast container recreation in the real `stevedore-cri-proxy` on a real containerd,
//! with the simulated kubelet driving the pod through the proxy: the proxy recreates
//! a container from kubelet's recorded request (env overrides applied, the next
//! attempt's log file, lifecycle events with timings), kubelet adopts it without a
//! second restart, and a proxy killed with SIGKILL in the middle of a recreate
//! finishes it when it starts again, records consistent. With the real agent: a pod
//! label that a container env reads changes, and the container is recreated once
//! with the new value; an image and label change together cost one restart too.

use std::time::Duration;

use prost::Message as _;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use stevedore_proto::{
    control::{
        KeyValue, RecreateContainerRequest, WatchContainerEventsRequest, container_event::Kind,
        control_client::ControlClient,
    },
    cri::{ExecSyncRequest, ListContainersRequest, StartContainerRequest},
};
use stevedore_tests::{
    agent_process::{AgentOptions, AgentProcess},
    apiserver::{ADMIN_TOKEN, ApiServer, Options},
    cri,
    kubelet::{Config, Kubelet, status::running_and_ready},
    proxy_process::ProxyProcess,
    scheduler::Scheduler,
    testbed::TestBed,
};
use tokio_util::sync::CancellationToken;

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
    .unwrap()
}

/// The id (without `containerd://`) and restart count of container `name`, once the
/// pod is running and ready.
fn container(p: &Pod, name: &str) -> Option<(String, i32)> {
    if !running_and_ready(p) {
        return None;
    }
    let s = p.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == name)?;
    let id = s.container_id.as_deref()?.split_once("://")?.1.to_owned();
    Some((id, s.restart_count))
}

async fn wait_container(
    pods: &Api<Pod>,
    pod: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&str, i32) -> bool,
) -> anyhow::Result<(String, i32)> {
    stevedore_tests::wait::until(what, Duration::from_secs(90), async || {
        Ok(pods.get_opt(pod).await?.and_then(|p| container(&p, name)).filter(|(id, rc)| ok(id, *rc)))
    })
    .await
}

async fn env_of(rt: &mut cri::RuntimeClient, id: &str) -> anyhow::Result<String> {
    let out = rt
        .exec_sync(ExecSyncRequest { container_id: id.into(), cmd: vec!["env".into()], timeout: 10 })
        .await?
        .into_inner();
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Node {
    bed: TestBed,
    proxy: ProxyProcess,
    control: ControlClient<tonic::transport::Channel>,
    pods: Api<Pod>,
    stop: CancellationToken,
    kubelet: Kubelet,
    scheduler: Scheduler,
    api: ApiServer,
}

impl Node {
    async fn start() -> anyhow::Result<Self> {
        let api = ApiServer::start(Options::default()).await?;
        let client = api.client().await?;
        let bed = TestBed::start().await?;
        let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
        let control = ControlClient::new(cri::connect(proxy.control_socket().expect("our proxy")).await?);
        let mut cfg = Config::new("node-r", Some(proxy.socket().to_owned()), bed.dir().join("kubelet"));
        cfg.sync_interval = Duration::from_millis(300);
        let stop = CancellationToken::new();
        let kubelet = Kubelet::start(cfg, client.clone(), stop.clone()).await?;
        let scheduler = Scheduler::start(client.clone(), stop.clone());
        let pods = Api::namespaced(client, "default");
        Ok(Self { bed, proxy, control, pods, stop, kubelet, scheduler, api })
    }

    async fn finish(self) {
        self.stop.cancel();
        self.kubelet.join().await;
        self.scheduler.join().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_recreates_a_container_and_kubelet_adopts_it() -> anyhow::Result<()> {
    let mut node = Node::start().await?;
    let spec = json!({
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "app", "image": node.bed.image("app:v1"),
            "env": [{"name": "ZONE", "value": "a"}]}]
    });
    node.pods.create(&PostParams::default(), &pod("web", spec)).await?;
    let (old, rc) = wait_container(&node.pods, "web", "app", "web running", |_, _| true).await?;
    assert_eq!(rc, 0);
    let uid = node.pods.get("web").await?.metadata.uid.unwrap();
    let mut events = node
        .control
        .watch_container_events(WatchContainerEventsRequest { pod_uid: uid.clone() })
        .await?
        .into_inner();

    let done = node
        .control
        .recreate_container(RecreateContainerRequest {
            container_id: format!("containerd://{old}"),
            grace_period_seconds: 2,
            env_overrides: vec![KeyValue { key: "ZONE".into(), value: "b".into() }],
            image: String::new(),
        })
        .await?
        .into_inner();
    assert!(done.recorded, "kubelet's request was recorded");
    assert_eq!(done.attempt, 1);
    assert_ne!(done.container_id, old);
    println!(
        "recreate: stop {} us, create {} us, start {} us",
        done.stop_micros, done.create_micros, done.start_micros
    );

    // the lifecycle, with timings, from the event stream
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(10), events.message()).await??.expect("stream open");
        assert_eq!(
            (e.pod_uid.as_str(), e.container_name.as_str(), e.origin.as_str()),
            (uid.as_str(), "app", "recreate")
        );
        kinds.push((Kind::try_from(e.kind)?, e.container_id));
    }
    assert_eq!(
        kinds,
        [
            (Kind::Stopped, old.clone()),
            (Kind::Created, done.container_id.clone()),
            (Kind::Started, done.container_id.clone())
        ]
    );

    // kubelet reports the new container, restartCount 1, and leaves it running
    let new = done.container_id.clone();
    let (id, rc) =
        wait_container(&node.pods, "web", "app", "web reports the new container", |id, _| id == new).await?;
    assert_eq!((id.as_str(), rc), (new.as_str(), 1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = node.pods.get("web").await?;
    assert_eq!(container(&p, "app"), Some((new.clone(), 1)), "no second restart by kubelet");
    let mut rt = cri::runtime_client(cri::connect(node.proxy.socket()).await?);
    let listed = rt.list_containers(ListContainersRequest { filter: None }).await?.into_inner().containers;
    let app: Vec<_> =
        listed.iter().filter(|c| c.metadata.as_ref().is_some_and(|m| m.name == "app")).collect();
    assert_eq!(app.len(), 2, "the old instance (exited) and the new one: {app:?}");

    // the override is in the new container's environment; the old log is kept
    let env = env_of(&mut rt, &new).await?;
    assert!(env.lines().any(|l| l == "ZONE=b"), "env of the new container: {env}");
    let logs = node.bed.dir().join("kubelet/logs").join(format!("default_web_{uid}")).join("app");
    for f in ["0.log", "1.log"] {
        assert!(logs.join(f).exists(), "{} missing", logs.join(f).display());
    }

    // a second recreate of the same container at once is refused, an unknown one too
    let unknown = node
        .control
        .recreate_container(RecreateContainerRequest { container_id: "nope".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    node.finish().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_cut_by_sigkill_is_finished_when_the_proxy_starts_again() -> anyhow::Result<()> {
    let mut node = Node::start().await?;
    // `restartPolicy: Never`: kubelet never restarts `app`; only the proxy's journal
    // brings it back. `app` takes two seconds to stop, so the kill lands mid-stop.
    let spec = json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 10,
        "containers": [
            {"name": "app", "image": node.bed.image("app:v1"),
             "command": ["sh", "-c", "trap 'sleep 2; exit 0' TERM; while true; do sleep 0.1; done"]},
            {"name": "side", "image": node.bed.image("app:v1")}]
    });
    node.pods.create(&PostParams::default(), &pod("never", spec)).await?;
    let (old, _) = wait_container(&node.pods, "never", "app", "never running", |_, _| true).await?;
    let state = node.proxy.socket().with_extension("state");
    assert!(state.join("containers").join(format!("{old}.pb")).exists(), "kubelet's request is on disk");

    let mut control = node.control.clone();
    let call = tokio::spawn({
        let old = old.clone();
        async move {
            control
                .recreate_container(RecreateContainerRequest {
                    container_id: old,
                    grace_period_seconds: 10,
                    ..Default::default()
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let journal: Vec<_> = std::fs::read_dir(state.join("journal"))?.collect();
    assert_eq!(journal.len(), 1, "the intent is journaled before the stop");
    node.proxy.kill();
    assert!(call.await?.is_err(), "the caller sees the recreate cut");

    let socket = node.proxy.socket().to_owned();
    node.proxy = ProxyProcess::start(&socket, node.bed.containerd_socket(), &[]).await?;
    let (new, rc) =
        wait_container(&node.pods, "never", "app", "app recreated after the restart", |id, _| id != old)
            .await?;
    assert_eq!(rc, 1);
    assert_eq!(std::fs::read_dir(state.join("journal"))?.count(), 0, "journal replayed and cleared");
    assert!(state.join("containers").join(format!("{new}.pb")).exists(), "the new container is recorded");
    assert_eq!(std::fs::read_dir(state.join("pending"))?.count(), 0);
    let p = node.pods.get("never").await?;
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"), "the pod lives on");
    node.finish().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_read_by_env_recreates_the_container_once_with_the_new_value() -> anyhow::Result<()> {
    let node = Node::start().await?;
    let kubeconfig = node.bed.dir().join("kubeconfig");
    node.api.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
    let opts = AgentOptions {
        node_name: "node-r".into(),
        kubeconfig,
        cri_socket: node.proxy.socket().to_owned(),
        control_socket: node.proxy.control_socket().map(ToOwned::to_owned),
        namespace: "default".into(),
        extra: vec![],
    };
    let agent = AgentProcess::start(node.bed.dir(), &opts).await?;
    let spec = json!({
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "app", "image": node.bed.image("app:v1"),
            "env": [{"name": "ZONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['zone']"}}}]}]
    });
    let mut p = pod("zoned", spec);
    p.metadata.labels = Some([("zone".to_owned(), "a".to_owned())].into());
    node.pods.create(&PostParams::default(), &p).await?;
    let (first, _) = wait_container(&node.pods, "zoned", "app", "zoned running", |_, _| true).await?;
    let mut rt = cri::runtime_client(cri::connect(node.proxy.socket()).await?);
    assert!(env_of(&mut rt, &first).await?.lines().any(|l| l == "ZONE=a"));

    // the label changes: one recreate, the new value inside
    let patch = json!({"metadata": {"labels": {"zone": "b"}}});
    node.pods.patch("zoned", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let (second, rc) =
        wait_container(&node.pods, "zoned", "app", "app recreated for zone=b", |id, _| id != first).await?;
    assert_eq!(rc, 1);
    let env = env_of(&mut rt, &second).await?;
    assert!(env.lines().any(|l| l == "ZONE=b"), "{env}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = node.pods.get("zoned").await?;
    assert_eq!(container(&now, "app"), Some((second.clone(), 1)), "exactly one restart");

    // image and label together: kubelet's restart for the image brings the value
    let image = node.bed.image("app:v2");
    let patch = json!({"metadata": {"labels": {"zone": "c"}},
        "spec": {"containers": [{"name": "app", "image": image}]}});
    node.pods.patch("zoned", &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    let (third, rc) =
        wait_container(&node.pods, "zoned", "app", "app restarted for app:v2", |id, _| id != second).await?;
    assert_eq!(rc, 2);
    assert!(env_of(&mut rt, &third).await?.lines().any(|l| l == "ZONE=c"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = node.pods.get("zoned").await?;
    assert_eq!(container(&now, "app"), Some((third, 2)), "image and env together: one restart");
    let metrics = agent.metrics()?;
    assert!(
        metrics.contains("stevedore_agent_metadata_env_recreates_total{mode=\"proxy\",result=\"ok\"} 1"),
        "{metrics}"
    );
    node.finish().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_creating_the_same_container_during_a_recreate_gets_the_recreated_one() -> anyhow::Result<()>
{
    let node = Node::start().await?;
    // `app` takes two seconds to stop: kubelet's CreateContainer lands mid-recreate
    let spec = json!({
        "terminationGracePeriodSeconds": 10,
        "containers": [{"name": "app", "image": node.bed.image("app:v1"),
            "command": ["sh", "-c", "trap 'sleep 2; exit 0' TERM; while true; do sleep 0.1; done"]}]
    });
    node.pods.create(&PostParams::default(), &pod("racy", spec)).await?;
    let (old, _) = wait_container(&node.pods, "racy", "app", "racy running", |_, _| true).await?;
    let record = node.proxy.socket().with_extension("state").join("containers").join(format!("{old}.pb"));
    let mut next = stevedore_proto::cri::CreateContainerRequest::decode(std::fs::read(record)?.as_slice())?;
    next.config.as_mut().and_then(|c| c.metadata.as_mut()).expect("metadata").attempt += 1;

    let mut control = node.control.clone();
    let recreate = tokio::spawn({
        let old = old.clone();
        async move {
            control
                .recreate_container(RecreateContainerRequest {
                    container_id: old,
                    grace_period_seconds: 10,
                    ..Default::default()
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rt = cri::runtime_client(cri::connect(node.proxy.socket()).await?);
    let began = std::time::Instant::now();
    let kubelets = rt.create_container(next).await?.into_inner().container_id;
    let waited = began.elapsed();
    let done = recreate.await??.into_inner();
    assert_eq!(kubelets, done.container_id, "kubelet gets the container the recreate made");
    assert!(waited > Duration::from_millis(1000), "kubelet's call waited for the stop ({waited:?})");
    rt.start_container(StartContainerRequest { container_id: kubelets.clone() }).await?;
    let listed = rt.list_containers(ListContainersRequest { filter: None }).await?.into_inner().containers;
    let app: Vec<_> = listed
        .iter()
        .filter(|c| c.labels.get("io.kubernetes.pod.name").map(String::as_str) == Some("racy"))
        .filter(|c| c.metadata.as_ref().is_some_and(|m| m.name == "app"))
        .collect();
    assert_eq!(app.len(), 2, "the old instance and one new one, never a second: {app:?}");
    let (id, rc) =
        wait_container(&node.pods, "racy", "app", "kubelet reports it", |id, _| id == kubelets).await?;
    assert_eq!((id, rc), (kubelets, 1));
    node.finish().await;
    Ok(())
}
