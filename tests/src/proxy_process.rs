//! The real `stevedore-cri-proxy` binary, run as a child process.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// A running proxy; stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    socket: PathBuf,
}

/// The proxy binary built next to the running executable (same profile).
///
/// # Errors
/// When it has not been built.
pub fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/<bin>, or target/<profile>/deps/<test> for test binaries
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("stevedore-cri-proxy");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "stevedore-cri-proxy is not built next to {}: run `cargo build --workspace --bins` (same profile) first",
        exe.display()
    )
}

impl ProxyProcess {
    /// Starts the proxy on `socket`, forwarding to `runtime`; waits until it accepts.
    ///
    /// # Errors
    /// The binary is missing, fails to start, or does not listen within 10 s.
    pub async fn start(socket: &Path, runtime: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let bin = binary()?;
        let child = Command::new(&bin)
            .arg("--listen")
            .arg(socket)
            .arg("--runtime-endpoint")
            .arg(format!("unix://{}", runtime.display()))
            .args(["--metrics-addr", "none"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut proxy = ProxyProcess { child, socket: socket.to_owned() };
        let start = Instant::now();
        while tokio::net::UnixStream::connect(socket).await.is_err() {
            if let Some(status) = proxy.child.try_wait()? {
                bail!("stevedore-cri-proxy exited at start: {status}");
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
        self.child.id()
    }

    /// Sends SIGTERM and waits (without blocking the async runtime, so this
    /// process's own clients can still answer the proxy's GOAWAY) for the exit status.
    ///
    /// # Errors
    /// The signal cannot be sent or the process does not exit within 15 s.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.signal_term()?;
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                bail!("stevedore-cri-proxy ignored SIGTERM for 15 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn signal_term(&mut self) -> anyhow::Result<()> {
        use nix::{sys::signal, unistd::Pid};
        if self.child.try_wait()?.is_none() {
            let pid = Pid::from_raw(i32::try_from(self.child.id())?);
            signal::kill(pid, signal::Signal::SIGTERM)?;
        }
        Ok(())
    }
}

impl Drop for ProxyProcess {
    /// A proxy not stopped with [`ProxyProcess::stop`] (a failing test) is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
