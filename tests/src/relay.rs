//! A byte relay between two unix sockets (`socat`, Debian's package), as a child
//! process: the least a proxy in its own process can add to a call, the baseline the
//! benchmark measures the proxy's hop against.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;

use crate::testbed::procs::{self, Daemon};

/// A running `socat UNIX-LISTEN:<socket>,fork UNIX-CONNECT:<target>`; killed on drop.
#[derive(Debug)]
pub struct RelayProcess {
    daemon: Daemon,
    socket: PathBuf,
}

impl RelayProcess {
    /// Starts relaying `socket` to `target`; waits until it accepts connections.
    ///
    /// # Errors
    /// socat is missing (the message says what to install) or does not listen in 10 s.
    pub async fn start(socket: &Path, target: &Path) -> anyhow::Result<Self> {
        let bin =
            procs::which("socat").context("the benchmark's byte relay needs socat: apt-get install socat")?;
        let _ = std::fs::remove_file(socket);
        let mut cmd = Command::new(bin);
        cmd.arg(format!("UNIX-LISTEN:{},fork", socket.display()))
            .arg(format!("UNIX-CONNECT:{}", target.display()));
        let log = socket.with_extension("log");
        let daemon = Daemon::spawn("socat", cmd, &log, &socket.with_extension("pid"))?;
        let mut relay = RelayProcess { daemon, socket: socket.to_owned() };
        let listen = format!("listen on {}", socket.display());
        relay
            .daemon
            .wait_ready(&log, Duration::from_secs(10), &listen, async || {
                tokio::net::UnixStream::connect(socket).await.is_ok()
            })
            .await?;
        Ok(relay)
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        // its forked children end with their connections
        self.daemon.stop_blocking(Duration::from_secs(2));
        let _ = std::fs::remove_file(&self.socket);
    }
}
