//! The simulated kubelet and scheduler on the simulated API server: a CRI node on the
//! real test bed (containerd behind the real proxy) driven by its pod watch, a kubelet
//! restart that adopts running containers, deletion through the API, the scheduler's
//! filters on hollow nodes, and a fleet of 1000 hollow nodes (time and memory printed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use stevedore_proto::cri::{ContainerFilter, ListContainersRequest};
use stevedore_tests::apiserver::{ApiServer, Options};
use stevedore_tests::cri;
use stevedore_tests::kubelet::hollow::HollowFleet;
use stevedore_tests::kubelet::{Config, Kubelet};
use stevedore_tests::proxy_process::ProxyProcess;
use stevedore_tests::scheduler::Scheduler;
use stevedore_tests::testbed::TestBed;
use tokio_util::sync::CancellationToken;

async fn wait_for<T>(
    what: &str,
    secs: u64,
    check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    stevedore_tests::wait::until(what, Duration::from_secs(secs), check).await
}

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
    .unwrap()
}

use stevedore_tests::kubelet::status::running_and_ready as is_running;

async fn running(pods: &Api<Pod>, name: &str, secs: u64) -> anyhow::Result<Pod> {
    wait_for(&format!("pod {name} Running and Ready"), secs, async || {
        Ok(pods.get_opt(name).await?.filter(is_running))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_runs_adopts_and_deletes_pods_on_the_bed() -> anyhow::Result<()> {
    let api = ApiServer::start(Options::default()).await?;
    let client = api.client().await?;
    let bed = TestBed::start().await?;
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    let mut rt = cri::runtime_client(cri::connect(proxy.socket()).await?);
    let mut cfg = Config::new("node-a", Some(proxy.socket().to_owned()), bed.dir().join("kubelet-a"));
    cfg.sync_interval = Duration::from_millis(300);
    let shutdown = CancellationToken::new();
    let kubelet = Kubelet::start(cfg.clone(), client.clone(), shutdown.clone()).await?;
    let sched_stop = CancellationToken::new();
    let scheduler = Scheduler::start(client.clone(), sched_stop.clone());

    // The node registered itself, Ready, with its lease.
    let node = Api::<Node>::all(client.clone()).get("node-a").await?;
    assert_eq!(node.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"], "node-a");
    let ready = node
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    let lease = Api::<Lease>::namespaced(client.clone(), "kube-node-lease").get("node-a").await?;
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("node-a"));

    // A pod without a node: scheduled to node-a, init container, then two containers.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec = json!({
        "terminationGracePeriodSeconds": 10,
        "volumes": [{"name": "data", "emptyDir": {}}],
        "initContainers": [{"name": "init", "image": bed.image("app:v1"),
            "command": ["sh", "-c", "echo ok > /data/init"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "containers": [
            {"name": "app", "image": bed.image("app:v1")},
            {"name": "side", "image": bed.image("app:v1"), "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
    });
    pods.create(&PostParams::default(), &pod("web", spec)).await?;
    let p = running(&pods, "web", 90).await?;
    assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("node-a"));
    let uid = p.metadata.uid.clone().unwrap();
    let ids = |p: &Pod| -> Vec<String> {
        p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| c.container_id.clone())
            .collect()
    };
    let before = ids(&p);
    assert_eq!(before.len(), 2);

    // A kubelet restart adopts the running containers.
    shutdown.cancel();
    kubelet.join().await;
    let shutdown = CancellationToken::new();
    let kubelet = Kubelet::start(cfg.clone(), client.clone(), shutdown.clone()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = running(&pods, "web", 30).await?;
    assert_eq!(ids(&p), before, "same containers after the restart");
    assert!(p.status.as_ref().unwrap().container_statuses.iter().flatten().all(|c| c.restart_count == 0));

    // Deletion through the API: the kubelet stops the containers and deletes the pod.
    pods.delete("web", &DeleteParams::default()).await?;
    wait_for("pod web gone", 60, async || Ok(pods.get_opt("web").await?.is_none().then_some(()))).await?;
    let filter = ContainerFilter {
        label_selector: [("io.kubernetes.pod.uid".to_owned(), uid.clone())].into_iter().collect(),
        ..Default::default()
    };
    let left =
        rt.list_containers(ListContainersRequest { filter: Some(filter) }).await?.into_inner().containers;
    assert!(left.is_empty(), "containers left: {left:?}");

    shutdown.cancel();
    sched_stop.cancel();
    kubelet.join().await;
    scheduler.join().await;
    Ok(())
}

fn hollow(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>, max_pods: u32) -> Config {
    let mut c = Config::hollow(name);
    c.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    c.taints = taints;
    c.max_pods = max_pods;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_honours_selectors_taints_and_capacity() -> anyhow::Result<()> {
    let api = ApiServer::start(Options::default()).await?;
    let client = api.client().await?;
    let stop = CancellationToken::new();
    let gpu_taint = Taint {
        key: "dedicated".into(),
        value: Some("gpu".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    };
    let fleet = HollowFleet::start(
        vec![
            hollow("ssd", &[("disk", "ssd")], vec![], 3),
            hollow("gpu", &[("accel", "gpu")], vec![gpu_taint], 3),
            hollow("plain", &[], vec![], 3),
        ],
        client.clone(),
        stop.clone(),
    )
    .await?;
    let scheduler = Scheduler::start(client.clone(), stop.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let c = json!([{"name": "c", "image": "img:1"}]);
    let placed = async |name: &str| -> anyhow::Result<String> {
        let p = running(&pods, name, 30).await?;
        Ok(p.spec.unwrap().node_name.unwrap())
    };

    pods.create(
        &PostParams::default(),
        &pod("on-ssd", json!({"containers": c, "nodeSelector": {"disk": "ssd"}})),
    )
    .await?;
    assert_eq!(placed("on-ssd").await?, "ssd");

    let gpu = json!({"containers": c,
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "accel", "operator": "Exists"}]}]}}}});
    pods.create(&PostParams::default(), &pod("on-gpu", gpu)).await?;
    assert_eq!(placed("on-gpu").await?, "gpu");

    // Without the toleration the gpu node is out; matchFields by name.
    let by_name = json!({"containers": c, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu"]}]}]}}}});
    pods.create(&PostParams::default(), &pod("wants-gpu", by_name)).await?;
    let p = wait_for("wants-gpu Unschedulable", 30, async || {
        let p = pods.get("wants-gpu").await?;
        let unsched = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        });
        Ok(unsched.then_some(p))
    })
    .await?;
    assert!(p.spec.unwrap().node_name.is_none());

    // Plain pods spread by least pods over the untainted nodes, up to their capacity.
    for i in 0..4 {
        pods.create(&PostParams::default(), &pod(&format!("plain-{i}"), json!({"containers": c}))).await?;
    }
    let mut per_node = BTreeMap::new();
    for i in 0..4 {
        *per_node.entry(placed(&format!("plain-{i}")).await?).or_insert(0) += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("plain".to_string(), 3), ("ssd".to_string(), 1)]),
        "ssd had one already"
    );
    // ssd has room for one more (capacity 3); then both untainted nodes are full.
    pods.create(&PostParams::default(), &pod("fill", json!({"containers": c}))).await?;
    assert_eq!(placed("fill").await?, "ssd");
    pods.create(&PostParams::default(), &pod("overflow", json!({"containers": c}))).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(pods.get("overflow").await?.spec.unwrap().node_name.is_none());

    stop.cancel();
    fleet.join().await;
    scheduler.join().await;
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_fleet_of_1000_nodes() -> anyhow::Result<()> {
    const NODES: usize = 1000;
    let api = ApiServer::start(Options::default()).await?;
    let client = api.client().await?;
    let stop = CancellationToken::new();
    let rss0 = rss_kib();
    let t0 = Instant::now();
    let cfgs: Vec<Config> = (0..NODES)
        .map(|i| {
            let mut c = Config::hollow(&format!("hollow-{i:04}"));
            c.host_ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            c
        })
        .collect();
    let fleet = HollowFleet::start(cfgs, client.clone(), stop.clone()).await?;
    let registered = t0.elapsed();
    let nodes = Api::<Node>::all(client.clone()).list(&Default::default()).await?;
    assert_eq!(nodes.items.len(), NODES);

    // One pod per node, bound directly.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let t1 = Instant::now();
    for i in 0..NODES {
        let spec =
            json!({"nodeName": format!("hollow-{i:04}"), "containers": [{"name": "c", "image": "img:1"}]});
        pods.create(&PostParams::default(), &pod(&format!("p-{i:04}"), spec)).await?;
    }
    wait_for("all hollow pods Running", 120, async || {
        let list = pods.list(&Default::default()).await?;
        Ok((list.items.iter().filter(|p| is_running(p)).count() == NODES).then_some(()))
    })
    .await?;
    let pods_running = t1.elapsed();
    let rss = rss_kib().saturating_sub(rss0);
    eprintln!(
        "hollow fleet: {NODES} nodes registered in {:.2}s; {NODES} pods Running in {:.2}s; \
         RSS growth {} MiB (API server with all objects included)",
        registered.as_secs_f64(),
        pods_running.as_secs_f64(),
        rss / 1024
    );
    stop.cancel();
    fleet.join().await;
    Ok(())
}
