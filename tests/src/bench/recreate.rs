//! The container-recreate benchmark, on a real containerd, interleaved in one run:
//!
//! - `CreateContainer` straight to containerd, through the proxy with
//!   `--no-container-records` (a plain forward), and through the proxy recording it
//!   durably (the default): what recording adds to kubelet's call;
//! - one recreate of a running container: the proxy's `RecreateContainer` (control
//!   API) against the same three steps (stop, create the next attempt, start) sent
//!   straight to containerd by the client.

use std::{fmt::Write as _, time::Duration};

use stevedore_proto::{
    control::{RecreateContainerRequest, control_client::ControlClient},
    cri::{
        ImageSpec, PullImageRequest, RemoveContainerRequest, RunPodSandboxRequest, StartContainerRequest,
        StopContainerRequest,
    },
};
use tokio::time::Instant;

use crate::{
    cri::{RuntimeClient, connect, image_client, runtime_client},
    pods::{self, Network},
    proxy_process::ProxyProcess,
    testbed::TestBed,
};

/// How much the recreate benchmark does.
#[derive(Clone, Copy, Debug)]
pub struct RecreateCounts {
    /// Timed calls per side.
    pub runs: usize,
}

impl RecreateCounts {
    /// The figures for the closing note.
    pub fn full() -> Self {
        Self { runs: 40 }
    }

    /// A couple per side, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { runs: 2 }
    }
}

/// The samples of one run.
#[derive(Clone, Debug, Default)]
pub struct RecreateFigures {
    /// CreateContainer straight to containerd.
    pub create_direct: Vec<Duration>,
    /// CreateContainer through the proxy, not recorded.
    pub create_plain: Vec<Duration>,
    /// CreateContainer through the proxy, recorded durably.
    pub create_recorded: Vec<Duration>,
    /// stop + create + start sent by the client straight to containerd.
    pub recreate_direct: Vec<Duration>,
    /// The proxy's RecreateContainer.
    pub recreate_proxy: Vec<Duration>,
}

fn pct(samples: &[Duration], p: f64) -> Duration {
    let mut v = samples.to_vec();
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the benchmark on a bed of its own.
///
/// # Errors
/// The bed, a proxy or a call failed.
pub async fn run(counts: RecreateCounts) -> anyhow::Result<RecreateFigures> {
    let bed = TestBed::start().await?;
    let recorded = ProxyProcess::start(&bed.dir().join("rec.sock"), bed.containerd_socket(), &[]).await?;
    let plain = ProxyProcess::start(
        &bed.dir().join("plain.sock"),
        bed.containerd_socket(),
        &["--no-container-records"],
    )
    .await?;
    let mut direct = runtime_client(connect(bed.containerd_socket()).await?);
    let mut via_plain = runtime_client(connect(plain.socket()).await?);
    let mut via_recorded = runtime_client(connect(recorded.socket()).await?);
    let mut control = ControlClient::new(connect(recorded.control_socket().expect("our proxy")).await?);
    let app = bed.image("app:v1");
    let pull = PullImageRequest {
        image: Some(ImageSpec { image: app.clone(), ..Default::default() }),
        ..Default::default()
    };
    image_client(connect(bed.containerd_socket()).await?).pull_image(pull).await?;
    let log_dir = bed.log_dir().join("bench-recreate");
    std::fs::create_dir_all(&log_dir)?;
    let cfg =
        pods::sandbox("bench-recreate", "uid-bench-recreate", Network::Host, &log_dir.display().to_string());
    let sandbox = direct
        .run_pod_sandbox(RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: String::new() })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let mut f = RecreateFigures::default();

    // What recording adds to CreateContainer: three sides, turns rotated.
    let mut n = 0u32;
    for i in 0..counts.runs + 1 {
        for k in 0..3 {
            let side = (i + k) % 3;
            let c: &mut RuntimeClient = match side {
                0 => &mut direct,
                1 => &mut via_plain,
                _ => &mut via_recorded,
            };
            n += 1;
            let req = pods::container(&sandbox, &cfg, &format!("c{n}"), &app, 0);
            let t = Instant::now();
            let id = c.create_container(req).await?.into_inner().container_id;
            let took = t.elapsed();
            c.remove_container(RemoveContainerRequest { container_id: id }).await?;
            if i == 0 {
                continue; // warm-up
            }
            [&mut f.create_direct, &mut f.create_plain, &mut f.create_recorded][side].push(took);
        }
    }

    // Recreate: the proxy's against the bare three steps, alternating.
    let mut ours = via_recorded
        .create_container(pods::container(&sandbox, &cfg, "ours", &app, 0))
        .await?
        .into_inner()
        .container_id;
    via_recorded.start_container(StartContainerRequest { container_id: ours.clone() }).await?;
    let mut theirs = direct
        .create_container(pods::container(&sandbox, &cfg, "theirs", &app, 0))
        .await?
        .into_inner()
        .container_id;
    direct.start_container(StartContainerRequest { container_id: theirs.clone() }).await?;
    for i in 0..counts.runs {
        let attempt = u32::try_from(i)? + 1;
        let t = Instant::now();
        direct.stop_container(StopContainerRequest { container_id: theirs.clone(), timeout: 0 }).await?;
        let next = pods::container(&sandbox, &cfg, "theirs", &app, attempt);
        let id = direct.create_container(next).await?.into_inner().container_id;
        direct.start_container(StartContainerRequest { container_id: id.clone() }).await?;
        f.recreate_direct.push(t.elapsed());
        direct
            .remove_container(RemoveContainerRequest { container_id: std::mem::replace(&mut theirs, id) })
            .await?;

        let t = Instant::now();
        let done = control
            .recreate_container(RecreateContainerRequest { container_id: ours.clone(), ..Default::default() })
            .await?
            .into_inner();
        f.recreate_proxy.push(t.elapsed());
        anyhow::ensure!(done.recorded && done.attempt == attempt, "unexpected recreate: {done:?}");
        via_recorded
            .remove_container(RemoveContainerRequest {
                container_id: std::mem::replace(&mut ours, done.container_id),
            })
            .await?;
    }
    Ok(f)
}

/// The figures side by side.
pub fn report(f: &RecreateFigures) -> String {
    let mut out = String::from("\n== container recreate (real containerd)\n");
    let row = |out: &mut String, name: &str, s: &[Duration], base: &[Duration]| {
        let _ = writeln!(
            out,
            "{name:<44} p50 {:>8.2} ms  p99 {:>8.2} ms  p50 vs baseline x{:.3}  (n={})",
            ms(pct(s, 0.5)),
            ms(pct(s, 0.99)),
            pct(s, 0.5).as_secs_f64() / pct(base, 0.5).as_secs_f64().max(1e-9),
            s.len()
        );
    };
    row(&mut out, "CreateContainer direct", &f.create_direct, &f.create_direct);
    row(&mut out, "CreateContainer proxy, not recorded (baseline)", &f.create_plain, &f.create_plain);
    row(&mut out, "CreateContainer proxy, recorded durably", &f.create_recorded, &f.create_plain);
    let added = ms(pct(&f.create_recorded, 0.5)) - ms(pct(&f.create_plain, 0.5));
    let _ =
        writeln!(out, "  recording adds {added:+.3} ms at p50 (target: within noise of the plain forward)");
    row(&mut out, "stop+create+start direct (baseline)", &f.recreate_direct, &f.recreate_direct);
    row(&mut out, "RecreateContainer via the proxy", &f.recreate_proxy, &f.recreate_direct);
    let ratio =
        pct(&f.recreate_proxy, 0.5).as_secs_f64() / pct(&f.recreate_direct, 0.5).as_secs_f64().max(1e-9);
    let verdict = if ratio <= 1.1 { "met" } else { "missed" };
    let _ =
        writeln!(out, "  RecreateContainer / bare sequence = x{ratio:.3} at p50 (target <= 1.1: {verdict})");
    out
}
