//! The image pull benchmark, on a real containerd behind a counting registry front:
//!
//! - one image pulled directly with CRI `PullImage`, through the proxy with CRI (as
//!   kubelet pulls), through the proxy's control API reading its progress stream, and
//!   by the agent through the control API (from the
//!   NodeImage spec edit to the status reporting it pulled, as a user waits for it),
//!   in turns, the image removed after each pull (CRI removes it synchronously, so
//!   every pull fetches every byte again; the bytes the registry served are printed
//!   to show it);
//! - four concurrent pulls of one image directly and through the proxy: registry
//!   requests by kind, bytes served, containerd's CPU time and the wall time.

use std::{fmt::Write as _, time::Duration};

use anyhow::Context as _;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use stevedore_proto::{
    control::{PullImageRequest as ControlPull, control_client::ControlClient},
    crd::node_image::v1beta1::{NodeImage, NodeImageSpec},
    cri::{ImageSpec, PullImageRequest, RemoveImageRequest},
};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    agent_process::{AgentOptions, AgentProcess},
    apiserver::{ADMIN_TOKEN, ApiServer, Options},
    controller_process::install,
    cri::{ImageClient, connect, image_client},
    proxy_process::ProxyProcess,
    registry_front::{RegistryFront, Settings},
    testbed::TestBed,
};

/// How much the pull benchmark does.
#[derive(Clone, Copy, Debug)]
pub struct PullCounts {
    /// Timed pulls per way.
    pub runs: usize,
    /// The bed image pulled (`big:v1`, about 80 MB; `app:v1` for the smoke run).
    pub image: &'static str,
}

impl PullCounts {
    /// The figures for the closing note.
    pub fn full() -> Self {
        Self { runs: 5, image: "big:v1" }
    }

    /// One small pull per way, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { runs: 1, image: "app:v1" }
    }
}

/// What one way of pulling took.
#[derive(Clone, Debug, Default)]
pub struct Timed {
    /// Each pull's wall time.
    pub times: Vec<Duration>,
    /// Bytes the registry served per pull (median).
    pub bytes: Vec<u64>,
}

/// Four concurrent pulls of one image, one way.
#[derive(Clone, Debug, Default)]
pub struct Concurrent {
    /// From the first call to the last answer.
    pub wall: Duration,
    /// Registry requests: manifest HEADs, manifest GETs, blob GETs, others.
    pub requests: [u64; 4],
    /// Bytes the registry served.
    pub bytes: u64,
    /// containerd's user + system CPU time.
    pub containerd_cpu: Duration,
}

/// Everything the pull benchmark measured.
#[derive(Clone, Debug, Default)]
pub struct PullFigures {
    /// The image pulled.
    pub image: String,
    /// Direct CRI, proxy CRI, proxy control API, agent + proxy.
    pub single: [Timed; 4],
    /// Direct, proxy.
    pub concurrent: [Concurrent; 2],
}

const NODE: &str = "bench-node";
const DOMAIN: &str = "bench.test";
const NAMES: [&str; 4] = [
    "direct CRI PullImage",
    "proxy, CRI PullImage",
    "proxy, control API (progress)",
    "agent + proxy (NodeImage)",
];

fn pull(image: &str) -> PullImageRequest {
    PullImageRequest {
        image: Some(ImageSpec { image: image.to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

async fn remove(client: &mut ImageClient, image: &str) -> anyhow::Result<()> {
    let req = RemoveImageRequest { image: Some(ImageSpec { image: image.to_owned(), ..Default::default() }) };
    client.remove_image(req).await.context("removing the image")?;
    Ok(())
}

/// containerd's user + system CPU time so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // fields after the command name (which may hold spaces), from field 3 on
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // USER_HZ is 100 on Linux
    Ok(Duration::from_millis(ticks * 10))
}

fn bytes_served(front: &RegistryFront) -> u64 {
    front.counts().snapshot().4
}

/// Runs the pull benchmark.
///
/// # Errors
/// A part cannot start, or a pull fails.
pub async fn run(counts: PullCounts) -> anyhow::Result<PullFigures> {
    let bed = TestBed::start().await.context("starting the containerd test bed")?;
    let front = RegistryFront::start(bed.registry(), Settings::default()).await?;
    bed.serve_domain(DOMAIN, &front.addr())?;
    let image = format!("{DOMAIN}/{}", counts.image);
    let (name, tag) = image.rsplit_once(':').context("the image has a tag")?;

    let socket = bed.dir().join("bench-proxy.sock");
    let mut proxy = ProxyProcess::start(&socket, bed.containerd_socket(), &[]).await?;
    let control = proxy.control_socket().context("the real proxy has a control socket")?.to_owned();

    let server = ApiServer::start(Options::default()).await?;
    let client = server.client().await?;
    let kubeconfig = bed.dir().join("bench-kubeconfig");
    server.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
    install(&client, &["stevedore-system"]).await?;
    let node_images: Api<NodeImage> = Api::all(client.clone());
    let empty = NodeImage {
        metadata: ObjectMeta { name: Some(NODE.into()), ..Default::default() },
        spec: NodeImageSpec::default(),
        status: None,
    };
    node_images.create(&PostParams::default(), &empty).await?;
    let mut agent = AgentProcess::start(
        bed.dir(),
        &AgentOptions {
            node_name: NODE.into(),
            kubeconfig,
            cri_socket: socket.clone(),
            control_socket: Some(control.clone()),
            namespace: "stevedore-system".into(),
            // a finished pull is written within 100 ms whatever the status interval
            extra: vec![],
        },
    )
    .await?;

    let mut direct = image_client(connect(bed.containerd_socket()).await?);
    let mut proxied = image_client(connect(&socket).await?);
    let mut figures = PullFigures { image: image.clone(), ..Default::default() };
    // one untimed pull each way warms connections and caches
    for (i, client) in [&mut direct, &mut proxied].into_iter().enumerate() {
        client.pull_image(pull(&image)).await.with_context(|| format!("warm-up pull {i}"))?;
        remove(client, &image).await?;
    }
    let mut control_client = ControlClient::new(connect(&control).await?);
    for run in 0..counts.runs {
        for way in 0..4 {
            let before = bytes_served(&front);
            let start = Instant::now();
            match way {
                0 => drop(direct.pull_image(pull(&image)).await?),
                1 => drop(proxied.pull_image(pull(&image)).await?),
                2 => control_pull(&mut control_client, &image).await?,
                _ => agent_pull(&node_images, name, tag, run as i64 + 1).await?,
            }
            figures.single[way].times.push(start.elapsed());
            figures.single[way].bytes.push(bytes_served(&front) - before);
            remove(&mut direct, &image).await?;
        }
    }

    let pid = bed.containerd_pid().context("containerd runs")?;
    let mut cleaner = direct.clone();
    for (way, client) in [&direct, &proxied].into_iter().enumerate() {
        let (h0, g0, b0, o0, bytes0) = front.counts().snapshot();
        let cpu0 = cpu_time(pid)?;
        let start = Instant::now();
        let pulls = (0..4).map(|_| {
            let mut c = client.clone();
            let image = image.clone();
            async move { c.pull_image(pull(&image)).await }
        });
        for r in futures_util::future::join_all(pulls).await {
            r.context("a concurrent pull")?;
        }
        let wall = start.elapsed();
        let (h, g, b, o, bytes) = front.counts().snapshot();
        figures.concurrent[way] = Concurrent {
            wall,
            requests: [h - h0, g - g0, b - b0, o - o0],
            bytes: bytes - bytes0,
            containerd_cpu: cpu_time(pid)?.saturating_sub(cpu0),
        };
        remove(&mut cleaner, &image).await?;
    }
    agent.stop().await?;
    proxy.stop().await?;
    Ok(figures)
}

/// Pulls through the control API, reading every progress message.
async fn control_pull(client: &mut ControlClient<Channel>, image: &str) -> anyhow::Result<()> {
    let req = ControlPull { cri_request: prost::Message::encode_to_vec(&pull(image)) };
    let mut stream = client.pull_image(req).await?.into_inner();
    let mut done = false;
    while let Some(msg) = stream.message().await? {
        done = !msg.image_ref.is_empty();
    }
    anyhow::ensure!(done, "the control API's pull ended without an image id");
    Ok(())
}

/// Asks the agent for `name:tag` at spec version `version` and waits until its
/// status says it pulled that version.
async fn agent_pull(api: &Api<NodeImage>, name: &str, tag: &str, version: i64) -> anyhow::Result<()> {
    let patch = json!({ "spec": { "images": { name: { "tags": [{ "tag": tag, "version": version }] } } } });
    api.patch(NODE, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ni = api.get(NODE).await?;
        let tag_status = ni
            .status
            .as_ref()
            .and_then(|s| s.image_statuses.as_ref())
            .and_then(|m| m.get(name))
            .and_then(|s| s.tags.iter().find(|t| t.tag == tag && t.version == Some(version)))
            .cloned();
        if let Some(t) = tag_status
            && t.completion_time.is_some()
        {
            anyhow::ensure!(
                format!("{:?}", t.phase) == "Succeeded",
                "the agent's pull failed: {}",
                t.message.unwrap_or_default()
            );
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the agent did not pull {name}:{tag} within 300 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The figures, side by side.
pub fn report(f: &PullFigures) -> String {
    let mut out = String::new();
    let runs = f.single[0].times.len();
    let _ = writeln!(
        out,
        "\nImage pulls of {} (loopback registry behind a counting front), median of {runs}:",
        f.image
    );
    let _ = writeln!(out, "  {:<30} {:>9} {:>8} {:>12}", "way", "wall", "ratio", "MB served");
    let base = median(&f.single[0].times).as_secs_f64();
    for (way, name) in NAMES.iter().enumerate() {
        let t = median(&f.single[way].times).as_secs_f64();
        let mut bytes = f.single[way].bytes.clone();
        bytes.sort_unstable();
        let mb = bytes.get(bytes.len() / 2).copied().unwrap_or(0) as f64 / 1e6;
        let _ = writeln!(out, "  {name:<30} {:>7.3} s {:>7.3}x {mb:>12.1}", t, t / base);
    }
    let _ = writeln!(out, "  target: agent + proxy at most 1.05x direct");
    let _ = writeln!(out, "\nFour concurrent pulls of {}:", f.image);
    let _ = writeln!(
        out,
        "  {:<8} {:>9} {:>6} {:>13} {:>9} {:>6} {:>10} {:>15}",
        "way", "wall", "HEADs", "manifest GETs", "blob GETs", "other", "MB served", "containerd CPU"
    );
    for (way, name) in ["direct", "proxy"].iter().enumerate() {
        let c = &f.concurrent[way];
        let _ = writeln!(
            out,
            "  {name:<8} {:>7.3} s {:>6} {:>13} {:>9} {:>6} {:>10.1} {:>13.2} s",
            c.wall.as_secs_f64(),
            c.requests[0],
            c.requests[1],
            c.requests[2],
            c.requests[3],
            c.bytes as f64 / 1e6,
            c.containerd_cpu.as_secs_f64()
        );
    }
    out
}
