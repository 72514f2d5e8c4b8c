//! A small scheduler for the simulated cluster: binds pending pods (no `nodeName`,
//! `schedulerName` `default-scheduler`) through `pods/binding` to a node that passes
//! every [`predicates`] filter, preferring the node with the fewest pods (ties by
//! name). A pod no node fits gets `PodScheduled=False` (`Unschedulable`) and is tried
//! again on every change of nodes or pods.

pub mod predicates;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::kubelet::status::is_terminal;
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

/// The scheduler name this one answers to.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// What went wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with an error.
    #[error("api: {0}")]
    Kube(#[from] kube::Error),
}

/// A running scheduler.
#[derive(Debug)]
pub struct Scheduler {
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts watching nodes and pods; runs until `shutdown`.
    pub fn start(client: kube::Client, shutdown: CancellationToken) -> Scheduler {
        let task = tokio::spawn(run(client, shutdown).instrument(info_span!("scheduler")));
        Scheduler { task }
    }

    /// Waits until it has stopped.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Is this pod waiting for this scheduler?
pub fn is_pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let unbound = spec.and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty);
    let ours = spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|n| n == SCHEDULER_NAME);
    unbound && ours && !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Picks the node for `pod`: the fitting node with the fewest pods. `Err` has the
/// reasons per node for the Unschedulable message.
pub fn pick<'a>(
    pod: &Pod,
    nodes: &'a BTreeMap<String, Node>,
    counts: &HashMap<String, usize>,
) -> Result<&'a str, String> {
    let mut best: Option<(&str, usize)> = None;
    let mut misfits: BTreeMap<String, usize> = BTreeMap::new();
    for (name, node) in nodes {
        let n = counts.get(name).copied().unwrap_or(0);
        match predicates::fits(pod, node, n) {
            Ok(()) if best.is_none_or(|(_, b)| n < b) => best = Some((name, n)),
            Ok(()) => {}
            Err(m) => *misfits.entry(format!("{m:?}")).or_default() += 1,
        }
    }
    best.map(|(n, _)| n).ok_or_else(|| {
        let why: Vec<String> = misfits.iter().map(|(m, n)| format!("{n} {m}")).collect();
        format!("0/{} nodes are available: {}.", nodes.len(), why.join(", "))
    })
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    pods: HashMap<String, Pod>,
    /// Bound by us, not yet seen bound: uid → node.
    assumed: HashMap<String, String>,
    /// Pods already marked Unschedulable with this message.
    reported: HashMap<String, String>,
}

async fn run(client: kube::Client, shutdown: CancellationToken) {
    let nodes =
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff().boxed();
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()).default_backoff().boxed();
    let (mut nodes, mut pods) = (nodes, pods);
    let mut st = State::default();
    let mut dirty = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(ev) = nodes.next() => {
                dirty = true;
                match ev {
                    Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                        st.nodes.insert(n.metadata.name.clone().unwrap_or_default(), n);
                    }
                    Ok(watcher::Event::Delete(n)) => {
                        st.nodes.remove(n.metadata.name.as_deref().unwrap_or_default());
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "node watch"),
                }
            }
            Some(ev) = pods.next() => {
                dirty = true;
                match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        if !is_pending(&p) {
                            st.assumed.remove(&uid);
                        }
                        st.pods.insert(uid, p);
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        st.pods.remove(&uid);
                        st.assumed.remove(&uid);
                        st.reported.remove(&uid);
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "pod watch"),
                }
            }
            _ = tick.tick(), if dirty => {
                dirty = false;
                schedule_pass(&client, &mut st).await;
            }
        }
    }
}

async fn schedule_pass(client: &kube::Client, st: &mut State) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for p in st.pods.values() {
        let terminal = is_terminal(p);
        if let Some(n) =
            p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty() && !terminal)
        {
            *counts.entry(n).or_default() += 1;
        }
    }
    for n in st.assumed.values() {
        *counts.entry(n.clone()).or_default() += 1;
    }
    let mut pending: Vec<Pod> =
        st.pods.values().filter(|p| is_pending(p) && !st.assumed.contains_key(uid(p))).cloned().collect();
    pending.sort_by_key(|p| (p.metadata.creation_timestamp.clone().map(|t| t.0), p.metadata.name.clone()));
    for pod in pending {
        let id = uid(&pod).to_owned();
        match pick(&pod, &st.nodes, &counts) {
            Ok(node) => {
                let node = node.to_owned();
                match bind(client, &pod, &node).await {
                    Ok(()) => {
                        info!(pod = pod.metadata.name.as_deref().unwrap_or(""), %node, "bound");
                        *counts.entry(node.clone()).or_default() += 1;
                        st.assumed.insert(id.clone(), node);
                        st.reported.remove(&id);
                    }
                    Err(error) => debug!(%error, "binding failed; will retry"),
                }
            }
            Err(message) => {
                if st.reported.get(&id) != Some(&message) {
                    if let Err(error) = mark_unschedulable(client, &pod, &message).await {
                        debug!(%error, "marking a pod unschedulable");
                    }
                    st.reported.insert(id, message);
                }
            }
        }
    }
}

fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or_default()
}

async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_owned()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".to_owned()),
            api_version: Some("v1".to_owned()),
            name: Some(node.to_owned()),
            ..Default::default()
        },
    };
    api.create_subresource::<Binding, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
        .await?;
    Ok(())
}

async fn mark_unschedulable(client: &kube::Client, pod: &Pod, message: &str) -> Result<(), Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut p = pod.clone();
    let status = p.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "PodScheduled");
    conditions.push(PodCondition {
        type_: "PodScheduled".to_owned(),
        status: "False".to_owned(),
        reason: Some("Unschedulable".to_owned()),
        message: Some(message.to_owned()),
        last_transition_time: Some(Time(crate::kubelet::status::whole_seconds(Timestamp::now()))),
        ..Default::default()
    });
    api.replace_status(p.metadata.name.as_deref().unwrap_or_default(), &PostParams::default(), &p).await?;
    Ok(())
}
