//! What the node-local workload runners ([`crate::daemons`], [`crate::broadcast`])
//! share: the watches (this node's Node and NodeState; the pods bound to this node
//! come from the agent's one watch of them, [`crate::node_pods`]),
//! the loop that runs a pass after each burst of events and at least every resync
//! interval, and the pod creation and deletion they both do.
//!
//! Neither watches its workloads: every status write of a DaemonSet or BroadcastJob
//! would reach every agent (measured on 200 hollow nodes: 96% of all the events the
//! agents received). What a node must do comes in its own NodeState; the pod
//! templates from ControllerRevisions (immutable) or one read of the job.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Debug,
    sync::Arc,
    time::Duration,
};

use futures_util::{FutureExt as _, StreamExt as _, stream};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::{
    api::core::v1::{Node, Pod, PodSpec, PodTemplateSpec},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Client, Resource, ResourceExt as _,
    api::{DeleteParams, ObjectMeta, Preconditions},
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use stevedore_proto::{crd::node_state::NodeState, keys, placement};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::node_pods::NodePods;

/// Events closer together than this are handled in one pass.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// A pass at least this often (deadlines, retries).
pub const RESYNC: Duration = Duration::from_secs(30);

/// What a runner reads: this node, its NodeState, its pods.
#[derive(Clone)]
pub struct Stores {
    /// This node (a watch by name).
    pub nodes: Store<Node>,
    /// This node's NodeState (a watch by name).
    pub states: Store<NodeState>,
    /// The pods bound to this node.
    pub pods: Store<Pod>,
}

impl Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// A runner of one kind of node-local workload.
pub trait Runner {
    /// One pass over every workload; returns when the next pass is due at the latest.
    fn pass(&mut self, stores: &Stores) -> impl Future<Output = Duration> + Send;
}

/// Two runners on one set of watches: both pass on every change, the next pass is
/// due when the first of them asks.
impl<A: Runner + Send, B: Runner + Send> Runner for (A, B) {
    async fn pass(&mut self, stores: &Stores) -> Duration {
        let a = self.0.pass(stores).await;
        let b = self.1.pass(stores).await;
        a.min(b)
    }
}

/// Watches what `runner` reads (the pods from the agent's one watch of them) and runs
/// its passes until `shutdown`.
pub async fn run<R: Runner>(
    node: &str,
    client: Client,
    node_pods: &NodePods,
    mut runner: R,
    shutdown: CancellationToken,
) {
    let (nodes, nodes_w) = reflector::store();
    let (states, states_w) = reflector::store();
    let pods = node_pods.store();
    let by_name = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let events = stream::select_all([
        watcher(Api::<Node>::all(client.clone()), by_name.clone())
            .default_backoff()
            .reflect(nodes_w)
            .map(|e| watched(e, "its Node"))
            .boxed(),
        watcher(Api::<NodeState>::all(client.clone()), by_name)
            .default_backoff()
            .reflect(states_w)
            .map(|e| watched(e, "its NodeState"))
            .boxed(),
        node_pods.changes().map(|_| true).boxed(),
    ]);
    let mut events = std::pin::pin!(events);
    let stores = Stores { nodes, states, pods };
    let mut next = Instant::now() + RESYNC;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep_until(next) => {}
            e = events.next() => match e {
                None => break,
                Some(_) => {
                    // take what else arrives together
                    let until = Instant::now() + DEBOUNCE;
                    while let Ok(Some(_)) = tokio::time::timeout_at(until, events.next()).await {}
                }
            },
        }
        // Every watch must have listed once. The stores fill only while `events` is
        // polled, so this must not wait here (it did, and stalled for minutes under
        // load): the next event comes back.
        let listed = [
            stores.nodes.wait_until_ready().now_or_never(),
            stores.states.wait_until_ready().now_or_never(),
            stores.pods.wait_until_ready().now_or_never(),
        ];
        if !listed.iter().all(|r| matches!(r, Some(Ok(())))) {
            next = Instant::now() + RESYNC;
            continue;
        }
        let wait = runner.pass(&stores).await;
        next = Instant::now() + wait.min(RESYNC);
    }
}

/// Logs a watch failure (the watch retries with backoff); whether the event is one.
fn watched<T>(event: Result<T, watcher::Error>, what: &str) -> bool {
    if let Err(error) = &event {
        warn!(%error, watching = what, "watch failed; retrying");
    }
    event.is_ok()
}

/// The controlling owner reference to a workload of kind `K`, named with `api_version`
/// when OpenKruise's controller names another served version than `K`'s.
pub fn owner_ref<K: Resource<DynamicType = ()>>(
    api_version: Option<&str>,
    namespace: &str,
    name: &str,
    uid: &str,
) -> (String, OwnerReference) {
    let reference = OwnerReference {
        api_version: api_version.map_or_else(|| K::api_version(&()).into_owned(), ToOwned::to_owned),
        kind: K::kind(&()).into_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    (namespace.to_owned(), reference)
}

/// The pod the agent creates for the workload `owner` (its namespace and controlling
/// reference, [`owner_ref`]) on its own `node`, in OpenKruise's shape: the template's
/// metadata and spec, `generateName: <owner>-`, `labels` added to the template's, the
/// workload as controlling owner blocking deletion, `spec.nodeName`; `shape` finishes
/// the spec. It is labelled [`keys::NODE_LOCAL`], so that the controller's pod watch
/// leaves it out.
pub fn owned_pod(
    owner: (String, OwnerReference),
    template: &PodTemplateSpec,
    labels: impl IntoIterator<Item = (String, String)>,
    node: &str,
    shape: impl FnOnce(&mut PodSpec),
) -> Pod {
    let template = template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut all = meta.labels.unwrap_or_default();
    all.extend(labels);
    all.insert(keys::NODE_LOCAL.to_owned(), "true".to_owned());
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(node.to_owned());
    shape(&mut spec);
    let (namespace, reference) = owner;
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", reference.name)),
            namespace: Some(namespace),
            labels: Some(all),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![reference]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The workloads of kind `K` (any served version) that control pods here, by uid:
/// their namespace and name.
pub fn pod_owners<K: Resource<DynamicType = ()>>(pods: &[Arc<Pod>]) -> BTreeMap<String, (String, String)> {
    let group = K::group(&());
    let kind = K::kind(&());
    let mut out = BTreeMap::new();
    for pod in pods {
        let owner = pod.owner_references().iter().find(|o| o.controller == Some(true));
        if let Some(o) = owner
            && o.kind == kind
            && o.api_version.split_once('/').is_some_and(|(g, _)| g == group)
        {
            out.insert(o.uid.clone(), (pod.namespace().unwrap_or_default(), o.name.clone()));
        }
    }
    out
}

/// Whether the workload with `uid` controls `pod`.
pub fn controlled_by(pod: &Pod, uid: &str) -> bool {
    pod.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Deletes pod `name` of `ns` if it still has `uid`; gone already is fine, a failure
/// is logged (the next pass tries again).
pub async fn delete_pod(client: &Client, ns: &str, name: &str, uid: &str, why: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.to_owned()), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => info!(pod.namespace = ns, pod.name = name, reason = why, "pod deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            debug!(pod.name = name, "already gone");
        }
        Err(error) => warn!(pod.name = name, %error, "cannot delete the pod"),
    }
}

/// A workload that is gone: neither new nor running pods of it belong here.
pub const GONE: placement::Placement =
    placement::Placement { should_run: false, should_continue_running: false, reason: None };

/// Workloads read one at a time instead of watched (their status writes would reach
/// every agent), by uid: when each was read, and what was found (`None`: gone, another
/// workload under the name, or being deleted).
#[derive(Debug)]
pub struct Workloads<K> {
    read: HashMap<String, (Instant, Option<Arc<K>>)>,
    /// A workload found is kept for good (`false`: read again after [`RESYNC`], as a
    /// workload found gone always is).
    keep_found: bool,
}

impl<K> Workloads<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    /// An empty cache; `keep_found`: see the field.
    pub fn new(keep_found: bool) -> Self {
        Self { read: HashMap::new(), keep_found }
    }

    /// Forgets the workloads `keep` rejects (by uid).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.read.retain(|uid, _| keep(uid));
    }

    /// The workload `<ns>/<name>` with `uid`, from the cache or read now.
    /// `Some(None)`: gone; `None`: cannot tell now (the read failed, logged).
    pub async fn get(&mut self, client: &Client, ns: &str, name: &str, uid: &str) -> Option<Option<Arc<K>>> {
        if let Some((at, found)) = self.read.get(uid)
            && ((found.is_some() && self.keep_found) || at.elapsed() < RESYNC)
        {
            return Some(found.clone());
        }
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let found = match api.get_opt(name).await {
            Ok(w) => w
                .filter(|w| w.meta().uid.as_deref() == Some(uid) && w.meta().deletion_timestamp.is_none())
                .map(Arc::new),
            Err(error) => {
                warn!(kind = %K::kind(&()), workload = %name, %error, "cannot read the workload");
                return None;
            }
        };
        self.read.insert(uid.to_owned(), (Instant::now(), found.clone()));
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner that counts its passes and always asks for the same wait.
    struct Counting {
        passes: usize,
        wait: Duration,
    }

    impl Runner for Counting {
        async fn pass(&mut self, _: &Stores) -> Duration {
            self.passes += 1;
            self.wait
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn two_runners_pass_together_and_the_sooner_wait_wins() {
        let stores =
            Stores { nodes: reflector::store().0, states: reflector::store().0, pods: reflector::store().0 };
        let mut both = (
            Counting { passes: 0, wait: Duration::from_secs(5) },
            Counting { passes: 0, wait: Duration::from_secs(2) },
        );
        assert_eq!(both.pass(&stores).await, Duration::from_secs(2));
        assert_eq!(both.pass(&stores).await, Duration::from_secs(2));
        assert_eq!((both.0.passes, both.1.passes), (2, 2));
    }
}
