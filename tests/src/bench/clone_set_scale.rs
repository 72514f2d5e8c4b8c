//! A CloneSet at scale on hollow nodes: the simulated API server (with the real
//! admission plug-ins, the controller's webhooks reached as a Service), the real
//! controller binary, the scheduler and a [`HollowFleet`] of nodes in this process
//! (a hollow node "runs" a pod as soon as it sees it, and "restarts" a container whose
//! image changed). A CloneSet of R replicas is created and timed until all are ready,
//! then rolled in place to a new image and timed until all are updated and ready.
//! Measures the controller's peak RSS and the API requests it made (counted by the
//! API server per user).

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use anyhow::Context as _;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use stevedore_proto::crd::{clone_set::CloneSet, node_image::v1beta1::NodeImage};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    apiserver::{ApiServer, Hooks, Options, UserInfo},
    bench::clone_set::settled,
    cluster::Services,
    controller_process::{install, start_serving, webhooks},
    kubelet::{Config as KubeletConfig, hollow::HollowFleet},
    scheduler::Scheduler,
};

/// How big the run is.
#[derive(Clone, Copy, Debug)]
pub struct ScaleCounts {
    /// Hollow nodes.
    pub nodes: usize,
    /// The CloneSet's replicas.
    pub replicas: usize,
}

impl ScaleCounts {
    /// The figures for the closing note.
    pub fn full() -> Self {
        Self { nodes: 1000, replicas: 10_000 }
    }

    /// A handful, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { nodes: 5, replicas: 20 }
    }
}

/// What the run measured.
#[derive(Clone, Debug, Default)]
pub struct ScaleFigures {
    /// The counts it ran with.
    pub nodes: usize,
    /// The CloneSet's replicas.
    pub replicas: usize,
    /// From the CloneSet's creation to all replicas ready.
    pub create: Duration,
    /// From the image patch to all replicas updated (in place) and ready.
    pub roll: Duration,
    /// Controller requests while the set was created and while it was rolled.
    pub requests: (u64, u64),
    /// Requests of the hollow nodes and the scheduler, same phases.
    pub cluster_requests: (u64, u64),
    /// The controller's peak resident memory after creation and at the end, in KiB.
    pub peak_rss_kib: (u64, u64),
    /// Its resident memory with the nodes registered and no pod yet, and once every
    /// replica is ready (current, not peak), in KiB: the growth per replica is what
    /// its pod cache costs.
    pub rss_kib: (u64, u64),
    /// Pods whose uid changed during the roll (0 when all were updated in place).
    pub recreated: usize,
}

const CONTROLLER: &str = "stevedore-controller";
const CLUSTER: &str = "hollow-cluster";
const NS: &str = "bench";
/// How long each phase may take.
const LIMIT: Duration = Duration::from_secs(1200);

/// A plain user (the admin's rights) named `name`, so its requests are counted apart.
pub(crate) fn user(name: &str) -> UserInfo {
    UserInfo { username: name.into(), uid: name.into(), ..UserInfo::admin() }
}

/// A `/proc/<pid>/status` memory field, in KiB.
pub(crate) fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field}"))?;
    Ok(line.split_whitespace().nth(1).with_context(|| format!("malformed {field}"))?.parse()?)
}

/// The process's peak resident memory, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

async fn uids(pods: &Api<k8s_openapi::api::core::v1::Pod>) -> anyhow::Result<BTreeMap<String, String>> {
    let list = pods.list_metadata(&Default::default()).await?;
    Ok(list.items.into_iter().filter_map(|p| Some((p.metadata.name?, p.metadata.uid?))).collect())
}

async fn wait_settled(sets: &Api<CloneSet>, replicas: usize, what: &str) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        let cs = sets.get("scale").await?;
        if settled(&cs, replicas) {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            start.elapsed() < LIMIT,
            "{what}: not within {LIMIT:?}; status: {}",
            serde_json::to_string(&cs.status)?
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs it.
///
/// # Errors
/// A part cannot start, or a phase does not finish within twenty minutes.
pub async fn run(counts: ScaleCounts) -> anyhow::Result<ScaleFigures> {
    let dir = tempfile::tempdir()?;
    let services = Services::default();
    let mut opts = Options { hooks: Hooks::webhooks(services.clone()), ..Options::default() };
    // a watch history deep enough that no watcher of 10,000 pods falls off it
    opts.history_limit = opts.history_limit.max(5 * counts.replicas);
    opts.tokens.insert("controller-token", user(CONTROLLER));
    opts.tokens.insert("cluster-token", user(CLUSTER));
    let server = ApiServer::start(opts).await?;
    let admin = server.client().await?;
    install(&admin, &[webhooks::NAMESPACE, NS]).await?;

    let stop = CancellationToken::new();
    let cluster = server.client_as("cluster-token").await?;
    let cfgs: Vec<KubeletConfig> = (0..counts.nodes)
        .map(|i| {
            let mut c = KubeletConfig::hollow(&format!("hollow-{i:04}"));
            c.host_ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            c
        })
        .collect();
    let fleet = HollowFleet::start(cfgs, cluster.clone(), stop.clone()).await?;
    let scheduler = Scheduler::start(cluster, stop.clone());

    let kubeconfig = dir.path().join("controller-kubeconfig");
    server.write_kubeconfig(&kubeconfig, "controller-token")?;
    // the production flags: the default resync (five minutes), not the tests' second
    let mut controller = start_serving(&admin, &services, &kubeconfig, dir.path(), &[]).await?;
    let result = phases(&server, &admin, controller.pid(), counts).await;
    let result = result.map_err(|e| e.context(format!("controller log:\n{}", controller.log_tail(30))));
    controller.stop().await?;
    stop.cancel();
    fleet.join().await;
    scheduler.join().await;
    result
}

async fn phases(
    server: &ApiServer,
    admin: &kube::Client,
    pid: u32,
    counts: ScaleCounts,
) -> anyhow::Result<ScaleFigures> {
    let sets: Api<CloneSet> = Api::namespaced(admin.clone(), NS);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), NS);
    let set: CloneSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
        "metadata": {"name": "scale", "namespace": NS},
        "spec": {
            "replicas": counts.replicas,
            "selector": {"matchLabels": {"app": "scale"}},
            "template": {
                "metadata": {"labels": {"app": "scale"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:v1",
                    "imagePullPolicy": "IfNotPresent"}]}
            },
            "updateStrategy": {"type": "InPlaceIfPossible"}
        }
    }))?;
    let count = |m: &BTreeMap<String, u64>, who: &str| m.get(who).copied().unwrap_or(0);
    // the controller has seen every node once it made their NodeImages
    let node_images: Api<NodeImage> = Api::all(admin.clone());
    let start = Instant::now();
    while node_images.list_metadata(&Default::default()).await?.items.len() < counts.nodes {
        anyhow::ensure!(start.elapsed() < LIMIT, "the controller made no NodeImage for every node");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss_empty = status_kib(pid, "VmRSS:").unwrap_or(0);
    let before = server.requests_by_user();
    let t = Instant::now();
    sets.create(&PostParams::default(), &set).await?;
    let create =
        wait_settled(&sets, counts.replicas, "all replicas ready").await?.saturating_duration_since(t);
    let mid = server.requests_by_user();
    let rss_created = peak_rss_kib(pid).unwrap_or(0);
    let rss_full = status_kib(pid, "VmRSS:").unwrap_or(0);
    let uids_before = uids(&pods).await?;

    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com/app:v2"}
    ]))?;
    let t = Instant::now();
    sets.patch("scale", &PatchParams::default(), &Patch::Json::<()>(patch)).await?;
    let roll = wait_settled(&sets, counts.replicas, "all replicas updated and ready")
        .await?
        .saturating_duration_since(t);
    let after = server.requests_by_user();
    let rss_end = peak_rss_kib(pid).unwrap_or(0);
    let uids_after = uids(&pods).await?;
    let recreated = uids_before.iter().filter(|(name, uid)| uids_after.get(*name) != Some(uid)).count();
    Ok(ScaleFigures {
        nodes: counts.nodes,
        replicas: counts.replicas,
        create,
        roll,
        requests: (
            count(&mid, CONTROLLER) - count(&before, CONTROLLER),
            count(&after, CONTROLLER) - count(&mid, CONTROLLER),
        ),
        cluster_requests: (
            count(&mid, CLUSTER) - count(&before, CLUSTER),
            count(&after, CLUSTER) - count(&mid, CLUSTER),
        ),
        peak_rss_kib: (rss_created, rss_end),
        rss_kib: (rss_empty, rss_full),
        recreated,
    })
}

/// The figures.
pub fn report(f: &ScaleFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== CloneSet of {} replicas over {} hollow nodes (real controller, simulated API server, \
         in-process hollow nodes and scheduler; default maxUnavailable 20%)",
        f.replicas, f.nodes
    );
    let _ = writeln!(
        out,
        "  {:<40} {:>10} {:>20} {:>26}",
        "phase", "wall", "controller requests", "nodes+scheduler requests"
    );
    let _ = writeln!(
        out,
        "  {:<40} {:>8.2} s {:>20} {:>26}",
        "created -> all ready",
        f.create.as_secs_f64(),
        f.requests.0,
        f.cluster_requests.0
    );
    let _ = writeln!(
        out,
        "  {:<40} {:>8.2} s {:>20} {:>26}",
        "image patched -> all updated and ready",
        f.roll.as_secs_f64(),
        f.requests.1,
        f.cluster_requests.1
    );
    let per_pod = |n: u64| n as f64 / f.replicas.max(1) as f64;
    let _ = writeln!(
        out,
        "  controller requests per replica: {:.2} to create, {:.2} to roll; pods recreated by the roll: {}",
        per_pod(f.requests.0),
        per_pod(f.requests.1),
        f.recreated
    );
    let peak = f.peak_rss_kib.1 as f64 / 1024.0;
    let verdict = if peak <= 150.0 { "met" } else { "MISSED" };
    let _ = writeln!(
        out,
        "  controller peak RSS: {:.1} MB after creation, {peak:.1} MB at the end (target at most 150 MB: {verdict})",
        f.peak_rss_kib.0 as f64 / 1024.0
    );
    let (empty, full) = (f.rss_kib.0 as f64 / 1024.0, f.rss_kib.1 as f64 / 1024.0);
    let _ = writeln!(
        out,
        "  controller RSS with the nodes and no pod: {empty:.1} MB; with every replica ready: {full:.1} MB \
         ({:.1} KB per replica)",
        (full - empty) * 1024.0 / f.replicas.max(1) as f64
    );
    out
}
