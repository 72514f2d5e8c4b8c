//! gRPC channels over unix sockets (CRI, the proxy's control API).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// The message size limit (both directions) CRI clients use, as kubelet's.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

fn endpoint() -> Endpoint {
    // The URI is a placeholder: the connector ignores it.
    Endpoint::from_static("http://[::]:50051")
}

fn connector(
    path: PathBuf,
) -> impl tower::Service<
    http::Uri,
    Response = TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Future<Output = std::io::Result<TokioIo<tokio::net::UnixStream>>> + Send,
> + Clone
+ Send {
    tower::service_fn(move |_| {
        let p = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?)) }
    })
}

/// A channel to the socket at `path`, connected now.
///
/// # Errors
/// The socket cannot be reached.
pub async fn connect(path: &Path) -> Result<Channel, tonic::transport::Error> {
    endpoint().connect_with_connector(connector(path.to_path_buf())).await
}

/// A channel to the socket at `path` that connects on first use and reconnects after
/// the other side restarts: for daemons that start before the socket exists.
pub fn connect_lazy(path: &Path) -> Channel {
    endpoint().connect_with_connector_lazy(connector(path.to_path_buf()))
}

/// The socket path of a CRI endpoint given as a path or a `unix://` URL.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_as_paths() {
        assert_eq!(socket_path("unix:///run/stevedore/cri.sock"), PathBuf::from("/run/stevedore/cri.sock"));
        assert_eq!(socket_path("/run/x.sock"), PathBuf::from("/run/x.sock"));
    }
}
