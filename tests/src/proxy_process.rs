//! The real `stevedore-cri-proxy` binary, run as a child process.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;

use crate::testbed::procs::Daemon;

/// How long a proxy may drain after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A running proxy, logging to `<socket>.log`; killed on drop unless stopped.
#[derive(Debug)]
pub struct ProxyProcess {
    daemon: Daemon,
    socket: PathBuf,
    control: Option<PathBuf>,
    log: PathBuf,
}

/// The proxy binary built next to the running test or benchmark binary.
///
/// # Errors
/// It has not been built.
pub fn binary() -> anyhow::Result<PathBuf> {
    crate::bins::binary("stevedore-cri-proxy")
}

impl ProxyProcess {
    /// Starts the proxy on `socket`, forwarding to `runtime`, with `extra` flags;
    /// waits until it accepts connections. Its control API gets a socket of its own
    /// beside `socket` ([`ProxyProcess::control_socket`]) and its state directory is
    /// `<socket>.state`, so proxies of parallel tests never share the node defaults
    /// (a proxy started again on the same socket finds its state).
    ///
    /// # Errors
    /// The binary is missing, fails to start, or does not listen within 10 s.
    pub async fn start(socket: &Path, runtime: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let control = socket.with_extension("control.sock");
        let state = socket.with_extension("state");
        let mut args = vec![
            "--control-socket",
            control.to_str().context("the socket path is not UTF-8")?,
            "--state-dir",
            state.to_str().context("the socket path is not UTF-8")?,
        ];
        args.extend(extra);
        let mut proxy = Self::start_binary(&binary()?, socket, runtime, &args).await?;
        proxy.control = Some(control);
        Ok(proxy)
    }

    /// The control API's socket (`<socket>.control.sock`) of a proxy from
    /// [`ProxyProcess::start`]; `None` for another build.
    pub fn control_socket(&self) -> Option<&Path> {
        self.control.as_deref()
    }

    /// As [`ProxyProcess::start`], with another build of the proxy (one that takes
    /// the same flags).
    ///
    /// # Errors
    /// As [`ProxyProcess::start`].
    pub async fn start_binary(
        bin: &Path,
        socket: &Path,
        runtime: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(socket)
            .arg("--runtime-endpoint")
            .arg(format!("unix://{}", runtime.display()))
            .args(["--metrics-addr", "none"])
            .args(extra)
            .env("RUST_LOG", "warn");
        let log = socket.with_extension("log");
        let daemon = Daemon::spawn("stevedore-cri-proxy", cmd, &log, &socket.with_extension("pid"))?;
        let mut proxy = ProxyProcess { daemon, socket: socket.to_owned(), control: None, log };
        let listen = format!("listen on {}", socket.display());
        proxy
            .daemon
            .wait_ready(&proxy.log, Duration::from_secs(10), &listen, async || {
                tokio::net::UnixStream::connect(socket).await.is_ok()
            })
            .await?;
        Ok(proxy)
    }

    /// The socket it serves.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Kills it at once with SIGKILL alone (no SIGTERM first), as a crash or an OOM
    /// kill would, and reaps it.
    pub fn kill(&mut self) {
        crate::testbed::procs::signal(self.daemon.pid(), nix::sys::signal::Signal::SIGKILL);
        self.daemon.stop_blocking(Duration::ZERO);
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::testbed::procs::tail(&self.log, lines)
    }

    /// Sends SIGTERM and waits (without blocking the async runtime, so this
    /// process's own clients can still answer the proxy's GOAWAY) for the exit status.
    ///
    /// # Errors
    /// The status cannot be read.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.daemon.stop_status(STOP_GRACE).await
    }
}

impl Drop for ProxyProcess {
    /// A proxy not stopped with [`ProxyProcess::stop`] (a failing test) is killed.
    fn drop(&mut self) {
        self.daemon.stop_blocking(Duration::ZERO);
    }
}
