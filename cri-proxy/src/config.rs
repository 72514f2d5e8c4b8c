//! The proxy's validated configuration.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything `run` needs; built by `main` from flags and validated there.
#[derive(Clone, Debug)]
pub struct Config {
    /// The unix socket kubelet connects to.
    pub listen: PathBuf,
    /// The runtime's unix socket (containerd's CRI).
    pub runtime_socket: PathBuf,
    /// Where `/metrics` and `/healthz` are served; `None` turns the endpoint off.
    pub metrics_addr: Option<SocketAddr>,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Bound on connecting to the runtime when the caller set no deadline.
    pub connect_timeout: Duration,
    /// The control API's socket (mode 0600); `None` turns the control API off.
    pub control_socket: Option<PathBuf>,
    /// How often a pull's progress is read from the runtime's content store.
    pub pull_progress_interval: Duration,
    /// What the proxy keeps of the containers kubelet creates (for recreates).
    pub records: Records,
    /// How calls without a typed handler cross the proxy.
    pub forwarding: Forwarding,
}

/// How calls without a typed handler cross the proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Forwarding {
    /// HTTP/2 frames relayed between the caller's connection and a runtime connection
    /// of its own; only typed paths' streams are terminated (`relay`).
    #[default]
    Relay,
    /// Every call terminated on both sides: the proxy is the caller's HTTP/2 server
    /// and a client of the runtime's, as before the relay (kept to compare).
    Terminate,
}

/// Where container records live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Records {
    /// Durably, under this state directory (`containers/`, `pending/`, `journal/`).
    Durable(PathBuf),
    /// In memory only: lost when the proxy restarts.
    Memory,
    /// Not at all: container calls are forwarded as bytes and every recreate is the
    /// kubelet way (stop only).
    Off,
}

impl Config {
    /// The defaults of a node install: kubelet talks to `/run/stevedore/cri.sock`, the
    /// proxy to containerd's default socket.
    pub fn node_defaults() -> Self {
        Self {
            listen: PathBuf::from("/run/stevedore/cri.sock"),
            runtime_socket: PathBuf::from("/run/containerd/containerd.sock"),
            metrics_addr: None,
            shutdown_grace: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            control_socket: Some(PathBuf::from("/run/stevedore/control.sock")),
            pull_progress_interval: Duration::from_millis(250),
            records: Records::Durable(PathBuf::from("/var/lib/stevedore/cri-proxy")),
            forwarding: Forwarding::Relay,
        }
    }
}

/// Turns a CRI endpoint as kubelet writes it (`unix:///path` or a plain absolute path)
/// into the socket path.
///
/// # Errors
/// Anything but a unix socket path (kubelet on Linux speaks CRI only over unix sockets).
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf, EndpointError> {
    let path = match endpoint.split_once("://") {
        Some(("unix", rest)) => rest,
        Some((scheme, _)) => return Err(EndpointError::Scheme(scheme.to_owned())),
        None => endpoint,
    };
    if !path.starts_with('/') {
        return Err(EndpointError::NotAbsolute(endpoint.to_owned()));
    }
    Ok(PathBuf::from(path))
}

/// Why an endpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// Only `unix://` is supported.
    #[error("endpoint scheme {0:?} is not supported: use unix:///path/to/socket")]
    Scheme(String),
    /// A relative path would depend on the working directory.
    #[error("endpoint {0:?} is not an absolute socket path: use unix:///path/to/socket")]
    NotAbsolute(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_kubelet_writes_them() {
        assert_eq!(
            parse_endpoint("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(parse_endpoint("/tmp/x.sock").unwrap(), PathBuf::from("/tmp/x.sock"));
        assert_eq!(parse_endpoint("tcp://127.0.0.1:1").unwrap_err(), EndpointError::Scheme("tcp".into()));
        assert!(matches!(parse_endpoint("unix://relative.sock"), Err(EndpointError::NotAbsolute(_))));
    }
}
