//! What the node-local workload runners ([`crate::daemons`], [`crate::broadcast`])
//! share: the watches (their workloads cluster-wide, this node's Node and NodeState,
//! the pods bound to this node), the loop that runs a pass after each burst of events
//! and at least every resync interval, and the pod deletion they both do.

use std::{fmt::Debug, time::Duration};

use futures_util::{FutureExt as _, StreamExt as _, stream};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodTemplateSpec};
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
use stevedore_proto::crd::node_state::NodeState;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Events closer together than this are handled in one pass.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// A pass at least this often (deadlines, retries).
pub const RESYNC: Duration = Duration::from_secs(30);

/// What a runner reads: its workloads, this node, its NodeState, its pods.
#[derive(Clone)]
pub struct Stores<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// The workloads, cluster-wide.
    pub workloads: Store<K>,
    /// This node (a watch by name).
    pub nodes: Store<Node>,
    /// This node's NodeState (a watch by name).
    pub states: Store<NodeState>,
    /// The pods bound to this node.
    pub pods: Store<Pod>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Debug for Stores<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// A runner of one kind of node-local workload.
pub trait Runner {
    /// The workload kind.
    type Workload: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static;

    /// One pass over every workload; returns when the next pass is due at the latest.
    fn pass(&mut self, stores: &Stores<Self::Workload>) -> impl Future<Output = Duration> + Send;
}

/// Watches what `runner` reads and runs its passes until `shutdown`.
pub async fn run<R: Runner>(node: &str, client: Client, mut runner: R, shutdown: CancellationToken) {
    let (workloads, workloads_w) = reflector::store();
    let (nodes, nodes_w) = reflector::store();
    let (states, states_w) = reflector::store();
    let (pods, pods_w) = reflector::store();
    let by_name = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let on_node = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let events = stream::select_all([
        watcher(Api::<R::Workload>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(workloads_w)
            .map(|e| watched(e, "the workloads"))
            .boxed(),
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
        watcher(Api::<Pod>::all(client.clone()), on_node)
            .default_backoff()
            .reflect(pods_w)
            .map(|e| watched(e, "its pods"))
            .boxed(),
    ]);
    let mut events = std::pin::pin!(events);
    let stores = Stores { workloads, nodes, states, pods };
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
            stores.workloads.wait_until_ready().now_or_never(),
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

/// The pod the agent creates for the workload `owner` on its own `node`, in
/// OpenKruise's shape: the template's metadata and spec, `generateName: <owner>-`,
/// `labels` added to the template's, the workload as controlling owner blocking
/// deletion (named with `owner_api_version` when OpenKruise's controller names
/// another served version), `spec.nodeName`; `shape` finishes the spec.
pub fn owned_pod<K: Resource<DynamicType = ()>>(
    owner: &K,
    owner_api_version: Option<&str>,
    template: &PodTemplateSpec,
    labels: impl IntoIterator<Item = (String, String)>,
    node: &str,
    shape: impl FnOnce(&mut PodSpec),
) -> Pod {
    let template = template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut all = meta.labels.unwrap_or_default();
    all.extend(labels);
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(node.to_owned());
    shape(&mut spec);
    let reference = owner.controller_owner_ref(&()).map(|mut o| {
        if let Some(v) = owner_api_version {
            v.clone_into(&mut o.api_version);
        }
        o.block_owner_deletion = Some(true);
        o
    });
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.meta().name.as_deref().unwrap_or_default())),
            namespace: owner.meta().namespace.clone(),
            labels: Some(all),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: reference.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
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
