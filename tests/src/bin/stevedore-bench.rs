//! `stevedore-bench`: direct vs proxied CRI latency, side by side, from one run.
//!
//! `stevedore-bench [--smoke] [-- PROXY_FLAGS...]`: `--smoke` runs tiny counts (CI);
//! flags after `--` go to the proxy (for example `--worker-threads 2`).

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ours, proxy) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };
    if let Some(bad) = ours.iter().find(|a| *a != "--smoke") {
        anyhow::bail!("unknown argument {bad:?}: usage: stevedore-bench [--smoke] [-- PROXY_FLAGS...]");
    }
    let smoke = !ours.is_empty();
    let counts =
        if smoke { stevedore_tests::bench::Counts::smoke() } else { stevedore_tests::bench::Counts::full() };
    let proxy: Vec<&str> = proxy.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let scenarios = rt.block_on(stevedore_tests::bench::run(counts, &proxy))?;
    print!("{}", stevedore_tests::bench::report(&scenarios));
    Ok(())
}
