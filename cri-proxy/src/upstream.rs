//! The connection to the runtime: one HTTP/2 connection over its unix socket, shared
//! by all calls, re-established on demand when the runtime restarts.
//!
//! It speaks HTTP/2 with the `h2` crate directly rather than through hyper's client:
//! h2 lets a request's headers and its message leave in one write when the message
//! is already at hand (hyper pipes the body from a separate task, which splits them
//! into two writes and costs the runtime an extra wake-up on every call).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::FutureExt as _;
use h2::{RecvStream, SendStream, client};
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt as _;
use tracing::{Instrument, debug, debug_span, info, info_span, warn};

use crate::{
    body::RequestBody,
    error::{Error, Result},
    lean::LeanStream,
    metrics::Metrics,
};

/// Flow-control windows: large enough that a multi-megabyte `ListImages` answer
/// crosses the proxy without waiting for window updates.
pub(crate) const STREAM_WINDOW: u32 = 8 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 32 << 20;
pub(crate) const MAX_FRAME: u32 = 1 << 20;
pub(crate) const SEND_BUFFER: usize = 1 << 20;

/// A live connection: the request handle, whether its task has ended, and whether
/// the runtime has answered a call on it.
#[derive(Clone, Debug)]
struct Conn {
    send: client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
    answered: Arc<AtomicBool>,
}

/// The runtime side of the proxy.
#[derive(Debug)]
pub struct Upstream {
    path: PathBuf,
    connect_timeout: Duration,
    current: std::sync::Mutex<Option<Conn>>,
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

    /// The runtime's socket.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The bound on connecting to the runtime.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Sends `req` to the runtime and returns its response head with the body still
    /// streaming. A request that could not be opened because the connection had just
    /// closed (the runtime restarted) is retried once on a fresh connection; once a
    /// stream is open, its outcome is the caller's answer.
    ///
    /// `deadline` bounds the call while the connection has not yet answered a call
    /// (the runtime is down, restarting, or accepts but never speaks HTTP/2): then
    /// the call fails with [`Error::Deadline`]. On a connection that has answered,
    /// the deadline travels with the call (`grpc-timeout`) and the runtime enforces
    /// it, as does the caller; the proxy arms no timer of its own then, which would
    /// cost every call a wake-up.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        deadline: Option<Duration>,
    ) -> Result<Response<RecvStream>> {
        if let Some(send) = self.ready_now() {
            return dispatch(send, req).await;
        }
        let attempt = async {
            let (send, answered) = self.open().await?;
            let resp = dispatch(send, req).await?;
            answered.store(true, Relaxed);
            Ok(resp)
        };
        match deadline {
            Some(d) => tokio::time::timeout(d, attempt).await.unwrap_or_else(|_| {
                debug!(deadline = ?d, "deadline passed before the runtime answered");
                Err(Error::Deadline(d))
            }),
            None => attempt.await,
        }
    }

    /// The live connection's request handle, if it has answered a call and can
    /// take a stream right now.
    fn ready_now(&self) -> Option<client::SendRequest<Bytes>> {
        let conn = self.cached().filter(|c| c.answered.load(Relaxed))?;
        conn.send.ready().now_or_never()?.ok()
    }

    /// A connection ready for a stream (the live one, or a new one) and its
    /// "has answered" flag.
    async fn open(&self) -> Result<(client::SendRequest<Bytes>, Arc<AtomicBool>)> {
        let conn = self.conn().await?;
        match conn.send.clone().ready().await {
            Ok(send) => Ok((send, conn.answered)),
            Err(error) => {
                debug!(%error, "runtime connection closed before the call was sent; reconnecting");
                self.forget(&conn);
                let conn = self.conn().await?;
                Ok((conn.send.ready().await.map_err(Error::Upstream)?, conn.answered))
            }
        }
    }

    fn cached(&self) -> Option<Conn> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|c| !c.closed.load(Relaxed)).cloned()
    }

    fn forget(&self, stale: &Conn) {
        stale.closed.store(true, Relaxed);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| c.closed.load(Relaxed)) {
            *current = None;
        }
    }

    async fn conn(&self) -> Result<Conn> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        // one caller connects; the others wait for it and take its connection
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let conn = match tokio::time::timeout(self.connect_timeout, self.connect()).await {
            Ok(r) => r,
            Err(_) => Err(Error::ConnectTimeout { path: self.path.clone(), timeout: self.connect_timeout }),
        };
        self.metrics.connect(conn.is_ok());
        match &conn {
            Err(error) if !self.down.swap(true, Relaxed) => {
                warn!(%error, "runtime unavailable; calls fail with UNAVAILABLE until it is back");
            }
            Ok(_) if self.down.swap(false, Relaxed) => info!("runtime is back"),
            _ => {}
        }
        let conn = conn?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Conn> {
        let io = LeanStream::connect(&self.path)
            .await
            .map_err(|source| Error::Connect { path: self.path.clone(), source })?;
        let (send, connection) = client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_send_buffer_size(SEND_BUFFER)
            .enable_push(false)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(Error::Upstream)?;
        info!(runtime.socket = %self.path.display(), "connected to the runtime");
        let closed = Arc::new(AtomicBool::new(false));
        let span = info_span!("runtime_connection", runtime.socket = %self.path.display());
        let flag = closed.clone();
        tokio::spawn(
            async move {
                match connection.await {
                    Ok(()) => info!("runtime closed the connection"),
                    Err(error) => warn!(%error, "runtime connection failed"),
                }
                flag.store(true, Relaxed);
            }
            .instrument(span),
        );
        Ok(Conn { send, closed, answered: Arc::new(AtomicBool::new(false)) })
    }
}

/// Opens the stream and waits for the response head.
async fn dispatch(
    mut send: client::SendRequest<Bytes>,
    req: Request<RequestBody>,
) -> Result<Response<RecvStream>> {
    let (parts, body) = req.into_parts();
    let eos = body.is_end_stream();
    let (response, stream) =
        send.send_request(Request::from_parts(parts, ()), eos).map_err(Error::Upstream)?;
    if !eos {
        pipe(body, stream);
    }
    response.await.map_err(Error::Upstream)
}

/// Sends the request body upstream. Frames already received (a unary call's one
/// message, nearly always) are queued at once, so they leave in the same write as
/// the headers; anything still to come is piped from a task of its own.
fn pipe(mut body: RequestBody, mut stream: SendStream<Bytes>) {
    loop {
        match body.frame().now_or_never() {
            Some(Some(Ok(frame))) => {
                if !send_frame(&mut stream, frame, body.is_end_stream()) {
                    return;
                }
                if body.is_end_stream() {
                    return;
                }
            }
            Some(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Some(Err(error))) => {
                debug!(%error, "caller's request stream failed; resetting the runtime's");
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            None => break,
        }
    }
    tokio::spawn(
        async move {
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if !send_frame(&mut stream, frame, body.is_end_stream()) || body.is_end_stream() {
                            return;
                        }
                    }
                    Err(error) => {
                        debug!(%error, "caller's request stream failed; resetting the runtime's");
                        stream.send_reset(h2::Reason::CANCEL);
                        return;
                    }
                }
            }
            let _ = stream.send_data(Bytes::new(), true);
        }
        .instrument(debug_span!("request_pipe")),
    );
}

/// Queues one frame; false when the stream is gone.
fn send_frame(stream: &mut SendStream<Bytes>, frame: http_body::Frame<Bytes>, eos: bool) -> bool {
    let sent = match frame.into_data() {
        Ok(data) => stream.send_data(data, eos),
        Err(frame) => match frame.into_trailers() {
            Ok(trailers) => stream.send_trailers(trailers),
            Err(_) => Ok(()),
        },
    };
    sent.is_ok()
}
