//! `stevedore-demo [--keep]`: a CloneSet rolled in place on the test bed's containerd;
//! `--keep` leaves the cluster running (for kubectl) until Ctrl-C.

fn main() -> anyhow::Result<()> {
    let mut opts = stevedore_tests::demo::DemoOptions::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--keep" => opts.keep = true,
            other => anyhow::bail!("unknown argument {other:?}: usage: stevedore-demo [--keep]"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(stevedore_tests::demo::run(opts))
}
