//! `stevedore-cri-proxy`: parses flags, starts logging, runs the proxy.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use stevedore_cri_proxy::{
    Config,
    config::{Forwarding, Records, parse_endpoint},
};
use stevedore_proto::{
    process::{EX_USAGE, Process},
    telemetry::LogFormat,
};

/// CRI v1 proxy between kubelet and the container runtime. It forwards every CRI call
/// to the runtime unchanged (unknown methods too, as raw bytes) and exposes
/// Prometheus metrics. Point kubelet's --container-runtime-endpoint and
/// --image-service-endpoint at --listen.
#[derive(Debug, Parser)]
#[command(name = "stevedore-cri-proxy", version)]
struct Args {
    /// Unix socket to serve CRI on (created with mode 0660; a stale one is replaced).
    #[arg(long, env = "STEVEDORE_CRI_PROXY_LISTEN", default_value = "/run/stevedore/cri.sock")]
    listen: PathBuf,
    /// The runtime's CRI endpoint (unix:///path or /path).
    #[arg(
        long,
        env = "STEVEDORE_CRI_PROXY_RUNTIME_ENDPOINT",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    runtime_endpoint: String,
    /// Address for /metrics and /healthz; "none" turns them off.
    #[arg(long, env = "STEVEDORE_CRI_PROXY_METRICS_ADDR", default_value = "127.0.0.1:9731")]
    metrics_addr: String,
    /// Seconds that in-flight calls may take to finish after SIGTERM.
    #[arg(long, env = "STEVEDORE_CRI_PROXY_SHUTDOWN_GRACE", default_value_t = 10.0)]
    shutdown_grace: f64,
    /// Seconds allowed for connecting to the runtime when a call has no deadline.
    #[arg(long, env = "STEVEDORE_CRI_PROXY_CONNECT_TIMEOUT", default_value_t = 5.0)]
    connect_timeout: f64,
    /// Unix socket of the control API (mode 0600, for the node agent); "none" turns it off.
    #[arg(long, env = "STEVEDORE_CRI_PROXY_CONTROL_SOCKET", default_value = "/run/stevedore/control.sock")]
    control_socket: PathBuf,
    /// Milliseconds between reads of a pull's progress from containerd's content store.
    #[arg(long, env = "STEVEDORE_CRI_PROXY_PULL_PROGRESS_INTERVAL_MS", default_value_t = 250)]
    pull_progress_interval_ms: u64,
    /// Directory of the proxy's durable state (the CreateContainer requests it
    /// recorded, the recreate journal); "memory" keeps records in memory only.
    #[arg(long, env = "STEVEDORE_CRI_PROXY_STATE_DIR", default_value = "/var/lib/stevedore/cri-proxy")]
    state_dir: PathBuf,
    /// Do not record containers: container calls are forwarded as bytes, and
    /// RecreateContainer only stops a container for kubelet to restart.
    #[arg(long, env = "STEVEDORE_CRI_PROXY_NO_CONTAINER_RECORDS")]
    no_container_records: bool,
    /// Log format: plain or json. The level comes from RUST_LOG (default info).
    #[arg(long, env = "STEVEDORE_CRI_PROXY_LOG_FORMAT", default_value = "plain")]
    log_format: LogFormat,
    /// Threads of the async runtime; 1 runs everything on one thread (lowest latency).
    #[arg(long, env = "STEVEDORE_CRI_PROXY_WORKER_THREADS", default_value_t = 1)]
    worker_threads: usize,
    /// How calls without a typed handler cross: relay (HTTP/2 frames relayed to a
    /// runtime connection per caller connection) or terminate (HTTP/2 ended on both
    /// sides, as before the relay).
    #[arg(long, env = "STEVEDORE_CRI_PROXY_FORWARDING", default_value = "relay")]
    forwarding: ForwardingArg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ForwardingArg {
    Relay,
    Terminate,
}

impl Args {
    fn config(&self) -> Result<Config, String> {
        let runtime_socket =
            parse_endpoint(&self.runtime_endpoint).map_err(|e| format!("--runtime-endpoint: {e}"))?;
        let metrics_addr = match self.metrics_addr.as_str() {
            "none" | "" => None,
            a => Some(a.parse::<SocketAddr>().map_err(|e| format!("--metrics-addr {a:?}: {e}"))?),
        };
        if !self.listen.is_absolute() {
            return Err(format!("--listen {:?}: must be an absolute path", self.listen));
        }
        if self.listen == runtime_socket {
            return Err("--listen and --runtime-endpoint name the same socket".into());
        }
        let control_socket = match self.control_socket.to_str() {
            Some("none" | "") => None,
            _ if !self.control_socket.is_absolute() => {
                return Err(format!(
                    "--control-socket {:?}: must be an absolute path or none",
                    self.control_socket
                ));
            }
            _ if self.control_socket == self.listen || self.control_socket == runtime_socket => {
                return Err("--control-socket must differ from --listen and --runtime-endpoint".into());
            }
            _ => Some(self.control_socket.clone()),
        };
        if self.pull_progress_interval_ms == 0 {
            return Err("--pull-progress-interval-ms: must be at least 1".into());
        }
        let records = if self.no_container_records {
            Records::Off
        } else if self.state_dir.as_os_str() == "memory" {
            Records::Memory
        } else if self.state_dir.is_absolute() {
            Records::Durable(self.state_dir.clone())
        } else {
            return Err(format!("--state-dir {:?}: must be an absolute path or memory", self.state_dir));
        };
        if self.worker_threads == 0 {
            return Err("--worker-threads: must be at least 1".into());
        }
        Ok(Config {
            listen: self.listen.clone(),
            runtime_socket,
            metrics_addr,
            shutdown_grace: seconds("--shutdown-grace", self.shutdown_grace)?,
            connect_timeout: seconds("--connect-timeout", self.connect_timeout)?,
            control_socket,
            pull_progress_interval: Duration::from_millis(self.pull_progress_interval_ms),
            records,
            forwarding: match self.forwarding {
                ForwardingArg::Relay => Forwarding::Relay,
                ForwardingArg::Terminate => Forwarding::Terminate,
            },
        })
    }
}

fn seconds(flag: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("{flag} {v}: must be a non-negative number of seconds"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.config() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("stevedore-cri-proxy: {msg}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    // One thread by default: every hop of a forwarded call (client connection, call,
    // runtime connection) then stays on one thread, with no wake-ups between threads.
    let process = Process {
        name: "stevedore-cri-proxy",
        log_format: args.log_format,
        log_filter: rust_log.as_deref(),
        worker_threads: args.worker_threads,
    };
    process.run(|shutdown| stevedore_cri_proxy::run(config, shutdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["stevedore-cri-proxy"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv).map_err(|e| e.to_string())?.config()
    }

    #[test]
    fn defaults_are_a_node_install() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen, PathBuf::from("/run/stevedore/cri.sock"));
        assert_eq!(c.runtime_socket, PathBuf::from("/run/containerd/containerd.sock"));
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9731".parse().unwrap()));
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(Args::try_parse_from(["p"]).unwrap().worker_threads, 1);
    }

    #[test]
    fn bad_flags_name_the_flag_and_the_reason() {
        let e = parse(&["--runtime-endpoint", "tcp://1.2.3.4:5"]).unwrap_err();
        assert!(e.starts_with("--runtime-endpoint:"), "{e}");
        let e = parse(&["--metrics-addr", "nowhere"]).unwrap_err();
        assert!(e.starts_with("--metrics-addr"), "{e}");
        let e = parse(&["--listen", "/a.sock", "--runtime-endpoint", "unix:///a.sock"]).unwrap_err();
        assert!(e.contains("same socket"), "{e}");
        let e = parse(&["--shutdown-grace=-1"]).unwrap_err();
        assert!(e.starts_with("--shutdown-grace"), "{e}");
        assert!(parse(&["--log-format", "xml"]).is_err());
        assert_eq!(parse(&["--metrics-addr", "none"]).unwrap().metrics_addr, None);
        let e = parse(&["--state-dir", "relative"]).unwrap_err();
        assert!(e.starts_with("--state-dir"), "{e}");
        assert_eq!(parse(&["--state-dir", "memory"]).unwrap().records, Records::Memory);
        assert_eq!(parse(&["--no-container-records"]).unwrap().records, Records::Off);
        assert_eq!(
            parse(&[]).unwrap().records,
            Records::Durable(PathBuf::from("/var/lib/stevedore/cri-proxy"))
        );
    }
}
