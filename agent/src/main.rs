//! `stevedore-agent`: parses flags, starts logging, runs the agent.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use stevedore_proto::telemetry::{self, LogFormat};

/// Stevedore's node agent. In this release it has no duties yet: it checks its flags,
/// logs them and waits for SIGTERM. Image pre-download, container recreate requests
/// and DaemonSet/BroadcastJob node work come in later releases.
#[derive(Debug, Parser)]
#[command(name = "stevedore-agent", version)]
struct Args {
    /// The name of the node this agent runs on (from the downward API or the host).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The CRI socket to use: the Stevedore proxy's.
    #[arg(long, env = "STEVEDORE_AGENT_CRI_SOCKET", default_value = "/run/stevedore/cri.sock")]
    cri_socket: PathBuf,
    /// Log format: plain or json. The level comes from RUST_LOG (default info).
    #[arg(long, env = "STEVEDORE_AGENT_LOG_FORMAT", default_value = "plain")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.node_name.trim().is_empty() {
        eprintln!("stevedore-agent: --node-name: must not be empty");
        return ExitCode::from(64);
    }
    let rust_log = std::env::var("RUST_LOG").ok();
    if let Err(e) = telemetry::init(args.log_format, rust_log.as_deref()) {
        eprintln!("stevedore-agent: {e}");
        return ExitCode::from(64);
    }
    let config = stevedore_agent::Config { node_name: args.node_name, cri_socket: args.cri_socket };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = stevedore_proto::shutdown::on_signal()?;
                stevedore_agent::run(config, shutdown).await;
                anyhow::Ok(())
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stevedore-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_is_required() {
        assert!(Args::try_parse_from(["stevedore-agent"]).is_err());
        let a = Args::try_parse_from(["stevedore-agent", "--node-name", "n1"]).unwrap();
        assert_eq!(a.cri_socket, PathBuf::from("/run/stevedore/cri.sock"));
    }
}
