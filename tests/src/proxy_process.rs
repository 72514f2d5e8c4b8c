//! The real `stevedore-cri-proxy` binary, run as a child process.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::testbed::procs::{self, Daemon};

/// How long a proxy may drain after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A running proxy, logging to `<socket>.log`; killed on drop unless stopped.
#[derive(Debug)]
pub struct ProxyProcess {
    daemon: Daemon,
    socket: PathBuf,
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
    /// waits until it accepts connections.
    ///
    /// # Errors
    /// The binary is missing, fails to start, or does not listen within 10 s.
    pub async fn start(socket: &Path, runtime: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let bin = binary()?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--listen")
            .arg(socket)
            .arg("--runtime-endpoint")
            .arg(format!("unix://{}", runtime.display()))
            .args(["--metrics-addr", "none"])
            .args(extra)
            .env("RUST_LOG", "warn");
        let log = socket.with_extension("log");
        let daemon = Daemon::spawn("stevedore-cri-proxy", cmd, &log, &socket.with_extension("pid"))?;
        let mut proxy = ProxyProcess { daemon, socket: socket.to_owned(), log };
        let start = Instant::now();
        while tokio::net::UnixStream::connect(socket).await.is_err() {
            if proxy.daemon.exited() {
                bail!("stevedore-cri-proxy exited at start:\n{}", procs::tail(&proxy.log, 20));
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("stevedore-cri-proxy did not listen on {} within 10 s", socket.display());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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

    /// Sends SIGTERM and waits (without blocking the async runtime, so this
    /// process's own clients can still answer the proxy's GOAWAY) for the exit status.
    ///
    /// # Errors
    /// The status cannot be read.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.daemon.stop(STOP_GRACE).await;
        self.daemon.status().context("stevedore-cri-proxy's exit status is unknown")
    }
}

impl Drop for ProxyProcess {
    /// A proxy not stopped with [`ProxyProcess::stop`] (a failing test) is killed.
    fn drop(&mut self) {
        self.daemon.stop_blocking(Duration::ZERO);
    }
}
