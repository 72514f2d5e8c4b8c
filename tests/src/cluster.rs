//! The cluster an e2e test runs against: the simulated API server ([`super::apiserver`])
//! by default, or the real cluster that `KUBECONFIG` names when
//! `STEVEDORE_E2E_CLUSTER=kubeconfig` ([`TARGET_VAR`]).
//!
//! Every [`TestCluster`] works in a fresh namespace with a random suffix and deletes it,
//! with the cluster-scoped objects registered through [`TestCluster::delete_at_end`], in
//! [`TestCluster::finish`] (or, on a real cluster, when dropped unfinished after a
//! failure), so the suites are safe on a shared cluster. Tests that need what only the
//! simulator has (hook call counters, token users, history limits, its timeouts, the
//! binary, webhook servers on loopback) start with [`TestCluster::simulator_only`]: it
//! never skips against the simulator, and against a real cluster it prints why it skips.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DeleteParams, DynamicObject, PostParams},
};
use serde_json::json;

use crate::apiserver::{self, ADMIN_TOKEN, ApiServer, Hooks, Options, admission::client::ServiceResolver};

/// The environment variable that picks the target: unset, empty or `simulator` for the
/// simulated API server, `kubeconfig` for the cluster `KUBECONFIG` names.
pub const TARGET_VAR: &str = "STEVEDORE_E2E_CLUSTER";

/// The label every test namespace carries, to find leftovers on a real cluster.
pub const NAMESPACE_LABEL: &str = "stevedore.test/e2e";

/// Failures choosing or reaching the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// [`TARGET_VAR`] holds something else.
    #[error("{TARGET_VAR}={0:?}: expected `kubeconfig` or `simulator` (or unset)")]
    Target(String),
    /// The simulator did not start.
    #[error("simulated API server: {0}")]
    Simulator(#[from] apiserver::Error),
    /// No usable kubeconfig.
    #[error("no usable kubeconfig ({TARGET_VAR}=kubeconfig): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// A request to the cluster.
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
}

/// Which cluster the suites run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A simulated API server started per test.
    Simulator,
    /// The real cluster of the standard `KUBECONFIG` (`kube::Config::infer`).
    Kubeconfig,
}

impl Target {
    /// The target [`TARGET_VAR`] names.
    ///
    /// # Errors
    /// An unknown value.
    pub fn from_env() -> Result<Self, Error> {
        Self::parse(std::env::var(TARGET_VAR).ok().as_deref())
    }

    /// The target a value of [`TARGET_VAR`] names.
    ///
    /// # Errors
    /// An unknown value.
    pub fn parse(value: Option<&str>) -> Result<Self, Error> {
        match value.map(str::trim) {
            None | Some("" | "simulator") => Ok(Self::Simulator),
            Some("kubeconfig") => Ok(Self::Kubeconfig),
            Some(other) => Err(Error::Target(other.into())),
        }
    }
}

/// Whether a test that needs no cluster but is simulator-only anyway (the simulator's
/// binary) skips: `true`, after printing `reason`, against a real cluster.
///
/// # Errors
/// An unknown [`TARGET_VAR`].
pub fn skipped_on_real_cluster(reason: &str) -> Result<bool, Error> {
    let skip = Target::from_env()? == Target::Kubeconfig;
    if skip {
        eprintln!("skipped against a real cluster ({TARGET_VAR}=kubeconfig): {reason}");
    }
    Ok(skip)
}

/// Where webhook Services are reached in the simulator: `name.namespace.svc:port` →
/// a local address, set by the test that starts the webhook server.
#[derive(Debug, Clone, Default)]
pub struct Services(Arc<Mutex<HashMap<ServiceKey, SocketAddr>>>);

/// Namespace, name, port.
type ServiceKey = (String, String, i32);

impl Services {
    /// Routes `name.namespace.svc:port` to `addr`.
    pub fn expose(&self, namespace: &str, name: &str, port: i32, addr: SocketAddr) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert((namespace.into(), name.into(), port), addr);
    }
}

impl ServiceResolver for Services {
    fn resolve(&self, namespace: &str, name: &str, port: i32) -> Option<SocketAddr> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&(namespace.into(), name.into(), port)).copied()
    }
}

/// A cluster and a fresh namespace in it for one test.
pub struct TestCluster {
    client: Client,
    config: kube::Config,
    namespace: String,
    suffix: String,
    server: Option<ApiServer>,
    services: Services,
    cluster_scoped: Mutex<Vec<(ApiResource, String)>>,
    finished: bool,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("target", &self.target())
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    h.write_u128(nanos.as_nanos());
    format!("{:08x}", h.finish() & 0xffff_ffff)
}

impl TestCluster {
    /// The target of [`TARGET_VAR`]; in the simulator, [`Hooks::webhooks`] resolving
    /// Services through [`TestCluster::services`].
    ///
    /// # Errors
    /// Unknown target, no kubeconfig, or the namespace cannot be created.
    pub async fn start() -> Result<Self, Error> {
        let services = Services::default();
        let opts = Options { hooks: Hooks::webhooks(services.clone()), ..Options::default() };
        Self::start_on(Target::from_env()?, opts, services).await
    }

    /// Like [`TestCluster::start`], with the simulator's options (its hooks are used as
    /// given: `services` is what [`TestCluster::services`] returns); on a real cluster
    /// they are ignored.
    ///
    /// # Errors
    /// As [`TestCluster::start`].
    pub async fn start_with(opts: Options, services: Services) -> Result<Self, Error> {
        Self::start_on(Target::from_env()?, opts, services).await
    }

    /// Like [`TestCluster::start`], for a test that only the simulator can run: against
    /// a real cluster it prints `reason` and returns `None`; against the simulator it
    /// never does.
    ///
    /// # Errors
    /// As [`TestCluster::start`].
    pub async fn simulator_only(reason: &str) -> Result<Option<Self>, Error> {
        let services = Services::default();
        let opts = Options { hooks: Hooks::webhooks(services.clone()), ..Options::default() };
        Self::simulator_only_with(reason, opts, services).await
    }

    /// Like [`TestCluster::simulator_only`], with the simulator's options (its hooks
    /// are used as given: `services` is what [`TestCluster::services`] returns).
    ///
    /// # Errors
    /// As [`TestCluster::start`].
    pub async fn simulator_only_with(
        reason: &str,
        opts: Options,
        services: Services,
    ) -> Result<Option<Self>, Error> {
        match Target::from_env()? {
            Target::Simulator => Ok(Some(Self::start_on(Target::Simulator, opts, services).await?)),
            Target::Kubeconfig => {
                eprintln!("skipped against a real cluster ({TARGET_VAR}=kubeconfig): {reason}");
                Ok(None)
            }
        }
    }

    async fn start_on(target: Target, opts: Options, services: Services) -> Result<Self, Error> {
        let (server, config) = match target {
            Target::Simulator => {
                let server = ApiServer::start(opts).await?;
                let config = server.config_as(ADMIN_TOKEN).await?;
                (Some(server), config)
            }
            Target::Kubeconfig => (None, kube::Config::infer().await?),
        };
        let client = Client::try_from(config.clone())?;
        let suffix = random_suffix();
        let namespace = format!("sd-e2e-{suffix}");
        let cluster = Self {
            client,
            config,
            namespace: namespace.clone(),
            suffix,
            server,
            services,
            cluster_scoped: Mutex::default(),
            finished: false,
        };
        cluster.create_namespace_named(&namespace).await?;
        Ok(cluster)
    }

    async fn create_namespace_named(&self, name: &str) -> Result<(), Error> {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}
        }))
        .map_err(kube::Error::SerdeError)?;
        Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &ns).await?;
        Ok(())
    }

    /// Another fresh namespace, `<base>-<suffix>`, deleted at the end.
    ///
    /// # Errors
    /// It cannot be created.
    pub async fn create_namespace(&self, base: &str) -> Result<String, Error> {
        let name = self.unique(base);
        self.create_namespace_named(&name).await?;
        self.delete_at_end::<Namespace>(&name);
        Ok(name)
    }

    /// An admin client of the cluster.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The client configuration, to adjust before building another client.
    pub fn config(&self) -> kube::Config {
        self.config.clone()
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `K` in the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// `<base>-<suffix>`: a name for a cluster-scoped object no other test run uses.
    pub fn unique(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    /// The random suffix of this test's names.
    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    /// Which cluster this is.
    pub fn target(&self) -> Target {
        if self.server.is_some() { Target::Simulator } else { Target::Kubeconfig }
    }

    /// The simulated API server, `None` on a real cluster.
    pub fn simulator(&self) -> Option<&ApiServer> {
        self.server.as_ref()
    }

    /// The simulator, or `None` after printing why the rest of the test is skipped on a
    /// real cluster.
    pub fn simulator_for(&self, reason: &str) -> Option<&ApiServer> {
        if self.server.is_none() {
            eprintln!("part skipped against a real cluster ({TARGET_VAR}=kubeconfig): {reason}");
        }
        self.server.as_ref()
    }

    /// The simulator's webhook Service routes.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Deletes the cluster-scoped object `name` of kind `K` at the end (last registered,
    /// first deleted; before the namespace).
    pub fn delete_at_end<K: Resource<DynamicType = ()>>(&self, name: &str) {
        self.cluster_scoped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((ApiResource::erase::<K>(&()), name.into()));
    }

    /// Deletes what [`TestCluster::delete_at_end`] registered and the namespace, then
    /// stops the simulator.
    ///
    /// # Errors
    /// A delete failed other than with 404.
    pub async fn finish(mut self) -> Result<(), Error> {
        self.finished = true;
        let objects = std::mem::take(&mut *self.cluster_scoped.lock().unwrap_or_else(|e| e.into_inner()));
        cleanup(&self.client, objects, &self.namespace).await?;
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        Ok(())
    }
}

async fn cleanup(client: &Client, objects: Vec<(ApiResource, String)>, namespace: &str) -> Result<(), Error> {
    let ns = ApiResource::erase::<Namespace>(&());
    for (ar, name) in objects.iter().rev().chain([(ns, namespace.to_owned())].iter()) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // The simulator goes with its objects; a real cluster keeps them unless deleted
        // here. The test's runtime may be the one blocked in this drop, so the deletes
        // run on a runtime of their own.
        if self.finished || self.server.is_some() {
            return;
        }
        let config = self.config.clone();
        let namespace = self.namespace.clone();
        let objects = std::mem::take(&mut *self.cluster_scoped.lock().unwrap_or_else(|e| e.into_inner()));
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let client = Client::try_from(config)?;
                cleanup(&client, objects, &namespace).await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not clean up namespace {} after a failed test: {done:?}", self.namespace);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_values() {
        assert_eq!(Target::parse(None).unwrap(), Target::Simulator);
        assert_eq!(Target::parse(Some("")).unwrap(), Target::Simulator);
        assert_eq!(Target::parse(Some("simulator")).unwrap(), Target::Simulator);
        assert_eq!(Target::parse(Some("kubeconfig")).unwrap(), Target::Kubeconfig);
        assert!(matches!(Target::parse(Some("kind")), Err(Error::Target(v)) if v == "kind"));
    }

    #[test]
    fn suffixes_differ_and_are_dns_labels() {
        let a = random_suffix();
        let b = random_suffix();
        assert_ne!(a, b);
        assert!(a.len() == 8 && a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
