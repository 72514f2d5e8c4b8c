//! The CRI socket: bind (parent dir, stale socket, mode 0660), accept HTTP/2
//! connections, and on shutdown stop accepting, drain in-flight calls for a bounded
//! grace, and remove the socket.

use std::{
    convert::Infallible,
    io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use http_body_util::Either;
use hyper::{server::conn::http2, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::UnixListener, sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info, info_span, warn};

use crate::{
    config::Forwarding,
    error::{Error, Result},
    lean::LeanStream,
    proxy::Proxy,
    relay,
    sanitize::Sanitized,
    upstream::{CONNECTION_WINDOW, MAX_FRAME, SEND_BUFFER, STREAM_WINDOW},
};

/// The socket is root-equivalent: owner and group only.
const SOCKET_MODE: u32 = 0o660;

/// Binds the unix socket at `path`: creates its parent directory, removes a stale
/// socket left by an earlier run (but refuses to replace one a live process still
/// serves, or anything that is not a socket), binds, and sets mode 0660.
///
/// # Errors
/// Any step failing, with the path and the reason.
pub async fn bind(path: &Path) -> Result<UnixListener> {
    bind_with_mode(path, SOCKET_MODE).await
}

/// [`bind`] with the socket's file mode given.
///
/// # Errors
/// As [`bind`].
pub async fn bind_with_mode(path: &Path, mode: u32) -> Result<UnixListener> {
    let err = |source: io::Error| Error::Listen { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(Error::InUse(path.to_owned()));
            }
            info!(socket = %path.display(), "removing stale socket");
            std::fs::remove_file(path).map_err(err)?;
        }
        Ok(_) => {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

/// Serves CRI on `listener` until `shutdown`, then drains for at most `grace` and
/// removes the socket at `path`.
///
/// With [`Forwarding::Relay`], each caller connection is relayed to a runtime
/// connection of its own ([`relay`]); a caller that connects while the runtime cannot
/// be reached (or does not answer as an HTTP/2 server within a second) is served by
/// the terminating path instead, which answers its calls with `UNAVAILABLE` or
/// `DEADLINE_EXCEEDED` as long as the runtime is down.
pub async fn serve(
    proxy: Proxy,
    listener: UnixListener,
    path: PathBuf,
    shutdown: CancellationToken,
    grace: Duration,
    forwarding: Forwarding,
) {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_send_buf_size(SEND_BUFFER)
        .max_concurrent_streams(4096)
        // grpc-go's limit: callers' metadata may be large
        .max_header_list_size(16 << 20);
    // every connection's task: each ends its connection gracefully on `shutdown`
    let mut conns = JoinSet::new();
    // callers whose runtime connection could not be opened, for the terminating path
    let (fallback_tx, mut fallback_rx) = mpsc::unbounded_channel::<(u64, LeanStream)>();
    let mut next_conn: u64 = 0;
    loop {
        while conns.try_join_next().is_some() {}
        let stream = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some((id, stream)) = fallback_rx.recv() => {
                let until = Until { shutdown: shutdown.clone(), runtime_back: true };
                conns.spawn(terminate(builder.clone(), proxy.clone(), stream, until).instrument(conn_span(id)));
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // out of file descriptors and the like: back off, keep serving
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_conn += 1;
        let stream = match LeanStream::new(stream) {
            Ok(s) => s,
            Err(error) => {
                warn!(%error, "cannot register a connection");
                continue;
            }
        };
        match forwarding {
            Forwarding::Terminate => {
                let until = Until { shutdown: shutdown.clone(), runtime_back: false };
                conns.spawn(
                    terminate(builder.clone(), proxy.clone(), stream, until).instrument(conn_span(next_conn)),
                );
            }
            Forwarding::Relay => {
                let (proxy, fallback, shutdown) = (proxy.clone(), fallback_tx.clone(), shutdown.clone());
                let id = next_conn;
                conns.spawn(
                    async move {
                        let probe = probe_runtime(&proxy).await;
                        proxy.metrics().connect(probe.is_ok());
                        match probe {
                            Ok(runtime) => {
                                debug!("client connected; relaying");
                                relay::run(proxy, stream, runtime, shutdown).await;
                            }
                            Err(error) => {
                                debug!(%error, "the runtime cannot be relayed to; terminating this connection");
                                let _ = fallback.send((id, stream));
                            }
                        }
                    }
                    .instrument(conn_span(id)),
                );
            }
        }
    }
    drop(listener);
    // a caller whose runtime probe fails from now on is closed, not parked unserved
    drop(fallback_rx);
    if let Err(error) = std::fs::remove_file(&path) {
        warn!(%error, socket = %path.display(), "could not remove the socket");
    }
    let inflight = proxy.metrics().inflight();
    info!(inflight, grace = ?grace, "stopped accepting; draining in-flight calls");
    let drained = async {
        // every connection sees the same token: each sends GOAWAY and ends when its
        // calls have
        while conns.join_next().await.is_some() {}
    };
    match tokio::time::timeout(grace, drained).await {
        Ok(()) => info!("drained"),
        Err(_) => warn!(
            inflight = proxy.metrics().inflight(),
            "grace period over; abandoning calls still in flight"
        ),
    }
}

/// Opens a runtime connection for the relay (see [`relay::probe`]), within
/// [`PROBE_TIMEOUT`] and the connect timeout.
async fn probe_runtime(proxy: &Proxy) -> std::io::Result<relay::Runtime> {
    let upstream = proxy.upstream();
    relay::probe(upstream.path(), upstream.connect_timeout().min(PROBE_TIMEOUT)).await
}

/// How long a caller waits, when it connects, for the runtime to show it speaks
/// HTTP/2 before the terminating path takes the connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// When a connection on the terminating path ends gracefully.
#[derive(Debug)]
struct Until {
    shutdown: CancellationToken,
    /// Also once the runtime can be relayed to again (a caller that connected while
    /// it could not): the caller reconnects, to the relay.
    runtime_back: bool,
}

/// How often a connection on the terminating path checks whether the runtime can be
/// relayed to again.
const RUNTIME_BACK_CHECK: Duration = Duration::from_secs(5);

fn conn_span(id: u64) -> tracing::Span {
    info_span!("cri_conn", conn.id = id)
}

/// Serves a caller's connection on the terminating path: the proxy is its HTTP/2
/// server, and calls go to the runtime through the shared upstream connection.
async fn terminate(builder: http2::Builder<TokioExecutor>, proxy: Proxy, stream: LeanStream, until: Until) {
    let service = {
        let proxy = proxy.clone();
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let proxy = proxy.clone();
            let span = debug_span!("cri_call", cri.method = %req.uri().path());
            async move { Ok::<_, Infallible>(proxy.handle(req.map(Either::Left)).await) }.instrument(span)
        })
    };
    let conn = builder.serve_connection(TokioIo::new(Sanitized::new(stream)), service);
    tokio::pin!(conn);
    let runtime_back = async {
        if !until.runtime_back {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(RUNTIME_BACK_CHECK).await;
            if probe_runtime(&proxy).await.is_ok() {
                return;
            }
        }
    };
    tokio::pin!(runtime_back);
    debug!("client connected");
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(error) = ended {
                    debug!(%error, "client connection ended with an error");
                }
                return;
            }
            () = until.shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut runtime_back, if !closing => {
                debug!("the runtime can be relayed to again: the caller is asked to reconnect");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
