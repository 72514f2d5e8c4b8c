//! A simulated kubelet, one per node, for the simulated API server: it registers its
//! Node, heartbeats through a Lease, watches the pods bound to it and runs them through
//! a CRI socket (normally our proxy in front of the test bed's containerd) the way
//! kubelet 1.33 does, writing their status through `pods/status`.
//!
//! - [`node`]: the Node object and its Lease.
//! - `worker`: one task per pod (kubelet's pod workers), re-syncing every
//!   [`Config::sync_interval`] and on every change of the pod.
//! - `sync`: one sync of one pod against CRI (kubelet's `SyncPod`/`computePodActions`),
//!   with `spec` building the CRI configs and `volumes` the pod's dirs.
//! - [`status`], [`mod@env`], [`hash`]: the pure parts.
//! - [`hollow`]: no CRI at all — containers run at once; a fleet of hollow nodes
//!   shares one pod watcher.
//!
//! Isolation: several simulated nodes may share one containerd. Every sandbox and
//! container this kubelet creates carries [`NODE_LABEL`]`=<node>`, and everything it
//! lists is filtered by that label (and by pod uid), so it never touches what another
//! node (or anyone else) created.
//!
//! The departures from kubelet are listed in the README, "Simulated kubelet and
//! scheduler".

mod api;
pub mod env;
pub mod hash;
pub mod hollow;
pub mod logs;
pub mod node;
pub mod quantity;
mod runtime;
mod spec;
pub mod status;
mod sync;
mod volumes;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::cri::{ImageClient, RuntimeClient};

/// The label this simulator puts on every sandbox and container it creates.
pub const NODE_LABEL: &str = "stevedore.test/node";

/// One simulated node.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Node's name (and `kubernetes.io/hostname`).
    pub node_name: String,
    /// Extra Node labels.
    pub labels: BTreeMap<String, String>,
    /// The Node's taints.
    pub taints: Vec<Taint>,
    /// Capacity (= allocatable): CPU cores.
    pub cpu: String,
    /// Capacity (= allocatable): memory.
    pub memory: String,
    /// Capacity (= allocatable): pods.
    pub max_pods: u32,
    /// The Node's InternalIP; host-network pods get it as their pod IP.
    pub host_ip: String,
    /// The kubelet port the Node advertises (`daemonEndpoints`). A CRI node serves its
    /// container logs there (on `host_ip`, a free port chosen at start); a hollow node
    /// only advertises it.
    pub kubelet_port: u16,
    /// The CRI socket; `None` for a hollow node.
    pub cri_socket: Option<PathBuf>,
    /// kubelet's root dir: pods' emptyDirs live in `<root>/pods/<uid>/volumes/…`.
    pub root_dir: PathBuf,
    /// Parent of the pods' CRI log dirs (`<ns>_<name>_<uid>`).
    pub log_dir: PathBuf,
    /// How often a pod worker re-syncs without a change (kubelet's PLEG relists every
    /// second).
    pub sync_interval: Duration,
    /// Lease renewal (kubelet: 10 s, a quarter of the 40 s lease).
    pub lease_interval: Duration,
    /// How often the Ready condition's heartbeat is refreshed (kubelet: 5 min when
    /// nothing changes).
    pub node_status_interval: Duration,
    /// First crash-loop back-off (kubelet: 10 s), doubled per restart.
    pub backoff_initial: Duration,
    /// Back-off cap (kubelet: 300 s).
    pub backoff_max: Duration,
}

impl Config {
    /// A CRI node with kubelet's defaults; state under `root_dir`.
    pub fn new(node_name: &str, cri_socket: Option<PathBuf>, root_dir: PathBuf) -> Config {
        Config {
            node_name: node_name.to_owned(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            cpu: "4".to_owned(),
            memory: "8Gi".to_owned(),
            max_pods: 110,
            host_ip: "127.0.0.1".to_owned(),
            kubelet_port: 10250,
            cri_socket,
            log_dir: root_dir.join("logs"),
            root_dir,
            sync_interval: Duration::from_secs(1),
            lease_interval: Duration::from_secs(10),
            node_status_interval: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
        }
    }

    /// A hollow node (no CRI, nothing on disk).
    pub fn hollow(node_name: &str) -> Config {
        Config::new(node_name, None, PathBuf::from("/nonexistent"))
    }
}

/// What can go wrong in the simulated kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with an error.
    #[error("api: {0}")]
    Kube(#[from] kube::Error),
    /// A CRI call failed.
    #[error("cri {method}: {status}")]
    Cri {
        /// The CRI method.
        method: &'static str,
        /// Its status.
        #[source]
        status: tonic::Status,
    },
    /// The CRI socket could not be reached.
    #[error("connecting to the CRI socket {path}: {message}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A pod dir could not be made or removed.
    #[error("{path}: {err}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
}

/// This module's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the CRI method name to a tonic error.
pub(crate) fn cri(method: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Cri { method, status }
}

/// What every task of one node shares.
pub(crate) struct NodeCtx {
    pub cfg: Config,
    pub client: kube::Client,
    /// `None` for a hollow node.
    pub runtime: Option<(RuntimeClient, ImageClient)>,
}

impl std::fmt::Debug for NodeCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCtx").field("node", &self.cfg.node_name).finish_non_exhaustive()
    }
}

/// A running simulated kubelet.
#[derive(Debug)]
pub struct Kubelet {
    task: JoinHandle<()>,
}

impl Kubelet {
    /// Registers the Node and its Lease, connects to CRI (unless hollow), then runs
    /// until `shutdown`: heartbeats and pod workers. On shutdown it leaves the pods'
    /// containers running, as kubelet does; a new `Kubelet` for the same node adopts
    /// them.
    pub async fn start(
        mut cfg: Config,
        client: kube::Client,
        shutdown: CancellationToken,
    ) -> Result<Kubelet> {
        let (runtime, log_listener) = match &cfg.cri_socket {
            None => (None, None),
            Some(path) => {
                let ch = crate::cri::connect(path)
                    .await
                    .map_err(|e| Error::Connect { path: path.clone(), message: format!("{e:#}") })?;
                let addr = format!("{}:0", cfg.host_ip);
                let io = |err| Error::Io { path: PathBuf::from(&addr), err };
                let listener = tokio::net::TcpListener::bind(&addr).await.map_err(io)?;
                cfg.kubelet_port = listener.local_addr().map_err(io)?.port();
                (Some((crate::cri::runtime_client(ch.clone()), crate::cri::image_client(ch))), Some(listener))
            }
        };
        node::register(&cfg, &client).await?;
        let span = tracing::info_span!("kubelet", node = %cfg.node_name);
        let log_root = cfg.log_dir.clone();
        let ctx = Arc::new(NodeCtx { cfg, client, runtime });
        let task = tokio::spawn(
            async move {
                let heartbeat = node::heartbeat(ctx.clone(), shutdown.clone());
                let pods = worker::run(ctx.clone(), shutdown.clone());
                let logs = async {
                    if let Some(l) = log_listener {
                        logs::serve(l, log_root, shutdown.clone()).await;
                    }
                };
                tokio::join!(heartbeat, pods, logs);
            }
            .instrument(span),
        );
        Ok(Kubelet { task })
    }

    /// Waits until it has stopped (after its shutdown token fired).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// One sync of one pod on a CRI node, without a watch: what a pod worker does each
/// time. For tests that drive the pod-sync logic directly (any `kube::Client` that
/// answers the pod's `GET`/`PUT status`/`DELETE` and the ConfigMap/Secret reads).
/// Returns true when the pod was torn down and deleted.
pub async fn sync_pod_once(
    cfg: &Config,
    client: &kube::Client,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Result<bool> {
    let path = cfg.cri_socket.clone().ok_or_else(|| Error::Connect {
        path: PathBuf::new(),
        message: "sync_pod_once needs a CRI node".to_owned(),
    })?;
    let ch = crate::cri::connect(&path)
        .await
        .map_err(|e| Error::Connect { path: path.clone(), message: format!("{e:#}") })?;
    let (rt, img) = (crate::cri::runtime_client(ch.clone()), crate::cri::image_client(ch));
    let runtime = runtime::Runtime { rt: rt.clone(), img: img.clone(), node: cfg.node_name.clone() };
    let ctx = NodeCtx { cfg: cfg.clone(), client: client.clone(), runtime: Some((rt, img)) };
    Ok(sync::sync(&ctx, &runtime, pod).await? == sync::Outcome::Deleted)
}
