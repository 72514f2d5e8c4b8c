//! `stevedore-bench`: direct vs proxied CRI latency, side by side, from one run; then
//! image pulls directly, through the proxy and by the agent (see `bench::pulls`); then
//! an ImagePullJob over hollow nodes (see `bench::hollow`); then container recreation
//! (see `bench::recreate`) and ContainerRecreateRequests end to end (`bench::crr`);
//! then CloneSet rollouts in place vs ReCreate on the real containerd
//! (`bench::clone_set`) and a CloneSet at scale on hollow nodes
//! (`bench::clone_set_scale`); then Advanced DaemonSets at scale, node-local, against
//! a central watch of every pod (`bench::daemon_set_scale`).
//!
//! `stevedore-bench [--smoke] [--latency | --pulls | --hollow | --recreate | --cloneset |
//! --cloneset-scale | --daemonset-scale]... [--cloneset-replicas N] [--cloneset-budget B]...
//! [--scale-nodes N] [--scale-replicas R] [--scale-sets S] [-- PROXY_FLAGS...]`: `--smoke` runs tiny counts (CI); with no selection every
//! benchmark runs; `--latency` selects the proxy's hop, `--pulls` selects the pull and hollow-node benchmarks, `--hollow`
//! the latter, `--recreate` the recreate ones, `--cloneset` the CloneSet rollouts (N
//! replicas, default 10; `--cloneset-budget B`, repeatable, sets the
//! `maxUnavailable` budgets, default 100% and 20%), `--cloneset-scale` the CloneSet on hollow nodes (default
//! 10,000 replicas over 1,000 nodes), `--daemonset-scale` the DaemonSets on hollow
//! nodes with their agents (default 10 sets over 5,000 nodes; `--scale-nodes`,
//! `--scale-sets`); flags after `--` go to the proxy of the latency
//! benchmark (for example `--worker-threads 2`).

use stevedore_tests::bench::{
    self, clone_set, clone_set_scale, crr, daemon_set_scale, hollow, pulls, recreate,
};

const USAGE: &str = "usage: stevedore-bench [--smoke] [--latency | --pulls | --hollow | --recreate | --cloneset | \
                     --cloneset-scale | --daemonset-scale]... [--cloneset-replicas N] [--cloneset-budget B]... [--scale-nodes N] \
                     [--scale-replicas R] [--scale-sets S] \
                     [-- PROXY_FLAGS...]";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Selection {
    smoke: bool,
    latency: bool,
    pulls: bool,
    hollow: bool,
    recreate: bool,
    cloneset: bool,
    cloneset_scale: bool,
    daemonset_scale: bool,
    scale_sets: Option<usize>,
    cloneset_replicas: Option<usize>,
    cloneset_budgets: Vec<String>,
    scale_nodes: Option<usize>,
    scale_replicas: Option<usize>,
}

fn parse(ours: &[String]) -> anyhow::Result<Selection> {
    let mut s = Selection::default();
    let mut any = false;
    let mut it = ours.iter();
    while let Some(a) = it.next() {
        let mut number = |flag: &str| -> anyhow::Result<usize> {
            let v = it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a number: {USAGE}"))?;
            let n: usize = v.parse().map_err(|e| anyhow::anyhow!("{flag} {v:?}: {e}"))?;
            anyhow::ensure!(n > 0, "{flag} must be at least 1");
            Ok(n)
        };
        match a.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--smoke" => s.smoke = true,
            "--latency" => (s.latency, any) = (true, true),
            "--pulls" => (s.pulls, s.hollow, any) = (true, true, true),
            "--hollow" => (s.hollow, any) = (true, true),
            "--recreate" => (s.recreate, any) = (true, true),
            "--cloneset" => (s.cloneset, any) = (true, true),
            "--cloneset-scale" => (s.cloneset_scale, any) = (true, true),
            "--daemonset-scale" => (s.daemonset_scale, any) = (true, true),
            "--scale-sets" => s.scale_sets = Some(number(a)?),
            "--cloneset-replicas" => s.cloneset_replicas = Some(number(a)?),
            "--cloneset-budget" => {
                let v =
                    it.next().ok_or_else(|| anyhow::anyhow!("--cloneset-budget needs a value: {USAGE}"))?;
                s.cloneset_budgets.push(v.clone());
            }
            "--scale-nodes" => s.scale_nodes = Some(number(a)?),
            "--scale-replicas" => s.scale_replicas = Some(number(a)?),
            bad => anyhow::bail!("unknown argument {bad:?}: {USAGE}"),
        }
    }
    if !any {
        (s.latency, s.pulls, s.hollow, s.recreate, s.cloneset, s.cloneset_scale, s.daemonset_scale) =
            (true, true, true, true, true, true, true);
    }
    Ok(s)
}

/// Runs one benchmark until it ends or the bench is stopped (SIGINT, SIGTERM). A stop
/// drops it, so that the processes it started (controller, agent, proxy) are stopped by
/// their `Drop` instead of being left running.
fn until_stopped<T>(
    rt: &tokio::runtime::Runtime,
    bench: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    rt.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = bench => r,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            _ = terminate.recv() => anyhow::bail!("terminated"),
        }
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ours, proxy) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };
    let sel = parse(ours)?;
    let smoke = sel.smoke;
    let proxy: Vec<&str> = proxy.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if sel.latency {
        let counts = if smoke { bench::Counts::smoke() } else { bench::Counts::full() };
        let scenarios = until_stopped(&rt, bench::run(counts, &proxy))?;
        print!("{}", bench::report(&scenarios));
    }
    if sel.pulls {
        let counts = if smoke { pulls::PullCounts::smoke() } else { pulls::PullCounts::full() };
        let figures = until_stopped(&rt, pulls::run(counts))?;
        print!("{}", pulls::report(&figures));
    }
    if sel.hollow {
        let counts = if smoke { hollow::HollowCounts::smoke() } else { hollow::HollowCounts::full() };
        let figures = until_stopped(&rt, hollow::run(counts))?;
        print!("{}", hollow::report(&figures));
    }
    if sel.recreate {
        let counts = if smoke { recreate::RecreateCounts::smoke() } else { recreate::RecreateCounts::full() };
        let figures = until_stopped(&rt, recreate::run(counts))?;
        print!("{}", recreate::report(&figures));
        let counts = if smoke { crr::CrrCounts::smoke() } else { crr::CrrCounts::full() };
        let figures = until_stopped(&rt, crr::run(counts))?;
        print!("{}", crr::report(&figures));
    }
    // The CloneSet benchmarks run a whole cluster in this process (API server,
    // kubelets, scheduler): on both cores, as the suites run it.
    let mt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if sel.cloneset {
        let mut counts =
            if smoke { clone_set::CloneSetCounts::smoke() } else { clone_set::CloneSetCounts::full(10) };
        if let Some(n) = sel.cloneset_replicas {
            counts.replicas = n;
        }
        if !sel.cloneset_budgets.is_empty() {
            counts.budgets = sel.cloneset_budgets.clone();
        }
        let figures = until_stopped(&mt, clone_set::run(counts))?;
        print!("{}", clone_set::report(&figures));
    }
    if sel.cloneset_scale {
        let mut counts =
            if smoke { clone_set_scale::ScaleCounts::smoke() } else { clone_set_scale::ScaleCounts::full() };
        counts.nodes = sel.scale_nodes.unwrap_or(counts.nodes);
        counts.replicas = sel.scale_replicas.unwrap_or(counts.replicas);
        let figures = until_stopped(&mt, clone_set_scale::run(counts))?;
        print!("{}", clone_set_scale::report(&figures));
    }
    if sel.daemonset_scale {
        let mut counts = if smoke {
            daemon_set_scale::DaemonScaleCounts::smoke()
        } else {
            daemon_set_scale::DaemonScaleCounts::full()
        };
        counts.nodes = sel.scale_nodes.unwrap_or(counts.nodes);
        counts.sets = sel.scale_sets.unwrap_or(counts.sets);
        let figures = until_stopped(&mt, daemon_set_scale::run(counts))?;
        print!("{}", daemon_set_scale::report(&figures));
    }
    Ok(())
}
