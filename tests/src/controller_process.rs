//! The real `stevedore-controller` binary, run against a kubeconfig (usually the
//! simulated API server's) with its webhook server on a loopback port.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::testbed::procs::{self, Daemon};

/// How long the controller gets to release its Lease and stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running controller; killed when dropped.
#[derive(Debug)]
pub struct ControllerProcess {
    daemon: Daemon,
    listen: SocketAddr,
    log: PathBuf,
}

impl ControllerProcess {
    /// Starts the controller as `identity` with `kubeconfig`, serving webhooks on
    /// `listen`, logs and pid file under `dir`; returns once the webhook port accepts
    /// connections (the certificate is in hand by then).
    ///
    /// # Errors
    /// The binary is missing, exits, or does not listen within 30 s.
    pub async fn start(
        dir: &Path,
        kubeconfig: &Path,
        listen: SocketAddr,
        identity: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let bin = crate::bins::binary("stevedore-controller")?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--webhook-listen")
            .arg(listen.to_string())
            .args(["--identity", identity])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info");
        let log = dir.join(format!("controller-{identity}.log"));
        let daemon = Daemon::spawn(
            "stevedore-controller",
            cmd,
            &log,
            &dir.join(format!("controller-{identity}.pid")),
        )?;
        let mut controller = Self { daemon, listen, log };
        let what = format!("listen on {listen}");
        controller
            .daemon
            .wait_ready(&controller.log, Duration::from_secs(30), &what, async || {
                tokio::net::TcpStream::connect(listen).await.is_ok()
            })
            .await?;
        Ok(controller)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Where its webhook server listens.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        procs::tail(&self.log, lines)
    }

    /// Sends SIGTERM and waits for the exit status.
    ///
    /// # Errors
    /// The status cannot be read.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.daemon.stop_status(STOP_GRACE).await
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.daemon.stop_blocking(Duration::ZERO);
    }
}

/// A free loopback port for a webhook server.
///
/// # Errors
/// No port could be bound.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], procs::free_port()?)))
}
