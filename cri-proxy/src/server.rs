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

use hyper::{server::conn::http2, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::graceful::GracefulShutdown,
};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info, info_span, warn};

use crate::{
    error::{Error, Result},
    lean::LeanStream,
    proxy::Proxy,
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
pub async fn serve(
    proxy: Proxy,
    listener: UnixListener,
    path: PathBuf,
    shutdown: CancellationToken,
    grace: Duration,
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
    let graceful = GracefulShutdown::new();
    let mut next_conn: u64 = 0;
    loop {
        let stream = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
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
        let proxy = proxy.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let proxy = proxy.clone();
            let span = debug_span!("cri_call", cri.method = %req.uri().path());
            async move { Ok::<_, Infallible>(proxy.handle(req).await) }.instrument(span)
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(Sanitized::new(stream)), service));
        tokio::spawn(
            async move {
                debug!("client connected");
                if let Err(error) = conn.await {
                    debug!(%error, "client connection ended with an error");
                }
            }
            .instrument(info_span!("cri_conn", conn.id = next_conn)),
        );
    }
    drop(listener);
    if let Err(error) = std::fs::remove_file(&path) {
        warn!(%error, socket = %path.display(), "could not remove the socket");
    }
    let inflight = proxy.metrics().inflight();
    info!(inflight, grace = ?grace, "stopped accepting; draining in-flight calls");
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => info!("drained"),
        Err(_) => warn!(
            inflight = proxy.metrics().inflight(),
            "grace period over; abandoning calls still in flight"
        ),
    }
}
