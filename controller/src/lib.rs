//! `stevedore-controller`: workload controllers and admission webhooks. This release
//! has none yet: it validates its configuration, reports it, and waits for shutdown.

pub mod certs;
pub mod conversion;
pub mod defaulting;
pub mod leader;
pub mod validation;
pub mod webhook;

use tokio_util::sync::CancellationToken;
use tracing::info;

/// The controller's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The port the webhook server will listen on.
    pub webhook_port: u16,
}

/// Runs until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) {
    info!(
        webhook.port = config.webhook_port,
        "controller started; no controllers or webhooks are enabled in this release"
    );
    shutdown.cancelled().await;
    info!("controller stopped");
}
