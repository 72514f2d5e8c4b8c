//! `stevedore-bench-typed-proxy`: the proxy with read-only typed handlers on the
//! methods the benchmark calls (see `stevedore_tests::bench::typed`). Takes the
//! proxy's flags that the benchmark passes.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use stevedore_cri_proxy::{Config, config::parse_endpoint};
use stevedore_proto::{process::Process, telemetry::LogFormat};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    listen: PathBuf,
    #[arg(long)]
    runtime_endpoint: String,
    /// Only "none" is taken: the benchmark turns metrics off.
    #[arg(long, default_value = "none")]
    metrics_addr: String,
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    anyhow::ensure!(args.metrics_addr == "none", "--metrics-addr: only none is supported here");
    let config = Config {
        listen: args.listen,
        runtime_socket: parse_endpoint(&args.runtime_endpoint)?,
        metrics_addr: None,
        shutdown_grace: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        control_socket: None,
        pull_progress_interval: Duration::from_millis(250),
        forwarding: Default::default(),
        records: stevedore_cri_proxy::config::Records::Off,
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let process = Process {
        name: "stevedore-bench-typed-proxy",
        log_format: LogFormat::Plain,
        log_filter: rust_log.as_deref(),
        worker_threads: args.worker_threads,
    };
    Ok(process.run(|shutdown| async move {
        stevedore_cri_proxy::bind(config)
            .await?
            .with_handlers(stevedore_tests::bench::typed::handlers())
            .run(shutdown)
            .await
    }))
}
