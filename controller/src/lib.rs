//! `stevedore-controller`: admission webhooks and CRD conversion for the OpenKruise
//! API, served by every replica; the elected leader keeps the webhook configurations
//! and the CRDs' conversion sections pointing at them with the current CA, and runs
//! the workload controllers ([`controllers`], on [`runtime`]).

pub mod certs;
pub mod controllers;
pub mod conversion;
pub mod defaulting;
pub mod leader;
pub mod node_guard;
pub mod runtime;
pub mod upkeep;
pub mod validation;
pub mod webhook;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::webhook::tls::{Bundle, CertResolver};

/// Every webhook handler and converter the controller serves, registered in one
/// place, for listing them (manifests, the webhook configurations): the handlers
/// that read the cluster refuse every request ([`registry_reading`] serves).
pub fn registry() -> webhook::Registry {
    registry_reading(Arc::new(webhook::cluster::NoCluster))
}

/// Every webhook handler and converter, the handlers reading the cluster through
/// `cluster`, the node agents' guard for agents in the default namespace
/// ([`node_guard::DEFAULT_AGENT_NAMESPACE`]).
pub fn registry_reading(cluster: Arc<dyn webhook::Cluster>) -> webhook::Registry {
    registry_for(cluster, node_guard::DEFAULT_AGENT_NAMESPACE)
}

/// Every webhook handler and converter, the handlers reading the cluster through
/// `cluster`, the node agents' guard for agents whose service account lives in
/// `agent_namespace`.
pub fn registry_for(cluster: Arc<dyn webhook::Cluster>, agent_namespace: &str) -> webhook::Registry {
    let mut registry = webhook::Registry::new(cluster);
    conversion::register(&mut registry);
    defaulting::register(&mut registry);
    validation::register(&mut registry);
    node_guard::register(&mut registry, agent_namespace);
    registry
}

/// The controller's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the webhook server listens.
    pub webhook_listen: SocketAddr,
    /// The controller's namespace: its Secret, Service and Lease live there.
    pub namespace: String,
    /// This replica's name, for the leader Lease.
    pub identity: String,
    /// The Service in front of the replicas' webhook port, and its port.
    pub service: String,
    /// The Service's port.
    pub service_port: i32,
    /// The Secret holding the serving certificate.
    pub secret: String,
    /// The leader Lease's name.
    pub lease: String,
    /// The webhook configurations' names.
    pub mutating_configuration: String,
    /// The validating webhook configuration's name.
    pub validating_configuration: String,
    /// How long a serving certificate is valid.
    pub cert_validity: Duration,
    /// How often the Secret is re-read and the leader re-checks what it keeps.
    pub resync: Duration,
    /// Leader Lease duration; the leader renews every third of it.
    pub lease_duration: Duration,
    /// How long one webhook handler may take.
    pub handler_timeout: Duration,
    /// Objects each controller reconciles at once.
    pub concurrency: u16,
    /// The node agents' namespace (pull secrets are copied there).
    pub agent_namespace: String,
    /// How long a node's agent may not report an image pull before it counts as failed.
    pub agent_response_timeout: Duration,
    /// How old a node agent's NodeState report may be before the agent counts as
    /// silent (its DaemonSet pods then count as unavailable).
    pub agent_silence: Duration,
}

impl Config {
    /// The DNS names the serving certificate carries: the Service's short and
    /// cluster-qualified forms.
    pub fn dns_names(&self) -> Vec<String> {
        let (s, n) = (&self.service, &self.namespace);
        vec![format!("{s}.{n}.svc"), format!("{s}.{n}.svc.cluster.local"), format!("{s}.{n}"), s.clone()]
    }

    fn target(&self) -> upkeep::Target {
        upkeep::Target {
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            port: self.service_port,
            mutating: self.mutating_configuration.clone(),
            validating: self.validating_configuration.clone(),
            timeout_seconds: 10,
        }
    }
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig or in-cluster configuration.
    #[error("cannot configure the Kubernetes client: {0}")]
    Kubeconfig(#[from] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The webhook port could not be bound.
    #[error("cannot listen for webhooks on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The served certificate does not parse.
    #[error(transparent)]
    Tls(#[from] webhook::tls::Error),
}

/// Runs with the client from the kubeconfig (`KUBECONFIG`, `~/.kube/config` or the
/// in-cluster service account) until `shutdown`.
///
/// # Errors
/// The client cannot be configured or the webhook port bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let kubeconfig = kube::Config::infer().await?;
    let client = kube::Client::try_from(kubeconfig).map_err(Error::Client)?;
    run_with(config, client, shutdown).await
}

/// Reads the shared certificate, retrying until it succeeds or `shutdown`.
async fn first_bundle(
    client: &kube::Client,
    settings: &certs::Settings,
    resync: Duration,
    shutdown: &CancellationToken,
) -> Option<Bundle> {
    let mut wait = Duration::from_millis(200);
    loop {
        match certs::ensure(client, settings).await {
            Ok(bundle) => return Some(bundle),
            Err(error) => warn!(%error, retry_in = ?wait, "cannot get the webhook certificate"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(resync);
    }
}

/// Runs with `client` until `shutdown`: serves webhooks with the shared certificate,
/// campaigns for leadership, and while leading keeps the webhook configurations and
/// CRD conversion sections current.
///
/// # Errors
/// The webhook port cannot be bound or the certificate does not parse.
pub async fn run_with(
    config: Config,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let lookups = webhook::cluster::ApiServer::new(client.clone(), config.handler_timeout * 4 / 5);
    let registry = Arc::new(registry_for(Arc::new(lookups), &config.agent_namespace));
    let crds = stevedore_proto::crd::skeletons();
    let settings = certs::Settings {
        namespace: config.namespace.clone(),
        secret: config.secret.clone(),
        dns_names: config.dns_names(),
        validity: config.cert_validity,
    };
    let listener = TcpListener::bind(config.webhook_listen)
        .await
        .map_err(|source| Error::Listen { addr: config.webhook_listen, source })?;
    let Some(mut bundle) = first_bundle(&client, &settings, config.resync, &shutdown).await else {
        return Ok(());
    };
    let resolver = Arc::new(CertResolver::new(&bundle)?);
    info!(
        webhook.addr = %config.webhook_listen,
        identity = %config.identity,
        endpoints = registry.routes().len() + registry.guards().len(),
        "controller started; serving webhooks"
    );
    let server = tokio::spawn(webhook::server::serve(
        listener,
        resolver.clone(),
        registry.clone(),
        webhook::server::Settings { handler_timeout: config.handler_timeout },
        shutdown.clone(),
    ));
    let (leading_tx, mut leading) = watch::channel(false);
    let election = tokio::spawn(leader::run(
        client.clone(),
        leader::Settings {
            namespace: config.namespace.clone(),
            name: config.lease.clone(),
            identity: config.identity.clone(),
            lease_duration: config.lease_duration,
            retry_period: config.lease_duration / 3,
        },
        leading_tx,
        shutdown.clone(),
    ));
    let controllers = tokio::spawn(runtime::while_leading(leading.clone(), shutdown.clone(), {
        let settings = controllers::Settings {
            concurrency: config.concurrency,
            agent_namespace: config.agent_namespace.clone(),
            agent_response_timeout: config.agent_response_timeout,
            agent_silence: config.agent_silence,
            identity: config.identity.clone(),
        };
        let client = client.clone();
        move |stop| controllers::run(client.clone(), settings.clone(), stop)
    }));
    let target = config.target();
    loop {
        // The leader checks what it keeps on taking office and at every resync:
        // someone may have edited it, and the CA may have changed.
        if *leading.borrow_and_update()
            && let Err(error) =
                upkeep::sync(&client, &registry, &crds, &target, bundle.ca_pem.as_bytes()).await
        {
            warn!(%error, "cannot bring the webhook configurations up to date");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = leading.changed() => {
                if changed.is_err() { break }
                continue;
            }
            () = tokio::time::sleep(config.resync) => {}
        }
        match certs::ensure(&client, &settings).await {
            Ok(next) if next != bundle => {
                info!("webhook certificate changed; serving the new one");
                match resolver.rotate(&next) {
                    Ok(()) => bundle = next,
                    Err(error) => {
                        warn!(%error, "cannot serve the new webhook certificate; keeping the old one")
                    }
                }
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "cannot check the webhook certificate"),
        }
    }
    let _ = controllers.await;
    let _ = election.await;
    let _ = server.await;
    info!("controller stopped");
    Ok(())
}
