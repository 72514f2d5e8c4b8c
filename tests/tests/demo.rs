//! The README's demo (`make demo`) runs to the end: a CloneSet rolled in place on the
//! real containerd, its checks (same pods, one restart each, new containers) passing,
//! and nothing left behind.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs() {
    stevedore_tests::demo::run(stevedore_tests::demo::DemoOptions::default()).await.unwrap();
}
