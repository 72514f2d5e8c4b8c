//! `stevedore-agent`: parses flags, starts logging, runs the agent.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use stevedore_proto::{process::Process, telemetry::LogFormat};

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
        return ExitCode::from(stevedore_proto::process::EX_USAGE);
    }
    let rust_log = std::env::var("RUST_LOG").ok();
    let config = stevedore_agent::Config { node_name: args.node_name, cri_socket: args.cri_socket };
    let process = Process {
        name: "stevedore-agent",
        log_format: args.log_format,
        log_filter: rust_log.as_deref(),
        worker_threads: 1,
    };
    process.run(|shutdown| async move {
        stevedore_agent::run(config, shutdown).await;
        Ok::<_, std::convert::Infallible>(())
    })
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
