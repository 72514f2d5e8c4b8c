//! `stevedore-agent`: the node agent. This release has no duties yet: it validates its
//! configuration, reports it, and waits for shutdown. Image pre-download, container
//! recreation and DaemonSet/BroadcastJob node work arrive with their issues.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::info;

/// The agent's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node this agent serves.
    pub node_name: String,
    /// The CRI socket (the proxy's) it will drive.
    pub cri_socket: PathBuf,
}

/// Runs until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) {
    info!(node.name = %config.node_name, cri.socket = %config.cri_socket.display(), "agent started; no duties are enabled in this release");
    shutdown.cancelled().await;
    info!("agent stopped");
}
