//! The real `stevedore-agent` binary, run for one node against a kubeconfig (usually
//! the simulated API server's), with CRI (and the proxy's control API) on the given
//! sockets.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::testbed::procs::{self, Daemon};

/// How long the agent gets to stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What an agent is started with.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Its node.
    pub node_name: String,
    /// The kubeconfig it uses.
    pub kubeconfig: PathBuf,
    /// The CRI socket.
    pub cri_socket: PathBuf,
    /// The proxy's control socket (`None`: `--proxy-control-endpoint none`).
    pub control_socket: Option<PathBuf>,
    /// Its namespace (pull secrets are read there).
    pub namespace: String,
    /// Extra flags.
    pub extra: Vec<String>,
}

/// A running agent; killed when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    daemon: Daemon,
    metrics: SocketAddr,
    log: PathBuf,
}

impl AgentProcess {
    /// Starts the agent with logs and pid file under `dir`; returns once its metrics
    /// endpoint answers.
    ///
    /// # Errors
    /// The binary is missing, exits, or does not answer within 30 s.
    pub async fn start(dir: &Path, opts: &AgentOptions) -> anyhow::Result<Self> {
        let bin = crate::bins::binary("stevedore-agent")?;
        let metrics = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let mut cmd = Command::new(&bin);
        cmd.args(["--node-name", &opts.node_name, "--namespace", &opts.namespace])
            .arg("--cri-endpoint")
            .arg(&opts.cri_socket)
            .arg("--proxy-control-endpoint")
            .arg(opts.control_socket.as_deref().unwrap_or(Path::new("none")))
            .args(["--metrics-addr", &metrics.to_string(), "--status-interval-ms", "200"])
            .args(&opts.extra)
            .env("KUBECONFIG", &opts.kubeconfig)
            .env("RUST_LOG", "info,stevedore_agent=debug");
        let log = dir.join(format!("agent-{}.log", opts.node_name));
        let daemon =
            Daemon::spawn("stevedore-agent", cmd, &log, &dir.join(format!("agent-{}.pid", opts.node_name)))?;
        let mut agent = Self { daemon, metrics, log };
        let what = format!("serve /healthz on {metrics}");
        agent
            .daemon
            .wait_ready(&agent.log, Duration::from_secs(30), &what, async || {
                procs::http_ok(metrics, "/healthz")
            })
            .await?;
        Ok(agent)
    }

    /// Its `/metrics`, as text.
    ///
    /// # Errors
    /// The endpoint does not answer.
    pub fn metrics(&self) -> anyhow::Result<String> {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.metrics)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        procs::tail(&self.log, lines)
    }

    /// Kills it at once (SIGKILL), as a node losing the process would.
    pub fn kill(&mut self) {
        self.daemon.stop_blocking(Duration::ZERO);
    }

    /// Sends SIGTERM and waits for the exit status.
    ///
    /// # Errors
    /// The status cannot be read.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.daemon.stop_status(STOP_GRACE).await
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.daemon.stop_blocking(Duration::ZERO);
    }
}
