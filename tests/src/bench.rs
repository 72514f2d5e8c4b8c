//! The proxy benchmark: the same calls made directly to the runtime and through the
//! real `stevedore-cri-proxy` binary, interleaved call by call in one run, with p50
//! and p99 of each side and their ratio.

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
    testbed::TestBed,
};

/// How many calls each scenario makes on each side.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    /// Version, ListContainers.
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
        Self { small: 3000, list_images: 400, pull: 200, cycle: 40, containers: 30, warmup: 50 }
    }

    /// Tiny counts for CI, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { small: 20, list_images: 5, pull: 3, cycle: 2, containers: 2, warmup: 2 }
    }
}

/// What a scenario must reach.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Added p50 at most this many microseconds.
    AddedMicros(f64),
    /// Added p50 at most this fraction of the direct p50.
    AddedFraction(f64),
}

/// One scenario's timings.
#[derive(Debug)]
pub struct Scenario {
    /// What was called.
    pub name: String,
    /// The goal.
    pub target: Target,
    /// Per-call times, direct.
    pub direct: Vec<Duration>,
    /// Per-call times, through the proxy.
    pub proxied: Vec<Duration>,
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx.min(v.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

impl Scenario {
    /// Whether the target is met, with the added p50 in µs and as a fraction.
    pub fn verdict(&self) -> (bool, f64, f64) {
        let (d, p) = (percentile(&self.direct, 0.5), percentile(&self.proxied, 0.5));
        let added = us(p) - us(d);
        let frac = if us(d) > 0.0 { added / us(d) } else { 0.0 };
        let met = match self.target {
            Target::AddedMicros(max) => added <= max,
            Target::AddedFraction(max) => frac <= max,
        };
        (met, added, frac)
    }
}

/// The table, one line per scenario.
pub fn report(scenarios: &[Scenario]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>6} | {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6} | {:>10} {:>8} | target",
        "scenario",
        "n",
        "direct p50",
        "proxy p50",
        "ratio",
        "direct p99",
        "proxy p99",
        "ratio",
        "added p50",
        "added %"
    );
    for s in scenarios {
        let (dp50, pp50) = (percentile(&s.direct, 0.5), percentile(&s.proxied, 0.5));
        let (dp99, pp99) = (percentile(&s.direct, 0.99), percentile(&s.proxied, 0.99));
        let (met, added, frac) = s.verdict();
        let target = match s.target {
            Target::AddedMicros(m) => format!("added p50 <= {m} us"),
            Target::AddedFraction(f) => format!("added p50 <= {}%", f * 100.0),
        };
        let _ = writeln!(
            out,
            "{:<40} {:>6} | {:>8.1}us {:>8.1}us {:>6.3} | {:>8.1}us {:>8.1}us {:>6.3} | {:>8.1}us {:>7.2}% | {target}: {}",
            s.name,
            s.direct.len(),
            us(dp50),
            us(pp50),
            us(pp50) / us(dp50).max(f64::MIN_POSITIVE),
            us(dp99),
            us(pp99),
            us(pp99) / us(dp99).max(f64::MIN_POSITIVE),
            added,
            frac * 100.0,
            if met { "met" } else { "MISSED" },
        );
    }
    out
}

/// Calls `f(false)` (direct) and `f(true)` (proxied) alternately, `n` times each after
/// `warmup` untimed rounds.
async fn interleave<F, Fut>(
    n: usize,
    warmup: usize,
    mut f: F,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)>
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for _ in 0..warmup {
        f(false).await?;
        f(true).await?;
    }
    let (mut direct, mut proxied) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        // alternate who goes first, so neither side always runs on a warmer cache
        for proxy in if i % 2 == 0 { [false, true] } else { [true, false] } {
            let t = Instant::now();
            f(proxy).await?;
            let took = t.elapsed();
            if proxy { proxied.push(took) } else { direct.push(took) }
        }
    }
    Ok((direct, proxied))
}

/// A pair of clients, one per side.
struct Sides<C> {
    direct: C,
    proxied: C,
}

impl<C: Clone> Sides<C> {
    fn pick(&self, proxy: bool) -> C {
        if proxy { self.proxied.clone() } else { self.direct.clone() }
    }
}

async fn runtime_sides(direct: &Path, proxied: &Path) -> anyhow::Result<Sides<RuntimeClient>> {
    Ok(Sides {
        direct: cri::runtime_client(cri::connect(direct).await?),
        proxied: cri::runtime_client(cri::connect(proxied).await?),
    })
}

async fn image_sides(direct: &Path, proxied: &Path) -> anyhow::Result<Sides<ImageClient>> {
    Ok(Sides {
        direct: cri::image_client(cri::connect(direct).await?),
        proxied: cri::image_client(cri::connect(proxied).await?),
    })
}

/// Runs every scenario and returns the timings.
///
/// # Errors
/// The test bed, the proxy or a call fails.
pub async fn run(counts: Counts, proxy_args: &[&str]) -> anyhow::Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    scenarios.push(list_images_on_fake(counts, proxy_args).await.context("ListImages on the fake runtime")?);
    let bed = TestBed::start().await.context("starting the containerd test bed")?;
    let sock = bed.dir().join("proxy.sock");
    let mut proxy = ProxyProcess::start(&sock, bed.containerd_socket(), proxy_args).await?;
    let rt = runtime_sides(bed.containerd_socket(), proxy.socket()).await?;
    let img = image_sides(bed.containerd_socket(), proxy.socket()).await?;

    let (direct, proxied) = interleave(counts.small, counts.warmup, |p| {
        let mut c = rt.pick(p);
        async move { c.version(VersionRequest::default()).await.map(drop).map_err(Into::into) }
    })
    .await?;
    scenarios.push(Scenario {
        name: "Version (containerd)".into(),
        target: Target::AddedMicros(15.0),
        direct,
        proxied,
    });

    let app = bed.image("app:v1");
    let pull = |image: &str| PullImageRequest {
        image: Some(stevedore_proto::cri::ImageSpec { image: image.to_owned(), ..Default::default() }),
        ..Default::default()
    };
    img.pick(false).pull_image(pull(&app)).await?;
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
        let mut c = rt.pick(false);
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
    let (direct, proxied) = interleave(counts.small, counts.warmup, |p| {
        let mut c = rt.pick(p);
        async move { c.list_containers(ListContainersRequest::default()).await.map(drop).map_err(Into::into) }
    })
    .await?;
    let name = format!("ListContainers ({} running, containerd)", counts.containers);
    scenarios.push(Scenario { name, target: Target::AddedMicros(15.0), direct, proxied });

    let (direct, proxied) = interleave(counts.pull, counts.warmup.min(5), |p| {
        let mut c = img.pick(p);
        let req = pull(&app);
        async move { c.pull_image(req).await.map(drop).map_err(Into::into) }
    })
    .await?;
    scenarios.push(Scenario {
        name: "PullImage, present (containerd)".into(),
        target: Target::AddedMicros(15.0),
        direct,
        proxied,
    });

    let (pod, cfg) = pods_started.first().cloned().context("the cycle needs one pod")?;
    let mut attempt = 1;
    let (direct, proxied) = interleave(counts.cycle, 1, |p| {
        let mut c = rt.pick(p);
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
        target: Target::AddedFraction(0.01),
        direct,
        proxied,
    });
    drop((rt, img));
    proxy.stop().await?;
    drop(bed);
    Ok(scenarios)
}

async fn list_images_on_fake(counts: Counts, proxy_args: &[&str]) -> anyhow::Result<Scenario> {
    let dir = tempfile::tempdir()?;
    let fake_sock = dir.path().join("fake.sock");
    let fake = FakeRuntime::default();
    fake.set_images(sample_images(1000));
    let stop = CancellationToken::new();
    // the fake gets its own threads, as a runtime process would
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
    let mut proxy = ProxyProcess::start(&dir.path().join("proxy.sock"), &fake_sock, proxy_args).await?;
    let img = image_sides(&fake_sock, proxy.socket()).await?;
    let (direct, proxied) = interleave(counts.list_images, counts.warmup, |p| {
        let mut c = img.pick(p);
        async move {
            let n = c.list_images(ListImagesRequest::default()).await?.into_inner().images.len();
            anyhow::ensure!(n == 1000, "the fake listed {n} images");
            Ok(())
        }
    })
    .await?;
    drop(img);
    proxy.stop().await?;
    stop.cancel();
    server.join().map_err(|_| anyhow::anyhow!("the fake runtime's thread panicked"))??;
    Ok(Scenario {
        name: "ListImages (1,000 images, fake runtime)".into(),
        target: Target::AddedFraction(0.05),
        direct,
        proxied,
    })
}
