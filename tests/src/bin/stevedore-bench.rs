//! `stevedore-bench`: direct vs proxied CRI latency, side by side, from one run; then
//! image pulls directly, through the proxy and by the agent (see `bench::pulls`).
//!
//! `stevedore-bench [--smoke] [--pulls] [-- PROXY_FLAGS...]`: `--smoke` runs tiny
//! counts (CI); `--pulls` runs only the pull benchmark; flags after `--` go to the
//! proxy of the latency benchmark (for example `--worker-threads 2`).

use stevedore_tests::bench::{self, pulls};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ours, proxy) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };
    if let Some(bad) = ours.iter().find(|a| !matches!(a.as_str(), "--smoke" | "--pulls")) {
        anyhow::bail!(
            "unknown argument {bad:?}: usage: stevedore-bench [--smoke] [--pulls] [-- PROXY_FLAGS...]"
        );
    }
    let smoke = ours.iter().any(|a| a == "--smoke");
    let only_pulls = ours.iter().any(|a| a == "--pulls");
    let proxy: Vec<&str> = proxy.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if !only_pulls {
        let counts = if smoke { bench::Counts::smoke() } else { bench::Counts::full() };
        let scenarios = rt.block_on(bench::run(counts, &proxy))?;
        print!("{}", bench::report(&scenarios));
    }
    let counts = if smoke { pulls::PullCounts::smoke() } else { pulls::PullCounts::full() };
    let figures = rt.block_on(pulls::run(counts))?;
    print!("{}", pulls::report(&figures));
    Ok(())
}
