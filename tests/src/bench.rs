//! The proxy benchmark: the same calls made directly to the runtime, through a byte
//! relay (`socat`, the least a proxy in its own process can add), through the real
//! `stevedore-cri-proxy` binary (relaying HTTP/2 frames, its default), through the
//! same binary terminating HTTP/2 on both sides (`--forwarding terminate`, the path
//! before the frame relay), and through the proxy with typed handlers that read every
//! message ([`typed`]); interleaved call by call in one run, with p50 and p99 of each
//! side, the time each hop adds, and the proxy's added time as a multiple of the
//! relay's.

pub mod clone_set;
pub mod clone_set_scale;
pub mod crr;
pub mod daemon_set_scale;
pub mod hollow;
pub mod pulls;
pub mod recreate;
pub mod typed;

use std::{
    fmt::Write as _,
    future::Future,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use stevedore_cri_proxy::fake::{FakeRuntime, sample_images};
use stevedore_proto::cri::{
    ListContainersRequest, ListImagesRequest, PullImageRequest, RemoveContainerRequest, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest, VersionRequest,
};
use tokio_util::sync::CancellationToken;

use crate::{
    cri::{self, ImageClient, RuntimeClient},
    pods::{self, Network},
    proxy_process::ProxyProcess,
    relay::RelayProcess,
    testbed::TestBed,
};

/// How many calls each scenario makes on each side.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    /// Version, ListContainers, ListImages on containerd.
    pub small: usize,
    /// ListImages of 1,000 images.
    pub list_images: usize,
    /// PullImage of a present image.
    pub pull: usize,
    /// Full container cycles.
    pub cycle: usize,
    /// Running containers for ListContainers.
    pub containers: usize,
    /// Untimed calls before each scenario.
    pub warmup: usize,
}

impl Counts {
    /// The figures for the closing note.
    pub fn full() -> Self {
        Self { small: 3000, list_images: 400, pull: 200, cycle: 30, containers: 30, warmup: 50 }
    }

    /// Tiny counts for CI, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { small: 20, list_images: 5, pull: 3, cycle: 2, containers: 2, warmup: 2 }
    }
}

/// The ways a call reaches the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Straight to the runtime's socket.
    Direct,
    /// Through socat.
    Relay,
    /// Through the proxy, relaying frames.
    Proxy,
    /// Through the proxy terminating HTTP/2 on both sides.
    Terminate,
    /// Through the proxy with a typed handler that decodes request and answer.
    Typed,
}

/// Every side, in column order.
pub const SIDES: [Side; 5] = [Side::Direct, Side::Relay, Side::Proxy, Side::Terminate, Side::Typed];

/// What a scenario must reach.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The proxy's added p50 at most 1.3x the relay's and its added p99 at most 1.5x;
    /// the typed handler's added p50 at most 1.5x the relay's.
    Relay,
    /// The proxy's added p50 at most this fraction of the direct p50.
    AddedFraction(f64),
    /// Reported only (dominated by the runtime's own work).
    None,
}

/// One scenario's timings, per side in [`SIDES`] order.
#[derive(Debug)]
pub struct Scenario {
    /// What was called.
    pub name: String,
    /// The goal.
    pub target: Target,
    /// Per-call times of each side.
    pub samples: [Vec<Duration>; 5],
}

fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort();
    if v.is_empty() {
        return 0.0;
    }
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx.min(v.len() - 1)].as_secs_f64() * 1e6
}

/// p50 and p99 of each side, in µs.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// p50 per side.
    pub p50: [f64; 5],
    /// p99 per side.
    pub p99: [f64; 5],
}

impl Figures {
    /// What `side` adds to the direct call at percentile `p99` (else p50).
    pub fn added(&self, side: Side, p99: bool) -> f64 {
        let v = if p99 { &self.p99 } else { &self.p50 };
        v[side as usize] - v[0]
    }

    /// `side`'s added time as a multiple of the relay's.
    pub fn vs_relay(&self, side: Side, p99: bool) -> f64 {
        self.added(side, p99) / self.added(Side::Relay, p99).max(1.0)
    }
}

impl Scenario {
    /// The percentiles.
    pub fn figures(&self) -> Figures {
        Figures {
            p50: std::array::from_fn(|i| percentile(&self.samples[i], 0.5)),
            p99: std::array::from_fn(|i| percentile(&self.samples[i], 0.99)),
        }
    }

    /// The target and whether it is met.
    pub fn verdict(&self) -> (String, Option<bool>) {
        let f = self.figures();
        match self.target {
            Target::Relay => {
                let met = f.vs_relay(Side::Proxy, false) <= 1.3
                    && f.vs_relay(Side::Proxy, true) <= 1.5
                    && f.vs_relay(Side::Typed, false) <= 1.5;
                ("proxy <= 1.3x relay p50, 1.5x p99; typed <= 1.5x p50".into(), Some(met))
            }
            Target::AddedFraction(max) => {
                let frac = f.added(Side::Proxy, false) / f.p50[0].max(f64::MIN_POSITIVE);
                (format!("proxy adds <= {}% (adds {:.1}%)", max * 100.0, frac * 100.0), Some(frac <= max))
            }
            Target::None => ("reported only".into(), None),
        }
    }
}

/// The table: p50 and p99 of each side, then added times and ratios to the relay.
pub fn report(scenarios: &[Scenario]) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "p50 / p99 per call in µs; +X = added to direct; ×R = added time / relay's added time");
    let _ = writeln!(
        out,
        "{:<42} {:>5} | {:>15} {:>15} {:>15} {:>15} {:>15} | {:>13} {:>13} {:>13} {:>13} | target",
        "scenario",
        "n",
        "direct",
        "relay",
        "proxy",
        "terminating",
        "typed",
        "relay added",
        "proxy added",
        "term. added",
        "typed added"
    );
    for s in scenarios {
        let f = s.figures();
        let cell = |i: usize| format!("{:.0} / {:.0}", f.p50[i], f.p99[i]);
        let added = |side: Side| format!("+{:.0} ×{:.2}", f.added(side, false), f.vs_relay(side, false));
        let (target, met) = s.verdict();
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        let _ = writeln!(
            out,
            "{:<42} {:>5} | {:>15} {:>15} {:>15} {:>15} {:>15} | {:>13} {:>13} {:>13} {:>13} | {target}: {verdict}",
            s.name,
            s.samples[0].len(),
            cell(0),
            cell(1),
            cell(2),
            cell(3),
            cell(4),
            format!("+{:.0}", f.added(Side::Relay, false)),
            added(Side::Proxy),
            added(Side::Terminate),
            added(Side::Typed),
        );
        let _ = writeln!(
            out,
            "{:<42} {:>5}   {:>15} {:>15} {:>15} {:>15} {:>15}   {:>13} {:>13} {:>13} {:>13}",
            "  (added p99)",
            "",
            "",
            "",
            "",
            "",
            "",
            format!("+{:.0}", f.added(Side::Relay, true)),
            format!("+{:.0} ×{:.2}", f.added(Side::Proxy, true), f.vs_relay(Side::Proxy, true)),
            format!("+{:.0} ×{:.2}", f.added(Side::Terminate, true), f.vs_relay(Side::Terminate, true)),
            format!("+{:.0} ×{:.2}", f.added(Side::Typed, true), f.vs_relay(Side::Typed, true)),
        );
    }
    out
}

/// Calls `f(side)` for every side in turn, `n` times each after `warmup` untimed
/// rounds, rotating which side goes first.
async fn interleave<F, Fut>(n: usize, warmup: usize, mut f: F) -> anyhow::Result<[Vec<Duration>; 5]>
where
    F: FnMut(Side) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for _ in 0..warmup {
        for side in SIDES {
            f(side).await?;
        }
    }
    let mut samples: [Vec<Duration>; 5] = std::array::from_fn(|_| Vec::with_capacity(n));
    for i in 0..n {
        for k in 0..SIDES.len() {
            let side = SIDES[(i + k) % SIDES.len()];
            let t = Instant::now();
            f(side).await?;
            samples[side as usize].push(t.elapsed());
        }
    }
    Ok(samples)
}

/// The processes in front of one runtime socket, and a client of each kind per side.
struct Hops {
    relay: RelayProcess,
    proxy: ProxyProcess,
    terminate: ProxyProcess,
    typed: ProxyProcess,
    rt: [RuntimeClient; 5],
    img: [ImageClient; 5],
}

impl Hops {
    async fn start(dir: &Path, runtime: &Path, proxy_args: &[&str]) -> anyhow::Result<Hops> {
        let relay = RelayProcess::start(&dir.join("relay.sock"), runtime).await?;
        let proxy = ProxyProcess::start(&dir.join("proxy.sock"), runtime, proxy_args).await?;
        let terminating: Vec<&str> =
            proxy_args.iter().copied().chain(["--forwarding", "terminate"]).collect();
        let terminate = ProxyProcess::start(&dir.join("terminate.sock"), runtime, &terminating).await?;
        let typed =
            ProxyProcess::start_binary(&typed::binary()?, &dir.join("typed.sock"), runtime, proxy_args)
                .await?;
        let sockets = [runtime, relay.socket(), proxy.socket(), terminate.socket(), typed.socket()];
        let mut channels = Vec::new();
        for s in sockets {
            channels.push(cri::connect(s).await?);
        }
        let rt = std::array::from_fn(|i| cri::runtime_client(channels[i].clone()));
        let img = std::array::from_fn(|i| cri::image_client(channels[i].clone()));
        Ok(Hops { relay, proxy, terminate, typed, rt, img })
    }

    fn rt(&self, side: Side) -> RuntimeClient {
        self.rt[side as usize].clone()
    }

    fn img(&self, side: Side) -> ImageClient {
        self.img[side as usize].clone()
    }

    async fn stop(self) -> anyhow::Result<()> {
        let Hops { relay, mut proxy, mut terminate, mut typed, rt, img } = self;
        drop((rt, img));
        proxy.stop().await?;
        terminate.stop().await?;
        typed.stop().await?;
        drop(relay);
        Ok(())
    }
}

/// Runs every scenario and returns the timings.
///
/// # Errors
/// The test bed, a hop or a call fails.
pub async fn run(counts: Counts, proxy_args: &[&str]) -> anyhow::Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    scenarios.push(list_images_on_fake(counts, proxy_args).await.context("ListImages on the fake runtime")?);
    let bed = TestBed::start().await.context("starting the containerd test bed")?;
    let hops = Hops::start(bed.dir(), bed.containerd_socket(), proxy_args).await?;

    let samples = interleave(counts.small, counts.warmup, |side| {
        let mut c = hops.rt(side);
        async move { c.version(VersionRequest::default()).await.map(drop).map_err(Into::into) }
    })
    .await?;
    scenarios.push(Scenario { name: "Version (containerd)".into(), target: Target::Relay, samples });

    let app = bed.image("app:v1");
    let pull = |image: &str| PullImageRequest {
        image: Some(stevedore_proto::cri::ImageSpec { image: image.to_owned(), ..Default::default() }),
        ..Default::default()
    };
    hops.img(Side::Direct).pull_image(pull(&app)).await?;
    let mut pods_started = Vec::new();
    let log_dir = bed.log_dir();
    for i in 0..counts.containers {
        let name = format!("bench-{i}");
        let cfg = pods::sandbox(
            &name,
            &format!("uid-bench-{i}"),
            Network::Host,
            &log_dir.join(&name).display().to_string(),
        );
        let mut c = hops.rt(Side::Direct);
        let pod = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(cfg.clone()),
                runtime_handler: String::new(),
            })
            .await?
            .into_inner()
            .pod_sandbox_id;
        let ctr =
            c.create_container(pods::container(&pod, &cfg, "app", &app, 0)).await?.into_inner().container_id;
        c.start_container(StartContainerRequest { container_id: ctr }).await?;
        pods_started.push((pod, cfg));
    }
    let samples = interleave(counts.small, counts.warmup, |side| {
        let mut c = hops.rt(side);
        async move { c.list_containers(ListContainersRequest::default()).await.map(drop).map_err(Into::into) }
    })
    .await?;
    let name = format!("ListContainers ({} running, containerd)", counts.containers);
    scenarios.push(Scenario { name, target: Target::Relay, samples });

    let samples = interleave(counts.small, counts.warmup, |side| {
        let mut c = hops.img(side);
        async move { c.list_images(ListImagesRequest::default()).await.map(drop).map_err(Into::into) }
    })
    .await?;
    scenarios.push(Scenario { name: "ListImages (containerd)".into(), target: Target::Relay, samples });

    let samples = interleave(counts.pull, counts.warmup.min(5), |side| {
        let mut c = hops.img(side);
        let req = pull(&app);
        async move { c.pull_image(req).await.map(drop).map_err(Into::into) }
    })
    .await?;
    scenarios.push(Scenario {
        name: "PullImage, present (containerd)".into(),
        target: Target::None,
        samples,
    });

    let (pod, cfg) = pods_started.first().cloned().context("the cycle needs one pod")?;
    let mut attempt = 1;
    let samples = interleave(counts.cycle, 1, |side| {
        let mut c = hops.rt(side);
        let req = pods::container(&pod, &cfg, "cycle", &app, attempt);
        attempt += 1;
        async move {
            let id = c.create_container(req).await?.into_inner().container_id;
            c.start_container(StartContainerRequest { container_id: id.clone() }).await?;
            c.stop_container(StopContainerRequest { container_id: id.clone(), timeout: 0 }).await?;
            c.remove_container(RemoveContainerRequest { container_id: id }).await?;
            Ok(())
        }
    })
    .await?;
    scenarios.push(Scenario {
        name: "create+start+stop+remove (containerd)".into(),
        target: Target::None,
        samples,
    });
    hops.stop().await?;
    drop(bed);
    Ok(scenarios)
}

async fn list_images_on_fake(counts: Counts, proxy_args: &[&str]) -> anyhow::Result<Scenario> {
    let dir = tempfile::tempdir()?;
    let fake_sock = dir.path().join("fake.sock");
    let fake = FakeRuntime::default();
    fake.set_images(sample_images(1000));
    let stop = CancellationToken::new();
    // the fake gets its own thread, as a runtime process would
    let server = {
        let (fake, sock, stop) = (fake.clone(), fake_sock.clone(), stop.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(async move {
                let task = fake.serve(&sock, stop)?;
                task.await?;
                anyhow::Ok(())
            })
        })
    };
    while tokio::net::UnixStream::connect(&fake_sock).await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let hops = Hops::start(dir.path(), &fake_sock, proxy_args).await?;
    let samples = interleave(counts.list_images, counts.warmup, |side| {
        let mut c = hops.img(side);
        async move {
            let n = c.list_images(ListImagesRequest::default()).await?.into_inner().images.len();
            anyhow::ensure!(n == 1000, "the fake listed {n} images");
            Ok(())
        }
    })
    .await?;
    hops.stop().await?;
    stop.cancel();
    server.join().map_err(|_| anyhow::anyhow!("the fake runtime's thread panicked"))??;
    Ok(Scenario {
        name: "ListImages (1,000 images, fake runtime)".into(),
        target: Target::AddedFraction(0.05),
        samples,
    })
}
