//! The HTTP/1.1 server: connections, authentication, routing and responses.

use std::{collections::HashMap, convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use super::{
    Status, UserInfo,
    auth::Tokens,
    discovery, handlers,
    hooks::Hooks,
    openapi,
    path::{Route, Target, route},
    store::State,
};

/// The response body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// What every request handler shares.
#[derive(Debug)]
pub struct Shared {
    /// The store, behind one lock that is never held across an await.
    pub state: std::sync::Mutex<State>,
    /// Schema, admission and conversion plug points.
    pub hooks: Hooks,
    /// Bearer tokens.
    pub tokens: Tokens,
    /// The user of requests without credentials, if they are allowed.
    pub anonymous: Option<UserInfo>,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Fires when the server stops; ends every watch.
    pub shutdown: CancellationToken,
    /// Ends every open watch when it changes ([`super::ApiServer::expire_watches`]).
    pub watch_generation: tokio::sync::watch::Sender<u64>,
    /// The longest a watch runs, whatever its `timeoutSeconds`.
    pub max_watch_duration: Option<Duration>,
    /// The listening address.
    pub addr: SocketAddr,
    /// Authenticated requests so far, by user name.
    pub requests: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Resource requests so far, by user name and `VERB plural[/subresource]`.
    pub requests_by_kind: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
    /// Watch events (added, modified, deleted; not bookmarks) delivered, per user and
    /// resource.
    pub watch_events: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

impl Shared {
    /// The locked store.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decoded query parameters.
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    /// Parses `a=b&c=d`.
    pub fn parse(q: &str) -> Self {
        Self(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// One parameter, if present and non-empty.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// One authenticated resource request.
#[derive(Debug)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// The resource URL.
    pub target: Target,
    /// Query parameters.
    pub query: Query,
    /// The request body.
    pub body: Bytes,
    /// `Content-Type`.
    pub content_type: String,
    /// `Accept`.
    pub accept: String,
    /// `User-Agent` (its first word names the field manager when none is given).
    pub user_agent: String,
    /// Who sent it.
    pub user: UserInfo,
}

/// A JSON response.
pub fn json(code: u16, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// Adds one `Warning: 299 - "..."` header per warning, as kube-apiserver sends them.
pub fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let quoted = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = http::HeaderValue::from_str(&quoted) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// A failure as a `metav1.Status` response.
pub fn failure(s: &Status) -> Response<Body> {
    json(s.code, &s.to_json())
}

/// Accepts connections until `shutdown` fires.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(error) => {
                    debug!(%error, "accept failed");
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let span = info_span!("apiserver_conn", client.addr = %peer);
        tokio::spawn(
            async move {
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(shared, req).await) }
                });
                // HTTP/1.1, or HTTP/2 with prior knowledge (h2c), as a client speaks;
                // streams unbounded, as watches hold theirs open
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(None);
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                if let Err(error) = conn.await {
                    debug!(%error, "connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query().unwrap_or_default());
    let r = route(&path);
    if r == Route::Health {
        return Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
    }
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
    let user = match auth {
        None => shared.anonymous.clone(),
        Some(_) => shared.tokens.authenticate(auth),
    };
    let Some(user) = user else {
        debug!(http.method = %method, http.path = %path, "unauthorized");
        return failure(&Status::unauthorized());
    };
    *shared
        .requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(user.username.clone())
        .or_default() += 1;
    let header_of = |name: header::HeaderName| {
        req.headers().get(name).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string()
    };
    let content_type = header_of(header::CONTENT_TYPE);
    let accept = header_of(header::ACCEPT);
    let user_agent = header_of(header::USER_AGENT);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return failure(&Status::bad_request(format!("reading the body: {e}"))),
    };
    debug!(http.method = %method, http.path = %path, user.name = %user.username, "request");
    let out = match r {
        Route::Version => Ok(json(200, &discovery::version())),
        Route::CoreVersions => Ok(json(200, &discovery::core_versions(shared.addr))),
        Route::Groups => Ok(json(200, &discovery::groups(&shared.lock().registry))),
        Route::Group(g) => discovery::group(&shared.lock().registry, &g).map(|v| json(200, &v)),
        Route::Resources(g, v) => {
            discovery::resources(&shared.lock().registry, &g, &v).map(|v| json(200, &v))
        }
        Route::Resource(target) => {
            let kind = match &target.sub {
                Some(sub) => format!("{method} {}/{sub}", target.plural),
                None if query.flag("watch") => format!("WATCH {}", target.plural),
                None => format!("{method} {}", target.plural),
            };
            *shared
                .requests_by_kind
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry((user.username.clone(), kind))
                .or_default() += 1;
            let req = Request { method, target, query, body, content_type, accept, user_agent, user };
            handlers::dispatch(&shared, req).await
        }
        Route::OpenApiV3Index => {
            let (registry, crds) = openapi_inputs(&shared);
            Ok(json(200, &openapi::v3_index(&registry, &crds)))
        }
        Route::OpenApiV3(g, v) => {
            let (registry, crds) = openapi_inputs(&shared);
            openapi::v3_document(&registry, &crds, &g, &v).map(|d| json(200, &d))
        }
        Route::OpenApiV2 if !accepts_json(&accept) => Err(Status::new(
            406,
            "NotAcceptable",
            "this simulated server serves /openapi/v2 as JSON only (use /openapi/v3)",
        )),
        Route::OpenApiV2 => {
            let (registry, crds) = openapi_inputs(&shared);
            Ok(json(200, &openapi::v2_document(&registry, &crds)))
        }
        Route::Health => unreachable_health(),
        Route::Unknown => {
            Err(Status::new(404, "NotFound", "the server could not find the requested resource"))
        }
    };
    out.unwrap_or_else(|s| {
        debug!(http.path = %path, status.code = s.code, status.reason = %s.reason, "request failed");
        failure(&s)
    })
}

/// Whether `Accept` takes JSON (or says nothing).
fn accepts_json(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept
            .split(',')
            .any(|m| matches!(m.split(';').next().unwrap_or_default().trim(), "application/json" | "*/*"))
}

/// What the OpenAPI documents are built from, copied out of the store.
fn openapi_inputs(shared: &Shared) -> (super::resources::Registry, openapi::Crds) {
    let state = shared.lock();
    let crds = state
        .list("apiextensions.k8s.io/customresourcedefinitions", None)
        .map(|c| (super::store::name_of(c).to_string(), c.clone()))
        .collect();
    (state.registry.clone(), crds)
}

fn unreachable_health() -> Result<Response<Body>, Status> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok")).boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = Query::parse("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true&x=");
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch") && q.get("x").is_none() && !q.flag("missing"));
    }
}
