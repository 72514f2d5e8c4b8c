//! The router: every call is routed on its full `:path`. Paths with a typed handler
//! go to it; every other path, known to the CRI proto or not, is forwarded to the
//! runtime as bytes, frame by frame, without being decoded.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use h2::RecvStream;
use http::{Request, Response, Uri, uri::PathAndQuery};
use tonic::Status;
use tracing::debug;

use crate::{
    body::{RequestBody, ResponseBody},
    error::Result,
    grpc,
    metrics::{Call, Metrics},
    upstream::Upstream,
};

/// A future returned by a [`Handler`].
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>>> + Send + 'a>>;

/// A typed handler for one method: it reads the call, may act around it, and forwards
/// it through the [`Proxy`] (see `typed` for the helpers). A handler's own features
/// are side effects: whatever they do, the caller gets the runtime's answer.
pub trait Handler: Send + Sync + std::fmt::Debug + 'static {
    /// Serves one call.
    fn call<'a>(&'a self, proxy: &'a Proxy, req: Request<RequestBody>) -> HandlerFuture<'a>;
}

/// Typed handlers by full gRPC path (`/runtime.v1.RuntimeService/CreateContainer`).
pub type Handlers = HashMap<&'static str, Arc<dyn Handler>>;

/// The proxy's routing and forwarding. Clones share one proxy (a handler's work
/// that outlives its call, such as a shared pull, holds a clone).
#[derive(Clone, Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    upstream: Upstream,
    metrics: Arc<Metrics>,
    handlers: Handlers,
}

impl Proxy {
    /// A proxy forwarding to `upstream`, with `handlers` for the methods it reads.
    pub fn new(upstream: Upstream, metrics: Arc<Metrics>, handlers: Handlers) -> Self {
        Self { shared: Arc::new(Shared { upstream, metrics, handlers }) }
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Whether calls to `path` go to a typed handler.
    pub fn has_handler(&self, path: &str) -> bool {
        self.shared.handlers.contains_key(path)
    }

    /// The runtime's side.
    pub(crate) fn upstream(&self) -> &Upstream {
        &self.shared.upstream
    }

    /// Serves one call from the caller. Never fails: errors of the proxy itself become
    /// gRPC statuses; the runtime's own statuses pass through untouched.
    pub async fn handle(&self, req: Request<RequestBody>) -> Response<ResponseBody> {
        let call = Call::begin(&self.shared.metrics, req.uri().path());
        let result = match self.shared.handlers.get(req.uri().path()) {
            Some(handler) => handler.call(self, req).await,
            None => {
                let deadline = grpc::deadline(req.headers());
                self.forward(req, deadline).await.map(|resp| resp.map(ResponseBody::upstream))
            }
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(error) => {
                // the upstream logs runtime outages once; per-call detail is debug
                debug!(%error, "call failed in the proxy");
                Status::from(error).into_http()
            }
        };
        match grpc::status_code(resp.headers()) {
            Some(code) => {
                call.finish(code);
                resp
            }
            None => resp.map(|body| body.with_call(call)),
        }
    }

    /// Forwards a request to the runtime as it is. The caller's deadline bounds
    /// reaching the runtime (see [`Upstream::send`]).
    ///
    /// # Errors
    /// The runtime cannot be reached before the deadline, or the call fails in HTTP/2.
    pub async fn forward(
        &self,
        mut req: Request<RequestBody>,
        deadline: Option<Duration>,
    ) -> Result<Response<RecvStream>> {
        ensure_authority(req.uri_mut());
        self.shared.upstream.send(req, deadline).await
    }
}

/// HTTP/2 requests need `:scheme` and `:authority`. Callers always send them, but a
/// request that arrived without them gets `http://localhost`, as grpc-go uses for
/// unix sockets.
fn ensure_authority(uri: &mut Uri) {
    if uri.scheme().is_some() && uri.authority().is_some() {
        return;
    }
    let path = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    if let Ok(full) = Uri::builder().scheme("http").authority("localhost").path_and_query(path).build() {
        *uri = full;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_uris_get_a_scheme_and_authority() {
        let mut uri: Uri = "/runtime.v1.RuntimeService/Version".parse().unwrap();
        ensure_authority(&mut uri);
        assert_eq!(uri.to_string(), "http://localhost/runtime.v1.RuntimeService/Version");
        let mut full: Uri = "http://cri/runtime.v1.ImageService/ListImages".parse().unwrap();
        ensure_authority(&mut full);
        assert_eq!(full.authority().unwrap().as_str(), "cri");
    }
}
