//! `stevedore-demo`: runs a pod through the proxy on the test bed's containerd.

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(stevedore_tests::demo::run())
}
