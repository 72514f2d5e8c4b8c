//! The proxy's errors, and the one place they become gRPC statuses.

use std::{io, path::PathBuf, time::Duration};

use tonic::{Code, Status};

/// Failures of the proxy itself. The runtime's own errors never appear here: they pass
/// through to the caller unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime socket could not be reached.
    #[error("runtime unavailable: connect {path}: {source}")]
    Connect {
        /// The runtime socket.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// HTTP/2 with the runtime failed (handshake, reset, connection lost).
    #[error("runtime unavailable: {0}")]
    Upstream(#[source] h2::Error),
    /// Connecting to the runtime took longer than allowed.
    #[error("runtime unavailable: no HTTP/2 handshake with {path} within {timeout:?}")]
    ConnectTimeout {
        /// The runtime socket.
        path: PathBuf,
        /// The bound that ran out.
        timeout: Duration,
    },
    /// The caller's deadline passed before the runtime answered.
    #[error("deadline of {0:?} exceeded before the runtime answered")]
    Deadline(Duration),
    /// A request could not be read, decoded or encoded by a typed handler.
    #[error("{0}")]
    BadMessage(String),
    /// Binding or preparing the listening socket failed.
    #[error("cannot serve on {path}: {source}")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Another live process already serves the socket.
    #[error("{0} is already served by a live process; refusing to replace it")]
    InUse(PathBuf),
    /// The state directory could not be opened.
    #[error("cannot use the state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The metrics endpoint could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Results of the proxy's library code.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::Connect { .. } | Error::Upstream(_) | Error::ConnectTimeout { .. } => Code::Unavailable,
            Error::Deadline(_) => Code::DeadlineExceeded,
            Error::BadMessage(_) => Code::Internal,
            Error::Listen { .. } | Error::InUse(_) | Error::Metrics { .. } | Error::StateDir { .. } => {
                Code::Internal
            }
        };
        Status::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_failures_map_to_the_codes_grpc_clients_retry_on() {
        let connect =
            Error::Connect { path: "/x.sock".into(), source: io::Error::from(io::ErrorKind::NotFound) };
        assert_eq!(Status::from(connect).code(), Code::Unavailable);
        let deadline = Error::Deadline(Duration::from_millis(5));
        assert_eq!(Status::from(deadline).code(), Code::DeadlineExceeded);
    }
}
