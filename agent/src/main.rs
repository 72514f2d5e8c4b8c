//! `stevedore-agent`: parses flags, starts logging, runs the agent.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Parser;
use stevedore_proto::{process::Process, telemetry::LogFormat, uds::socket_path};

/// Stevedore's node agent: pulls the images its node's NodeImage lists (through the
/// Stevedore CRI proxy, with progress from its control API) and reports them in the
/// NodeImage's status; recreates containers for the ContainerRecreateRequests of its
/// node's pods. It watches only what concerns its own node.
#[derive(Debug, Parser)]
#[command(name = "stevedore-agent", version)]
struct Args {
    /// The name of the node this agent runs on (the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The agent's namespace: it reads pull secrets there only.
    #[arg(long, env = "POD_NAMESPACE", default_value = "stevedore-system")]
    namespace: String,
    /// The CRI endpoint to use: the Stevedore proxy's socket (path or unix:// URL).
    #[arg(long, env = "STEVEDORE_AGENT_CRI_ENDPOINT", default_value = "unix:///run/stevedore/cri.sock")]
    cri_endpoint: String,
    /// The proxy's control API socket (path or unix:// URL); `none` pulls through CRI
    /// only, without progress.
    #[arg(
        long,
        env = "STEVEDORE_AGENT_PROXY_CONTROL_ENDPOINT",
        default_value = "unix:///run/stevedore/control.sock"
    )]
    proxy_control_endpoint: String,
    /// Where to serve /metrics and /healthz, or `none`.
    #[arg(long, env = "STEVEDORE_AGENT_METRICS_ADDR", default_value = "127.0.0.1:9732")]
    metrics_addr: String,
    /// Image pulls at once on this node.
    #[arg(long, env = "STEVEDORE_AGENT_MAX_CONCURRENT_PULLS", default_value_t = 4)]
    max_concurrent_pulls: usize,
    /// The least time between two NodeImage status writes, in milliseconds.
    #[arg(long, env = "STEVEDORE_AGENT_STATUS_INTERVAL_MS", default_value_t = 1000)]
    status_interval_ms: u64,
    /// Seconds between two renewals of the agent's heartbeat Lease (`agent-<node>` in
    /// its namespace): the controller takes an agent silent for a few of these for
    /// gone.
    #[arg(long, env = "STEVEDORE_AGENT_HEARTBEAT_SECONDS", default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_seconds: u64,
    /// How containers of ContainerRecreateRequests are recreated: `proxy` (the
    /// proxy's RecreateContainer; falls back to `kubelet` when the proxy cannot) or
    /// `kubelet` (stop the container; kubelet restarts it).
    #[arg(long, env = "STEVEDORE_RECREATE_MODE", default_value = "proxy")]
    recreate_mode: String,
    /// Log format: plain or json. The level comes from RUST_LOG (default info).
    #[arg(long, env = "STEVEDORE_AGENT_LOG_FORMAT", default_value = "plain")]
    log_format: LogFormat,
}

fn config(args: &Args) -> Result<stevedore_agent::Config, String> {
    if args.node_name.trim().is_empty() {
        return Err("--node-name: must not be empty (set it or NODE_NAME)".into());
    }
    if args.max_concurrent_pulls == 0 {
        return Err("--max-concurrent-pulls: must be at least 1".into());
    }
    let metrics_addr = match args.metrics_addr.as_str() {
        "none" => None,
        a => Some(a.parse::<SocketAddr>().map_err(|e| format!("--metrics-addr {a:?}: {e}"))?),
    };
    let control_socket = match args.proxy_control_endpoint.as_str() {
        "none" | "" => None,
        e => Some(socket_path(e)),
    };
    let recreate_mode = args.recreate_mode.parse().map_err(|e| format!("--recreate-mode: {e}"))?;
    Ok(stevedore_agent::Config {
        node_name: args.node_name.clone(),
        namespace: args.namespace.clone(),
        cri_socket: socket_path(&args.cri_endpoint),
        control_socket,
        metrics_addr,
        max_concurrent_pulls: args.max_concurrent_pulls,
        status_interval: Duration::from_millis(args.status_interval_ms),
        recreate_mode,
        heartbeat: Duration::from_secs(args.heartbeat_seconds),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stevedore-agent: {e}");
            return ExitCode::from(stevedore_proto::process::EX_USAGE);
        }
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let process = Process {
        name: "stevedore-agent",
        log_format: args.log_format,
        log_filter: rust_log.as_deref(),
        worker_threads: 2,
    };
    process.run(|shutdown| stevedore_agent::run(config, shutdown))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn flags() {
        assert!(Args::try_parse_from(["stevedore-agent"]).is_err(), "a node name is required");
        let a = Args::try_parse_from(["stevedore-agent", "--node-name", "n1"]).unwrap();
        let c = config(&a).unwrap();
        assert_eq!(c.cri_socket, PathBuf::from("/run/stevedore/cri.sock"));
        assert_eq!(c.control_socket, Some(PathBuf::from("/run/stevedore/control.sock")));
        assert_eq!((c.namespace.as_str(), c.max_concurrent_pulls), ("stevedore-system", 4));
        let a = Args::try_parse_from(["stevedore-agent", "--node-name", " "]).unwrap();
        assert!(config(&a).unwrap_err().contains("--node-name"));
        let a = Args::try_parse_from(["stevedore-agent", "--node-name", "n", "--metrics-addr", "x"]).unwrap();
        assert!(config(&a).unwrap_err().contains("--metrics-addr"));
        let a =
            Args::try_parse_from(["stevedore-agent", "--node-name", "n", "--proxy-control-endpoint", "none"])
                .unwrap();
        assert_eq!(config(&a).unwrap().control_socket, None);
        assert_eq!(c.recreate_mode, stevedore_agent::recreate::Mode::Proxy);
        let a = Args::try_parse_from(["stevedore-agent", "--node-name", "n", "--recreate-mode", "kubelet"])
            .unwrap();
        assert_eq!(config(&a).unwrap().recreate_mode, stevedore_agent::recreate::Mode::Kubelet);
        let a =
            Args::try_parse_from(["stevedore-agent", "--node-name", "n", "--recreate-mode", "cri"]).unwrap();
        assert!(config(&a).unwrap_err().contains("--recreate-mode"));
    }
}
