//! `stevedore-cri-proxy`: a CRI v1 proxy between kubelet and the container runtime.
//!
//! It serves CRI on a unix socket and forwards every call to the runtime's socket.
//! Calls are routed on their full HTTP/2 `:path`: the few methods a feature reads go
//! to typed [`proxy::Handler`]s, every other path (any service, any version, RPCs
//! newer than our proto) is forwarded as bytes without being decoded. The proxy fails
//! open: the caller only ever sees the runtime's answers, or `UNAVAILABLE` /
//! `DEADLINE_EXCEEDED` while the runtime cannot answer at all.

pub mod body;
pub mod config;
pub mod containers;
pub mod control;
pub mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod grpc;
pub mod lean;
pub mod metrics;
pub mod proxy;
pub mod pulls;
pub mod relay;
pub mod sanitize;
pub mod server;
pub mod typed;
pub mod upstream;

use std::{net::SocketAddr, sync::Arc};

use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

pub use config::{Config, Forwarding, Records};
pub use error::{Error, Result};

use crate::{
    containers::Containers,
    control::ControlService,
    metrics::Metrics,
    proxy::{Handlers, Proxy},
    pulls::{ProgressSource, Pulls, handler::PullImageHandler},
    upstream::Upstream,
};

/// How often container records are reconciled with the runtime.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);
/// How soon the first reconciliation is retried while the runtime is down.
const RECONCILE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// A proxy whose sockets are bound, ready to serve.
#[derive(Debug)]
pub struct Bound {
    config: Config,
    listener: UnixListener,
    control_listener: Option<UnixListener>,
    metrics_listener: Option<TcpListener>,
    handlers: Handlers,
    records: Option<(containers::store::Store, containers::store::Loaded)>,
}

/// Binds the CRI socket, the control socket and the metrics address.
///
/// # Errors
/// One cannot be bound (see [`server::bind`]).
pub async fn bind(config: Config) -> Result<Bound> {
    // The CRI socket last: once kubelet (or a test) can connect to it, the state
    // directory is read and the control socket and metrics port are ready.
    let records = match &config.records {
        Records::Durable(dir) => Some(
            containers::store::Store::open(dir)
                .map_err(|source| Error::StateDir { path: dir.clone(), source })?,
        ),
        Records::Memory => {
            Some((containers::store::Store::in_memory(), containers::store::Loaded::default()))
        }
        Records::Off => None,
    };
    let control_listener = match &config.control_socket {
        Some(path) => Some(control::bind(path).await?),
        None => None,
    };
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| Error::Metrics { addr, source })?),
        None => None,
    };
    let listener = server::bind(&config.listen).await?;
    Ok(Bound { config, listener, control_listener, metrics_listener, handlers: Handlers::default(), records })
}

impl Bound {
    /// The bound metrics address (useful when port 0 was asked for).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Adds typed handlers; every other path stays a byte-level forward.
    pub fn with_handlers(mut self, handlers: Handlers) -> Self {
        self.handlers.extend(handlers);
        self
    }

    /// Serves until `shutdown` is cancelled, then drains and removes the socket.
    ///
    /// # Errors
    /// None today once bound; the signature leaves room for failing duties.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let Bound { config, listener, control_listener, metrics_listener, mut handlers, records } = self;
        let metrics = Arc::new(Metrics::default());
        let upstream = Upstream::new(config.runtime_socket.clone(), config.connect_timeout, metrics.clone());
        let progress = ProgressSource::new(&config.runtime_socket, config.pull_progress_interval);
        let pulls = Arc::new(Pulls::new(Some(progress), metrics.clone()));
        handlers
            .entry(pulls::PULL_IMAGE_PATH)
            .or_insert_with(|| Arc::new(PullImageHandler::new(pulls.clone())) as Arc<dyn proxy::Handler>);
        // Without records, recreates still work the kubelet way (stop only).
        let (store, loaded, recording) = match records {
            Some((store, loaded)) => (store, loaded, true),
            None => (containers::store::Store::in_memory(), containers::store::Loaded::default(), false),
        };
        let containers = Arc::new(Containers::new(store, &config.runtime_socket, metrics.clone()));
        if recording {
            for (path, handler) in containers::handlers::handlers(&containers) {
                handlers.entry(path).or_insert(handler);
            }
        }
        if matches!(config.records, Records::Durable(_)) {
            let reconcile = containers::reconcile::run(
                containers.clone(),
                loaded.pending,
                RECONCILE_EVERY,
                RECONCILE_RETRY,
                shutdown.clone(),
            );
            tokio::spawn(reconcile.instrument(info_span!("records")));
        }
        let proxy = Proxy::new(upstream, metrics.clone(), handlers);
        let control = match (control_listener, &config.control_socket) {
            (Some(listener), Some(path)) => {
                let service = ControlService::new(pulls, proxy.clone(), containers.clone());
                let serve = control::serve(service, listener, path.clone(), shutdown.clone());
                Some(tokio::spawn(serve.instrument(info_span!("control_server"))))
            }
            _ => None,
        };
        let admin = metrics_listener.map(|l| {
            let metrics: Arc<dyn stevedore_proto::admin::Metrics> = metrics;
            tokio::spawn(
                stevedore_proto::admin::serve(l, metrics, shutdown.clone())
                    .instrument(info_span!("metrics_server")),
            )
        });
        info!(
            listen = %config.listen.display(),
            runtime.socket = %config.runtime_socket.display(),
            control.socket = ?config.control_socket,
            metrics.addr = ?config.metrics_addr,
            records = ?config.records,
            forwarding = ?config.forwarding,
            "serving CRI"
        );
        server::serve(proxy, listener, config.listen, shutdown, config.shutdown_grace, config.forwarding)
            .instrument(info_span!("cri_server"))
            .await;
        if let Some(control) = control
            && let Err(error) = control.await
        {
            tracing::error!(%error, "control API task failed");
        }
        if let Some(admin) = admin {
            // the admin server ends on the same token; a panic there is a bug worth seeing
            if let Err(error) = admin.await {
                tracing::error!(%error, "metrics server task failed");
            }
        }
        Ok(())
    }
}

/// Binds and serves until `shutdown`.
///
/// # Errors
/// See [`bind`].
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    bind(config).await?.run(shutdown).await
}
