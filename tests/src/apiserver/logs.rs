//! `pods/log`: as kube-apiserver does, the container is chosen (or the request refused
//! with kube-apiserver's message), the pod's Node is looked up, and the kubelet there
//! is asked for the log at its `daemonEndpoints` port on the Node's InternalIP; the
//! answer is streamed back. (kube-apiserver speaks HTTPS to kubelet; the simulated
//! kubelet answers plain HTTP on loopback.)

use std::net::SocketAddr;

use http::{Response, header};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tracing::{Instrument as _, debug};

use super::{
    Status,
    handlers::namespace,
    resources::ResourceInfo,
    server::{Body, Request, Shared},
};

/// The query parameters passed on to kubelet.
const PASSED: &[&str] = &["follow", "previous", "timestamps", "tailLines", "limitBytes", "sinceSeconds"];

fn names(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(String::from)).collect()
}

/// The container a log request is for.
fn container(pod: &Value, asked: Option<&str>) -> Result<String, Status> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers = names(&pod["spec"]["containers"]);
    let inits = names(&pod["spec"]["initContainers"]);
    if let Some(c) = asked {
        if containers.iter().chain(&inits).any(|n| n == c) {
            return Ok(c.to_string());
        }
        return Err(Status::bad_request(format!("container {c} is not valid for pod {name}")));
    }
    if let Some(d) = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str() {
        return Ok(d.to_string());
    }
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        many => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                many.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", inits.join(" ")));
            }
            Err(Status::bad_request(msg))
        }
    }
}

/// Where the pod's kubelet listens.
fn kubelet_of(node: &Value) -> Option<SocketAddr> {
    let ip = node["status"]["addresses"].as_array()?.iter().find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_i64()?;
    format!("{ip}:{port}").parse().ok()
}

/// `GET pods/{name}/log`.
///
/// # Errors
/// 404 for a missing pod, 400 for a bad container or an unscheduled pod, 500 when the
/// kubelet cannot be reached.
pub async fn pod_log(shared: &Shared, res: &ResourceInfo, req: Request) -> Result<Response<Body>, Status> {
    let ns = namespace(res, &req);
    let name = req.target.name.clone().unwrap_or_default();
    let (pod, node) = {
        let state = shared.lock();
        let pod = state
            .get(&res.key(), &ns, &name)
            .cloned()
            .ok_or_else(|| Status::not_found(res.qualified(), &name))?;
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
        let node = state.get("/nodes", "", &node_name).cloned();
        (pod, node)
    };
    let c = container(&pod, req.query.get("container"))?;
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(Status::bad_request(format!("pod {name} does not have a host assigned")));
    }
    let addr = node
        .as_ref()
        .and_then(kubelet_of)
        .ok_or_else(|| Status::internal(format!("node {node_name} has no kubelet address")))?;
    let query: Vec<String> =
        PASSED.iter().filter_map(|k| req.query.get(k).map(|v| format!("{k}={v}"))).collect();
    let path = format!("/containerLogs/{ns}/{name}/{c}?{}", query.join("&"));
    fetch(addr, &path).await
}

async fn fetch(addr: SocketAddr, path: &str) -> Result<Response<Body>, Status> {
    let unreachable = |e: String| Status::internal(format!("error dialing backend: {e}"));
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(
        async move {
            if let Err(error) = conn.await {
                debug!(%error, "kubelet log connection ended");
            }
        }
        .instrument(tracing::debug_span!("kubelet_log_proxy")),
    );
    let request = http::Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| Status::internal(e.to_string()))?;
    let resp = sender.send_request(request).await.map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(Status::new(status.as_u16(), "BadRequest", String::from_utf8_lossy(&body).into_owned()));
    }
    // Forwarded frame by frame; a kubelet that goes away mid-stream ends the log.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>(16);
    let mut incoming = resp.into_body();
    tokio::spawn(
        async move {
            while let Some(Ok(frame)) = incoming.frame().await {
                if frame.is_data() && tx.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
        }
        .instrument(tracing::debug_span!("kubelet_log_stream")),
    );
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let mut out = Response::new(body);
    out.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn container_choice() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                                              "initContainers": [{"name": "i"}]}});
        assert_eq!(
            container(&pod, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(container(&pod, Some("i")).unwrap(), "i");
        assert_eq!(container(&pod, Some("z")).unwrap_err().message, "container z is not valid for pod p");
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container(&one, None).unwrap(), "a");
        let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                     "daemonEndpoints": {"kubeletEndpoint": {"Port": 4321}}}});
        assert_eq!(kubelet_of(&node), Some("127.0.0.1:4321".parse().unwrap()));
    }
}
