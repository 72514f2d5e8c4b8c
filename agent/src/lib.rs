//! `stevedore-agent`: the node agent. It knows its node, reaches CRI through the
//! Stevedore proxy's socket and the proxy's control API, talks to the API server from
//! its in-cluster service account or `KUBECONFIG`, and watches only what concerns its
//! node. Its duties: image pre-download ([`images`]): it pulls what its node's
//! NodeImage lists and reports each pull in the NodeImage's status; and container
//! recreation ([`recreate`]): it carries out the ContainerRecreateRequests of the pods
//! on its node and reports them in their status; and the Advanced DaemonSet pods of its
//! node ([`daemons`]) and its BroadcastJob pods ([`broadcast`]), as far as the
//! controller's permits in its NodeState allow.

pub mod broadcast;
pub mod daemons;
pub mod heartbeat;
pub mod images;
pub mod metadata_env;
pub mod metrics;
pub mod node_local;
pub mod node_pods;
pub mod recreate;
pub mod runtime;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, info_span};

/// The agent's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node this agent serves.
    pub node_name: String,
    /// The agent's namespace: pull secrets are read there only.
    pub namespace: String,
    /// The CRI socket (the proxy's).
    pub cri_socket: PathBuf,
    /// The proxy's control API socket; `None`: pulls through CRI only.
    pub control_socket: Option<PathBuf>,
    /// `/metrics` and `/healthz`; `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
    /// Pulls at once on this node.
    pub max_concurrent_pulls: usize,
    /// The least time between two NodeImage status writes.
    pub status_interval: Duration,
    /// How containers of ContainerRecreateRequests are recreated.
    pub recreate_mode: recreate::Mode,
    /// How often the agent renews its heartbeat Lease (`agent-<node>` in its
    /// namespace).
    pub heartbeat: Duration,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig or in-cluster configuration.
    #[error("cannot configure the Kubernetes client: {0}")]
    Kubeconfig(#[from] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The metrics port could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs with the client from the in-cluster service account or `KUBECONFIG` until
/// `shutdown`.
///
/// # Errors
/// The client cannot be configured or the metrics port bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let kubeconfig = kube::Config::infer().await?;
    let client = kube::Client::try_from(kubeconfig).map_err(Error::Client)?;
    run_with(config, client, shutdown).await
}

/// Runs with `client` until `shutdown`.
///
/// # Errors
/// The metrics port cannot be bound.
pub async fn run_with(
    config: Config,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let metrics = Arc::new(metrics::Metrics::default());
    let admin = match config.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Metrics { addr, source })?;
            info!(metrics.addr = %listener.local_addr().unwrap_or(addr), "serving /metrics and /healthz");
            let m: Arc<dyn stevedore_proto::admin::Metrics> = metrics.clone();
            Some(tokio::spawn(stevedore_proto::admin::serve(listener, m, shutdown.clone())))
        }
        None => None,
    };
    info!(
        node.name = %config.node_name,
        cri.socket = %config.cri_socket.display(),
        control.socket = ?config.control_socket,
        max_concurrent_pulls = config.max_concurrent_pulls,
        recreate.mode = config.recreate_mode.as_str(),
        "agent started"
    );
    let runtime = Arc::new(runtime::CriRuntime::new(&config.cri_socket, config.control_socket.as_deref()));
    let settings = images::Settings {
        node_name: config.node_name.clone(),
        namespace: config.namespace.clone(),
        max_concurrent_pulls: config.max_concurrent_pulls,
        status_interval: config.status_interval,
    };
    // the node's pods, watched once for the duties below
    let pods = node_pods::NodePods::start(&config.node_name, client.clone(), shutdown.clone());
    let env = metadata_env::MetadataEnv::new(
        &config.node_name,
        pods.clone(),
        &config.cri_socket,
        config.control_socket.as_deref(),
        metrics.clone(),
    );
    let env = tokio::spawn(env.run(shutdown.clone()).instrument(info_span!("metadata_env")));
    let recreator = recreate::Recreator::new(
        recreate::Settings { node_name: config.node_name.clone(), mode: config.recreate_mode },
        client.clone(),
        pods.clone(),
        runtime.clone(),
        metrics.clone(),
    );
    let recreating = tokio::spawn(recreator.run(shutdown.clone()).instrument(info_span!("recreate")));
    let lease = heartbeat::Beating::default();
    let daemon_settings = daemons::Settings {
        node_name: config.node_name.clone(),
        status_interval: config.status_interval,
        lease: lease.clone(),
        heartbeat: config.heartbeat,
    };
    let beat = heartbeat::run(
        config.node_name.clone(),
        config.namespace.clone(),
        client.clone(),
        config.heartbeat,
        lease,
        shutdown.clone(),
    );
    let beating = tokio::spawn(beat.instrument(info_span!("heartbeat")));
    let broadcast_settings =
        broadcast::Settings { node_name: config.node_name.clone(), status_interval: config.status_interval };
    // the node's DaemonSet and BroadcastJob pods, on one watch of its Node and its
    // NodeState, and the pods
    let runners = (
        daemons::Daemons::new(daemon_settings, client.clone(), Some(runtime.clone())),
        broadcast::Broadcast::new(broadcast_settings, client.clone()),
    );
    let (node, runs_client, runs_stop) = (config.node_name.clone(), client.clone(), shutdown.clone());
    let workloads = tokio::spawn(
        async move { node_local::run(&node, runs_client, &pods, runners, runs_stop).await }
            .instrument(info_span!("node_workloads")),
    );
    images::Puller::new(settings, client, runtime, metrics).run(shutdown.clone()).await;
    let tasks = [
        (recreating, "recreate"),
        (env, "metadata env"),
        (workloads, "daemon and broadcast pods"),
        (beating, "heartbeat"),
    ];
    for (task, name) in tasks {
        if let Err(error) = task.await {
            tracing::error!(%error, task = name, "agent task failed");
        }
    }
    if let Some(a) = admin {
        let _ = a.await;
    }
    info!("agent stopped");
    Ok(())
}
