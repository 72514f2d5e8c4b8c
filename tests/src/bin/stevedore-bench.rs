//! `stevedore-bench`: direct vs proxied CRI latency, side by side, from one run; then
//! image pulls directly, through the proxy and by the agent (see `bench::pulls`); then
//! an ImagePullJob over hollow nodes (see `bench::hollow`); then container recreation
//! (see `bench::recreate`) and ContainerRecreateRequests end to end (`bench::crr`).
//!
//! `stevedore-bench [--smoke] [--pulls | --hollow | --recreate] [-- PROXY_FLAGS...]`:
//! `--smoke` runs tiny counts (CI); `--pulls` runs only the pull and hollow-node
//! benchmarks, `--hollow` only the latter, `--recreate` only the recreate ones; flags
//! after `--` go to the proxy of the latency benchmark (for example
//! `--worker-threads 2`).

use stevedore_tests::bench::{self, crr, hollow, pulls, recreate};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ours, proxy) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };
    if let Some(bad) =
        ours.iter().find(|a| !matches!(a.as_str(), "--smoke" | "--pulls" | "--hollow" | "--recreate"))
    {
        anyhow::bail!(
            "unknown argument {bad:?}: usage: stevedore-bench [--smoke] [--pulls | --hollow | --recreate] [-- PROXY_FLAGS...]"
        );
    }
    let smoke = ours.iter().any(|a| a == "--smoke");
    let only_recreate = ours.iter().any(|a| a == "--recreate");
    let only_hollow = ours.iter().any(|a| a == "--hollow");
    let skip_latency = only_hollow || ours.iter().any(|a| a == "--pulls");
    let proxy: Vec<&str> = proxy.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if !skip_latency && !only_recreate {
        let counts = if smoke { bench::Counts::smoke() } else { bench::Counts::full() };
        let scenarios = rt.block_on(bench::run(counts, &proxy))?;
        print!("{}", bench::report(&scenarios));
    }
    if !only_hollow && !only_recreate {
        let counts = if smoke { pulls::PullCounts::smoke() } else { pulls::PullCounts::full() };
        let figures = rt.block_on(pulls::run(counts))?;
        print!("{}", pulls::report(&figures));
    }
    if !only_recreate {
        let counts = if smoke { hollow::HollowCounts::smoke() } else { hollow::HollowCounts::full() };
        let figures = rt.block_on(hollow::run(counts))?;
        print!("{}", hollow::report(&figures));
    }
    if !only_hollow && ours.iter().all(|a| a != "--pulls") || only_recreate {
        let counts = if smoke { recreate::RecreateCounts::smoke() } else { recreate::RecreateCounts::full() };
        let figures = rt.block_on(recreate::run(counts))?;
        print!("{}", recreate::report(&figures));
        let counts = if smoke { crr::CrrCounts::smoke() } else { crr::CrrCounts::full() };
        let figures = rt.block_on(crr::run(counts))?;
        print!("{}", crr::report(&figures));
    }
    Ok(())
}
