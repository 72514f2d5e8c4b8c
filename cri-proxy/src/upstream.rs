//! The connection to the runtime: one HTTP/2 connection over its unix socket, shared
//! by all calls, re-established on demand when the runtime restarts.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use http::{Request, Response};
use hyper::{body::Incoming, client::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    body::RequestBody,
    error::{Error, Result},
    metrics::Metrics,
};

/// Flow-control windows: large enough that a multi-megabyte `ListImages` answer
/// crosses the proxy without waiting for window updates.
pub(crate) const STREAM_WINDOW: u32 = 8 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 32 << 20;
pub(crate) const MAX_FRAME: u32 = 1 << 20;
pub(crate) const SEND_BUFFER: usize = 1 << 20;

type Sender = http2::SendRequest<RequestBody>;

/// The runtime side of the proxy.
#[derive(Debug)]
pub struct Upstream {
    path: PathBuf,
    connect_timeout: Duration,
    current: std::sync::Mutex<Option<Sender>>,
    connecting: tokio::sync::Mutex<()>,
    /// Whether the last connection attempt failed, so an outage is logged once.
    down: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// An upstream for the runtime socket at `path`; nothing connects until the first
    /// call, so the proxy starts even while the runtime is down.
    pub fn new(path: PathBuf, connect_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            path,
            connect_timeout,
            current: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            down: AtomicBool::new(false),
            metrics,
        }
    }

    /// Sends `req` to the runtime. A request that could not even be sent because the
    /// connection had just closed (the runtime restarted) is retried once on a fresh
    /// connection; anything else is the caller's answer.
    pub async fn send(&self, req: Request<RequestBody>) -> Result<Response<Incoming>> {
        let mut sender = self.sender().await?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(mut err) => match err.take_message() {
                Some(req) => {
                    debug!(error = %err.error(), "runtime connection closed before the call was sent; reconnecting");
                    self.forget(&sender);
                    let mut sender = self.sender().await?;
                    sender.send_request(req).await.map_err(Error::Upstream)
                }
                None => Err(Error::Upstream(err.into_error())),
            },
        }
    }

    fn cached(&self) -> Option<Sender> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    fn forget(&self, stale: &Sender) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|s| s.is_closed() || stale.is_closed()) {
            *current = None;
        }
    }

    async fn sender(&self) -> Result<Sender> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        // one caller connects; the others wait for it and take its connection
        let _connecting = self.connecting.lock().await;
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let result = tokio::time::timeout(self.connect_timeout, self.connect()).await;
        let sender = match result {
            Ok(r) => r,
            Err(_) => Err(Error::ConnectTimeout { path: self.path.clone(), timeout: self.connect_timeout }),
        };
        self.metrics.connect(sender.is_ok());
        match &sender {
            Err(error) if !self.down.swap(true, Relaxed) => {
                warn!(%error, "runtime unavailable; calls fail with UNAVAILABLE until it is back");
            }
            Ok(_) if self.down.swap(false, Relaxed) => info!("runtime is back"),
            _ => {}
        }
        let sender = sender?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    async fn connect(&self) -> Result<Sender> {
        let io = UnixStream::connect(&self.path)
            .await
            .map_err(|source| Error::Connect { path: self.path.clone(), source })?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_send_buf_size(SEND_BUFFER)
            .handshake(TokioIo::new(io))
            .await
            .map_err(Error::Upstream)?;
        info!(runtime.socket = %self.path.display(), "connected to the runtime");
        let span = info_span!("runtime_connection", runtime.socket = %self.path.display());
        tokio::spawn(
            async move {
                match conn.await {
                    Ok(()) => info!("runtime closed the connection"),
                    Err(error) => warn!(%error, "runtime connection failed"),
                }
            }
            .instrument(span),
        );
        Ok(sender)
    }
}
