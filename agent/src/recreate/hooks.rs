//! Lifecycle hooks as kubelet runs them: `exec` through CRI `ExecSync` in the
//! container, `httpGet` to the pod's IP (or the handler's host) on a port given by
//! number or by the container's port name, `tcpSocket` as a connection that must
//! open, `sleep` as a pause. Each is bounded by a timeout. As with kubelet, only a
//! transport failure fails an `httpGet`; the response's status is logged.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stevedore_proto::crd::container_recreate_request::ProbeHandler;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tracing::debug;

use crate::runtime::Containers;

/// Where a hook runs.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The container (bare runtime id) for `exec`.
    pub container_id: &'a str,
    /// The pod's IP, the default host of `httpGet` and `tcpSocket`.
    pub pod_ip: &'a str,
    /// The container's ports, to resolve named ports.
    pub ports: &'a [ContainerPort],
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The handler names no action.
    #[error("the hook has no exec, httpGet or tcpSocket action")]
    Empty,
    /// The command could not be run or exited non-zero.
    #[error("exec {cmd:?}: {reason}")]
    Exec {
        /// The command.
        cmd: Vec<String>,
        /// What happened.
        reason: String,
    },
    /// A named port the container does not declare.
    #[error("port {0:?} is not a port name of the container")]
    Port(String),
    /// The host or port is not usable.
    #[error("{0}")]
    Address(String),
    /// `httpGet` with `scheme: HTTPS` (not supported by the agent).
    #[error("httpGet scheme {0:?} is not supported (HTTP only)")]
    Scheme(String),
    /// The connection or request failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// httpGet or tcpSocket.
        what: &'static str,
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It took longer than its timeout.
    #[error("timed out after {0}s")]
    Timeout(u64),
}

/// Resolves a port given by number or name.
pub fn port(p: &IntOrString, ports: &[ContainerPort]) -> Result<u16, Error> {
    let n = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ports
                .iter()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()))
                .map(|cp| cp.container_port)
                .ok_or_else(|| Error::Port(s.clone()))?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Address(format!("port {n} is out of range")))
}

/// Runs a preStop hook (the request's copy of the container's preStop).
pub async fn run_pre_stop(
    rt: &dyn Containers,
    handler: &ProbeHandler,
    target: Target<'_>,
    timeout: Duration,
) -> Result<(), Error> {
    let run = async {
        if let Some(exec) = &handler.exec {
            return exec_hook(rt, exec.command.clone().unwrap_or_default(), target, timeout).await;
        }
        if let Some(h) = &handler.http_get {
            return http_get(h, target).await;
        }
        if let Some(t) = &handler.tcp_socket {
            let host = t.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.to_owned());
            let addr = address(&host, port(&t.port, target.ports)?)?;
            TcpStream::connect(&addr).await.map_err(|source| Error::Io {
                what: "tcpSocket",
                addr,
                source,
            })?;
            return Ok(());
        }
        Err(Error::Empty)
    };
    tokio::time::timeout(timeout, run).await.map_err(|_| Error::Timeout(timeout.as_secs()))?
}

/// Runs a postStart hook (the pod spec's).
pub async fn run_post_start(
    rt: &dyn Containers,
    handler: &LifecycleHandler,
    target: Target<'_>,
    timeout: Duration,
) -> Result<(), Error> {
    if let Some(s) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(u64::try_from(s.seconds).unwrap_or(0))).await;
        return Ok(());
    }
    run_pre_stop(rt, &ProbeHandler::from(handler.clone()), target, timeout).await
}

async fn exec_hook(
    rt: &dyn Containers,
    cmd: Vec<String>,
    target: Target<'_>,
    timeout: Duration,
) -> Result<(), Error> {
    if cmd.is_empty() {
        return Err(Error::Exec { cmd, reason: "the command is empty".into() });
    }
    let out = rt
        .exec(target.container_id.to_owned(), cmd.clone(), timeout)
        .await
        .map_err(|s| Error::Exec { cmd: cmd.clone(), reason: s.message().to_owned() })?;
    if out.exit_code != 0 {
        let text = String::from_utf8_lossy(if out.stderr.is_empty() { &out.stdout } else { &out.stderr });
        let text: String = text.trim().chars().take(200).collect();
        return Err(Error::Exec { cmd, reason: format!("exited with {}: {text}", out.exit_code) });
    }
    Ok(())
}

fn address(host: &str, port: u16) -> Result<String, Error> {
    if host.is_empty() {
        return Err(Error::Address("no host: the pod has no IP and the hook names none".into()));
    }
    Ok(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

async fn http_get(h: &k8s_openapi::api::core::v1::HTTPGetAction, target: Target<'_>) -> Result<(), Error> {
    let scheme = h.scheme.clone().unwrap_or_else(|| "HTTP".into());
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Error::Scheme(scheme));
    }
    let host = h.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.to_owned());
    let addr = address(&host, port(&h.port, target.ports)?)?;
    let path = h.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    let io = |source| Error::Io { what: "httpGet", addr: addr.clone(), source };
    let mut req =
        format!("GET {path} HTTP/1.1\r\nUser-Agent: kube-lifecycle/stevedore-agent\r\nConnection: close\r\n");
    let mut has_host = false;
    for hd in h.http_headers.iter().flatten() {
        has_host |= hd.name.eq_ignore_ascii_case("host");
        req.push_str(&format!("{}: {}\r\n", hd.name, hd.value));
    }
    if !has_host {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = TcpStream::connect(&addr).await.map_err(io)?;
    s.write_all(req.as_bytes()).await.map_err(io)?;
    let mut head = vec![0u8; 256];
    let n = s.read(&mut head).await.map_err(io)?;
    let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_owned();
    debug!(hook.addr = %addr, hook.path = %path, hook.response = %line, "httpGet hook answered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_by_number_and_name() {
        let ports =
            vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }];
        assert_eq!(port(&IntOrString::Int(80), &ports).unwrap(), 80);
        assert_eq!(port(&IntOrString::String("http".into()), &ports).unwrap(), 8080);
        assert_eq!(port(&IntOrString::String("9090".into()), &ports).unwrap(), 9090);
        assert!(
            matches!(port(&IntOrString::String("admin".into()), &ports), Err(Error::Port(p)) if p == "admin")
        );
        assert!(port(&IntOrString::Int(0), &ports).is_err());
    }

    /// Answers every exec with one exit code.
    struct ExitWith(i32);

    impl Containers for ExitWith {
        fn exec(
            &self,
            _id: String,
            _cmd: Vec<String>,
            _t: Duration,
        ) -> crate::images::worker::BoxFuture<'_, Result<crate::runtime::ExecOutput, tonic::Status>> {
            let out = crate::runtime::ExecOutput {
                exit_code: self.0,
                stdout: Vec::new(),
                stderr: b"no such file\n".to_vec(),
            };
            Box::pin(async move { Ok(out) })
        }
        fn stop(
            &self,
            _id: String,
            _grace: i64,
        ) -> crate::images::worker::BoxFuture<'_, Result<(), tonic::Status>> {
            Box::pin(async { Ok(()) })
        }
        fn recreate(
            &self,
            _id: String,
            _grace: i64,
        ) -> crate::images::worker::BoxFuture<
            '_,
            Result<stevedore_proto::control::RecreateContainerResponse, tonic::Status>,
        > {
            Box::pin(async { Err(tonic::Status::unimplemented("no")) })
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn exec_hooks_fail_on_a_non_zero_exit_with_its_output() {
        let handler = ProbeHandler {
            exec: Some(k8s_openapi::api::core::v1::ExecAction {
                command: Some(vec!["cat".into(), "/x".into()]),
            }),
            ..Default::default()
        };
        let target = Target { container_id: "c", pod_ip: "", ports: &[] };
        run_pre_stop(&ExitWith(0), &handler, target, Duration::from_secs(1)).await.unwrap();
        let e = run_pre_stop(&ExitWith(1), &handler, target, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.to_string(), "exec [\"cat\", \"/x\"]: exited with 1: no such file");
        let empty = ProbeHandler::default();
        assert!(matches!(
            run_pre_stop(&ExitWith(0), &empty, target, Duration::from_secs(1)).await,
            Err(Error::Empty)
        ));
    }

    #[tokio::test]
    async fn http_get_reaches_the_pod_ip_on_a_named_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let ports = vec![ContainerPort {
            name: Some("web".into()),
            container_port: i32::from(p),
            ..Default::default()
        }];
        let h = k8s_openapi::api::core::v1::HTTPGetAction {
            path: Some("/quit".into()),
            port: IntOrString::String("web".into()),
            ..Default::default()
        };
        let target = Target { container_id: "c", pod_ip: "127.0.0.1", ports: &ports };
        http_get(&h, target).await.unwrap();
        assert!(server.await.unwrap().starts_with("GET /quit HTTP/1.1\r\n"));
    }
}
