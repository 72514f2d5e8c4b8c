//! A simulated Kubernetes API server for tests: kube-rs clients, kubectl and our own
//! binaries talk to it unchanged over plain HTTP/1.1 on loopback.
//!
//! What it serves, and where it departs from kube-apiserver, is in the README
//! ("Simulated API server"). Start one with [`ApiServer::start`].
//!
//! # Plug points
//!
//! Schema checks, admission webhooks and conversion webhooks are written elsewhere and
//! plugged in through [`Options::hooks`]. Their exact signatures:
//!
//! ```text
//! pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
//!
//! pub trait Admission: Send + Sync {
//!     // Called twice per create/update/patch (also of status and scale) of every resource:
//!     // phase Mutating (the returned object replaces the request's), then phase
//!     // Validating (an Err rejects). `req.webhook_configurations` holds the
//!     // Mutating-/ValidatingWebhookConfiguration objects in the store for that phase.
//!     fn admit<'a>(&'a self, req: AdmitRequest) -> HookFuture<'a, Result<Value, Status>>;
//! }
//! pub trait SchemaCheck: Send + Sync {
//!     // Called on every write of a custom resource, in the requested version, before
//!     // admission: prune, default, validate against that version's openAPIV3Schema.
//!     fn check(&self, crd: &Value, version: &str, object: Value) -> Result<Value, Status>;
//! }
//! pub trait Converter: Send + Sync {
//!     // Called when a custom resource is read, watched or written in a version other
//!     // than the one it is in (objects are stored in the CRD's storage version).
//!     fn convert<'a>(&'a self, crd: &'a Value, objects: Vec<Value>, desired_api_version: &'a str)
//!         -> HookFuture<'a, Result<Vec<Value>, Status>>;
//! }
//! ```
//!
//! The defaults, [`NoAdmissionConfigured`], [`NoSchemaCheckConfigured`] and
//! [`NoConversionWebhookConfigured`], pass everything through (conversion rewrites
//! `apiVersion` only).

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

pub mod admission;
mod auth;
pub mod conversion;
mod crd;
mod delete;
mod discovery;
pub mod endpoints;
mod fields;
mod handlers;
mod hooks;
mod logs;
pub mod managed;
mod negotiate;
pub mod openapi;
mod patch;
mod path;
pub mod plugins;
mod prepare;
pub mod protobuf;
mod resources;
pub mod schema;
mod selectors;
mod server;
mod status;
mod store;
mod subresources;
mod table;
mod watch;
mod write;

pub use auth::{Tokens, UserInfo};
pub use hooks::{
    Admission, AdmissionPhase, AdmitRequest, Converter, HookFuture, Hooks, NoAdmissionConfigured,
    NoConversionWebhookConfigured, NoSchemaCheckConfigured, Operation, SchemaCheck, set_api_version,
};
pub use status::{Cause, Status};

/// The admin token of [`Options::default`].
pub const ADMIN_TOKEN: &str = "stevedore-admin";

/// Failures starting the server or making clients of it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket.
    #[error("failed to listen on {addr}: {err}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        err: std::io::Error,
    },
    /// Writing a kubeconfig.
    #[error("failed to write {path}: {err}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        err: std::io::Error,
    },
    /// Building a client from the kubeconfig.
    #[error("kubeconfig rejected by kube: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Building the client.
    #[error("kube client: {0}")]
    Client(#[from] kube::Error),
    /// A token or URL that cannot go into a request.
    #[error("cannot build a client: {0}")]
    Token(String),
}

/// The HTTP/2 flow-control window of [`ApiServer::multiplexed_client_as`]'s clients
/// (the protocol's largest).
const H2_WINDOW: u32 = (1 << 31) - 1;

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (port 0: a free port).
    pub listen: SocketAddr,
    /// Known bearer tokens (the admin token is among them by default).
    pub tokens: Tokens,
    /// The token [`ApiServer::client`] uses.
    pub admin_token: String,
    /// Schema, admission and conversion plug points.
    pub hooks: Hooks,
    /// Watch events kept per resource for `resourceVersion=N` watches.
    pub history_limit: usize,
    /// How often `allowWatchBookmarks` watches get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// The user of requests without an `Authorization` header (`None`: 401, as with
    /// `--anonymous-auth=false`). kubectl (client-go) sends no token over plain HTTP, so
    /// kubectl needs this.
    pub anonymous: Option<UserInfo>,
    /// Ends every watch after this long, even one that asked for a longer
    /// `timeoutSeconds` (kube-rs asks for 290 s): tests use it to see clients
    /// reconnect. `None` (the default): `timeoutSeconds` as asked.
    pub max_watch_duration: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        let mut tokens = Tokens::default();
        tokens.insert(ADMIN_TOKEN, UserInfo::admin());
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens,
            admin_token: ADMIN_TOKEN.into(),
            hooks: Hooks::default(),
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(5),
            anonymous: None,
            max_watch_duration: None,
        }
    }
}

/// A running simulated API server. Dropping it stops it.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    admin_token: String,
    shutdown: CancellationToken,
    shared: Arc<server::Shared>,
    task: Option<JoinHandle<()>>,
}

fn namespace(name: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"name": name}})
}

impl ApiServer {
    /// Binds and starts serving; namespaces `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease` exist from the start.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start(opts: Options) -> Result<Self, Error> {
        let listener =
            TcpListener::bind(opts.listen).await.map_err(|err| Error::Bind { addr: opts.listen, err })?;
        let addr = listener.local_addr().map_err(|err| Error::Bind { addr: opts.listen, err })?;
        let mut state = store::State::new(opts.history_limit);
        let ns_res = state.registry.find("", "v1", "namespaces").cloned();
        if let Some(ns_res) = ns_res {
            for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let mut o = namespace(n);
                let uid = state.next_uid();
                if prepare::for_create(&ns_res, &mut o, "", &uid).is_ok() {
                    state.put(&ns_res.key(), o);
                }
            }
        }
        let shutdown = CancellationToken::new();
        let shared = Arc::new(server::Shared {
            state: std::sync::Mutex::new(state),
            hooks: opts.hooks,
            tokens: opts.tokens,
            anonymous: opts.anonymous,
            bookmark_interval: opts.bookmark_interval,
            shutdown: shutdown.clone(),
            watch_generation: tokio::sync::watch::Sender::new(0),
            max_watch_duration: opts.max_watch_duration,
            addr,
            requests: std::sync::Mutex::default(),
            requests_by_kind: std::sync::Mutex::default(),
            watch_events: std::sync::Mutex::default(),
        });
        shared.hooks.endpoints.bind(&shared);
        let task = tokio::spawn(
            server::serve(listener, shared.clone()).instrument(info_span!("apiserver", listen.addr = %addr)),
        );
        info!(listen.addr = %addr, "simulated apiserver listening");
        Ok(Self { addr, admin_token: opts.admin_token, shutdown, shared, task: Some(task) })
    }

    /// Authenticated requests served so far, by user name (watches count once).
    pub fn requests_by_user(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Resource requests served so far, by user name and `VERB plural[/subresource]`
    /// (a watch is `WATCH plural`).
    pub fn requests_by_kind(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.shared.requests_by_kind.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Watch events (added, modified, deleted; not bookmarks) delivered so far, per
    /// user name and resource (its storage key, such as `pods` or
    /// `stevedore.dev/nodestates`).
    pub fn watch_events(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.shared.watch_events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Changes committed so far to the resource with storage key `key` (`pods`,
    /// `stevedore.dev/nodestates`): what a watch of it that never falls behind
    /// receives. A watch more than 16,384 changes of its resource behind (256 for a
    /// watch of one node's pods or one object by name) is ended with 410 Expired, as
    /// kube-apiserver ends it, and the events until its relist are never delivered.
    pub fn changes(&self, key: &str) -> u64 {
        self.shared.lock().changes(key)
    }

    /// The changes the watch history retains over every resource, and their size as
    /// JSON (what a watch from an old resourceVersion can still replay).
    pub fn history_retained(&self) -> (usize, usize) {
        self.shared.lock().history_retained()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML) that authenticates with `token`.
    pub fn kubeconfig(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stevedore-sim\n  cluster:\n    server: {url}\n\
             users:\n- name: stevedore-sim-user\n  user:\n    token: \"{token}\"\n\
             contexts:\n- name: stevedore-sim\n  context:\n    cluster: stevedore-sim\n    user: stevedore-sim-user\n    namespace: default\n\
             current-context: stevedore-sim\n",
            url = self.url()
        )
    }

    /// Writes [`ApiServer::kubeconfig`] to `path` (kube-rs and kubectl read it).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig(token)).map_err(|err| Error::Write { path: path.into(), err })
    }

    /// A client authenticated as the admin.
    ///
    /// # Errors
    /// kube rejects the generated kubeconfig (a bug).
    pub async fn client(&self) -> Result<kube::Client, Error> {
        self.client_as(&self.admin_token.clone()).await
    }

    /// A client authenticated with `token`.
    ///
    /// # Errors
    /// kube rejects the generated kubeconfig (a bug).
    pub async fn client_as(&self, token: &str) -> Result<kube::Client, Error> {
        Ok(kube::Client::try_from(self.config_as(token).await?)?)
    }

    /// A client for `token` whose requests, watches included, all go over one HTTP/2
    /// connection (h2c with prior knowledge), as client-go's share one with a real
    /// kube-apiserver. For benchmarks that run thousands of clients in one process:
    /// over HTTP/1.1 each open watch holds a connection, two file descriptors here.
    ///
    /// # Errors
    /// The token is not a valid header value.
    pub fn multiplexed_client_as(&self, token: &str) -> Result<kube::Client, Error> {
        use hyper_util::{client::legacy, rt::TokioExecutor};
        // Flow-control windows far beyond what a client's watches can hold unread: a
        // watch stream not polled while its client waits for a response on the same
        // connection must not use up the connection's window (HTTP/1.1 gives each watch
        // its own TCP connection; with 5 MB windows, three of four shared connections
        // of a 200-node benchmark stalled for good).
        let http: legacy::Client<_, kube::client::Body> = legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .http2_initial_stream_window_size(H2_WINDOW)
            .http2_initial_connection_window_size(H2_WINDOW)
            .build(legacy::connect::HttpConnector::new());
        let bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| Error::Token(e.to_string()))?;
        let base: http::Uri =
            self.url().parse().map_err(|e: http::uri::InvalidUri| Error::Token(e.to_string()))?;
        let service = tower::ServiceBuilder::new()
            .layer(kube::client::middleware::BaseUriLayer::new(base))
            .map_request(move |mut r: http::Request<kube::client::Body>| {
                r.headers_mut().insert(http::header::AUTHORIZATION, bearer.clone());
                r
            })
            .service(http);
        Ok(kube::Client::new(service, "default"))
    }

    /// The client configuration for `token`, to adjust before building a client (for
    /// example `default_retry = false`, so that a 429 comes back at once).
    ///
    /// # Errors
    /// kube rejects the generated kubeconfig (a bug).
    pub async fn config_as(&self, token: &str) -> Result<kube::Config, Error> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig(token))?;
        Ok(kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?)
    }

    /// What a kube-apiserver restart after an etcd compaction does to watches: every
    /// open watch ends, and resuming one (or a list's `continue`) from any earlier
    /// resourceVersion gets 410 Gone, so clients must relist.
    pub fn expire_watches(&self) {
        self.shared.lock().forget_history();
        self.shared.watch_generation.send_modify(|g| *g += 1);
    }

    /// Stops accepting connections and ends every watch.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
