//! An ImagePullJob over many hollow nodes: the simulated API server, the real
//! controller binary, and for every node a hollow agent in this process (the agent's
//! own [`Puller`] on a runtime that pulls at once). Measures how long the NodeImages
//! take to appear and the job to complete, the API requests the controller and the
//! agents make (counted by the API server per user), and the controller's peak RSS.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::{api::core::v1::Node, jiff::Timestamp};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::json;
use stevedore_agent::images::{
    Puller, Settings,
    worker::{BoxFuture, Runtime},
};
use stevedore_proto::{
    crd::{image_pull_job::v1beta1::ImagePullJob, node_image::v1beta1::NodeImage},
    cri::PullImageRequest,
};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    apiserver::{ApiServer, Options},
    bench::clone_set_scale::{peak_rss_kib, user},
    controller_process::{ControllerProcess, free_addr, install},
    kubelet::{Config as KubeletConfig, node::node_object},
};

/// How big the run is.
#[derive(Clone, Copy, Debug)]
pub struct HollowCounts {
    /// Nodes, each with a hollow agent.
    pub nodes: usize,
    /// The job's `parallelism`.
    pub parallelism: usize,
}

impl HollowCounts {
    /// The figures for the closing note.
    pub fn full() -> Self {
        Self { nodes: 1000, parallelism: 100 }
    }

    /// A handful of nodes, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { nodes: 5, parallelism: 2 }
    }
}

/// What the run measured.
#[derive(Clone, Debug, Default)]
pub struct HollowFigures {
    /// The counts it ran with.
    pub nodes: usize,
    /// The job's parallelism.
    pub parallelism: usize,
    /// From the controller's start to a NodeImage for every node.
    pub node_images: Duration,
    /// The same number of NodeImage creates by a plain client, four at a time.
    pub plain_creates: Duration,
    /// From the job's creation to its completion.
    pub job: Duration,
    /// Requests while the NodeImages were made: controller, agents.
    pub setup_requests: (u64, u64),
    /// Requests while the job ran: controller, agents.
    pub job_requests: (u64, u64),
    /// The controller's peak resident memory, in KiB.
    pub controller_peak_rss_kib: u64,
}

/// A runtime that has every image at once.
#[derive(Debug)]
struct Instant0;

impl Runtime for Instant0 {
    fn present(&self, _image: String) -> BoxFuture<'_, Result<Option<String>, tonic::Status>> {
        Box::pin(async { Ok(None) })
    }

    fn pull(
        &self,
        req: PullImageRequest,
        progress: mpsc::Sender<u32>,
    ) -> BoxFuture<'_, Result<String, tonic::Status>> {
        Box::pin(async move {
            let _ = progress.send(100).await;
            let image = req.image.map(|i| i.image).unwrap_or_default();
            Ok(format!("sha256:{:064x}", stevedore_proto::hash::fnv32a(image.as_bytes())))
        })
    }
}

const CONTROLLER: &str = "stevedore-controller";
const AGENTS: &str = "hollow-agents";

/// Runs it.
///
/// # Errors
/// A part cannot start, or the job does not complete within ten minutes.
pub async fn run(counts: HollowCounts) -> anyhow::Result<HollowFigures> {
    let dir = tempfile::tempdir()?;
    let mut opts = Options::default();
    opts.tokens.insert("controller-token", user(CONTROLLER));
    opts.tokens.insert("agents-token", user(AGENTS));
    let server = ApiServer::start(opts).await?;
    let admin = server.client().await?;
    install(&admin, &["stevedore-system", "bench"]).await?;
    let nodes: Api<Node> = Api::all(admin.clone());
    let now = Timestamp::now();
    for i in 0..counts.nodes {
        let mut cfg = KubeletConfig::hollow(&format!("hollow-{i:04}"));
        cfg.labels.insert("bench".into(), "hollow".into());
        nodes.create(&PostParams::default(), &node_object(&cfg, now)).await?;
    }

    let stop = CancellationToken::new();
    let agents = server.client_as("agents-token").await?;
    let metrics = Arc::new(stevedore_agent::metrics::Metrics::default());
    let runtime: Arc<dyn Runtime> = Arc::new(Instant0);
    for i in 0..counts.nodes {
        let settings = Settings {
            node_name: format!("hollow-{i:04}"),
            namespace: "stevedore-system".into(),
            max_concurrent_pulls: 4,
            status_interval: Duration::from_secs(1),
        };
        let puller = Puller::new(settings, agents.clone(), runtime.clone(), metrics.clone());
        tokio::spawn(puller.run(stop.clone()));
    }

    // The same number of NodeImage creates by a plain client, four at a time as the
    // controller makes them, with every agent watching: what the API server itself
    // takes, side by side with the controller's figure.
    let probes: Api<NodeImage> = Api::all(admin.clone());
    let probe_start = Instant::now();
    let create = |i: usize| {
        let probes = probes.clone();
        async move {
            let ni = NodeImage {
                metadata: ObjectMeta { name: Some(format!("probe-{i:04}")), ..Default::default() },
                spec: Default::default(),
                status: None,
            };
            probes.create(&PostParams::default(), &ni).await.map(drop)
        }
    };
    futures_util::stream::iter(0..counts.nodes)
        .map(create)
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await?;
    let probe_took = probe_start.elapsed();
    let delete = |i: usize| {
        let probes = probes.clone();
        async move { probes.delete(&format!("probe-{i:04}"), &Default::default()).await.map(drop) }
    };
    futures_util::stream::iter(0..counts.nodes)
        .map(delete)
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await?;

    let kubeconfig = dir.path().join("controller-kubeconfig");
    server.write_kubeconfig(&kubeconfig, "controller-token")?;
    let before = server.requests_by_user();
    let start = Instant::now();
    let mut controller =
        ControllerProcess::start(dir.path(), &kubeconfig, free_addr()?, "bench-0", &["--lease-seconds", "3"])
            .await?;
    let node_images: Api<NodeImage> = Api::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = node_images.list_metadata(&ListParams::default()).await?.items.len();
        if n >= counts.nodes {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {n} NodeImages after ten minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let node_images_took = start.elapsed();
    let mid = server.requests_by_user();

    let jobs: Api<ImagePullJob> = Api::namespaced(admin.clone(), "bench");
    let job: ImagePullJob = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1beta1",
        "kind": "ImagePullJob",
        "metadata": { "name": "hollow", "namespace": "bench" },
        "spec": {
            "image": "registry.example.com/app:v1",
            "selector": { "matchLabels": { "bench": "hollow" } },
            "parallelism": counts.parallelism,
            "completionPolicy": { "type": "Always" }
        }
    }))?;
    let start = Instant::now();
    jobs.create(&PostParams::default(), &job).await?;
    loop {
        let status = jobs.get("hollow").await?.status;
        let done = status.as_ref().is_some_and(|s| s.completion_time.is_some());
        if done {
            let s = status.unwrap_or_default();
            let succeeded = s.succeeded.unwrap_or(0) as usize;
            anyhow::ensure!(
                succeeded == counts.nodes,
                "the job completed with {succeeded} of {} nodes succeeded ({:?} failed)",
                counts.nodes,
                s.failed
            );
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the job did not complete within ten minutes: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let job_took = start.elapsed();
    let after = server.requests_by_user();
    let rss = peak_rss_kib(controller.pid()).unwrap_or(0);
    controller.stop().await?;
    stop.cancel();
    let count = |m: &std::collections::BTreeMap<String, u64>, who: &str| m.get(who).copied().unwrap_or(0);
    Ok(HollowFigures {
        nodes: counts.nodes,
        parallelism: counts.parallelism,
        node_images: node_images_took,
        plain_creates: probe_took,
        job: job_took,
        setup_requests: (
            count(&mid, CONTROLLER) - count(&before, CONTROLLER),
            count(&mid, AGENTS) - count(&before, AGENTS),
        ),
        job_requests: (
            count(&after, CONTROLLER) - count(&mid, CONTROLLER),
            count(&after, AGENTS) - count(&mid, AGENTS),
        ),
        controller_peak_rss_kib: rss,
    })
}

/// The figures.
pub fn report(f: &HollowFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nImagePullJob over {} hollow nodes (hollow agents in-process, parallelism {}):",
        f.nodes, f.parallelism
    );
    let _ = writeln!(
        out,
        "  {:<34} {:>10} {:>20} {:>16}",
        "phase", "wall", "controller requests", "agent requests"
    );
    let _ = writeln!(
        out,
        "  {:<34} {:>8.2} s {:>20} {:>16}",
        "controller start to all NodeImages",
        f.node_images.as_secs_f64(),
        f.setup_requests.0,
        f.setup_requests.1
    );
    let _ = writeln!(
        out,
        "  {:<34} {:>8.2} s   (the API server alone, for comparison)",
        "plain client: as many creates",
        f.plain_creates.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  {:<34} {:>8.2} s {:>20} {:>16}",
        "job created to job complete",
        f.job.as_secs_f64(),
        f.job_requests.0,
        f.job_requests.1
    );
    let _ = writeln!(
        out,
        "  controller peak RSS: {:.1} MB (target at most 100 MB)",
        f.controller_peak_rss_kib as f64 / 1024.0
    );
    out
}
