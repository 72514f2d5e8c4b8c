//! `stevedore-bench`: direct vs proxied CRI latency, side by side, from one run.
//! `--smoke` runs tiny counts (CI); the default counts give the published figures.

fn main() -> anyhow::Result<()> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let counts = if smoke { stevedore_tests::bench::Counts::smoke() } else { stevedore_tests::bench::Counts::full() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let scenarios = rt.block_on(stevedore_tests::bench::run(counts))?;
    print!("{}", stevedore_tests::bench::report(&scenarios));
    Ok(())
}
