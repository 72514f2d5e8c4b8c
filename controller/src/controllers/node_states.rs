//! What the node-local controllers ([`super::daemon_set`], [`super::broadcast_job`])
//! share: an agent's report counts only while it is fresh, a workload's permits are
//! written as one merge patch of its own key per node (folded with other workloads'
//! patches of the same node written at the same time) and taken back when the
//! workload is deleted, and each workload's passes are spaced.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::{StreamExt as _, stream};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::reflector::ObjectRef,
};
use serde_json::Value;
use stevedore_proto::crd::{
    broadcast_job::v1beta1::BroadcastJob,
    daemon_set::v1beta1::DaemonSet,
    node_state::{NodeState, NodeStateStatus},
};
use stevedore_proto::keys;
use tokio::{
    sync::{Notify, mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::runtime::shared::SharedStore;

/// Permit writes in flight at once.
const WRITES_IN_FLIGHT: usize = 32;

/// What the node-local controllers share: the API, every node and every NodeState
/// (shared watches), and how old a report may be before its agent counts as silent.
#[derive(Clone)]
pub struct Fleet {
    /// The API.
    pub client: Client,
    /// Every node.
    pub nodes: SharedStore<Node>,
    /// Every NodeState.
    pub states: SharedStore<NodeState>,
    /// How old a report may be before its agent counts as silent.
    pub agent_silence: Duration,
    /// The NodeState spec writes of every pass.
    pub writer: SpecWriter,
    /// How often each workload's pass may run.
    pub passes: Arc<Throttle>,
    /// The agents' heartbeats.
    pub heartbeats: Heartbeats,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("agent_silence", &self.agent_silence).finish_non_exhaustive()
    }
}

impl Fleet {
    /// Returns once both watches have listed; false if one stopped first.
    pub async fn listed(&self) -> bool {
        self.nodes.wait_until_ready().await.is_ok() && self.states.wait_until_ready().await.is_ok()
    }
}

/// When each node's agent last renewed its heartbeat Lease (`agent-<node>` in the
/// agents' namespace), as last listed by [`poll_heartbeats`].
#[derive(Clone, Debug, Default)]
pub struct Heartbeats {
    renewed: Arc<std::sync::RwLock<HashMap<String, Timestamp>>>,
}

impl Heartbeats {
    /// When `node`'s agent last renewed its Lease, if it has one.
    pub fn renewed(&self, node: &str) -> Option<Timestamp> {
        self.renewed.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(node).copied()
    }

    /// Takes the Leases as listed now; true when an agent that was silent (or had no
    /// Lease) is alive again, so that every pass must look again.
    fn replace(&self, now: Timestamp, silence: Duration, renewed: HashMap<String, Timestamp>) -> bool {
        let fresh =
            |t: &Timestamp| Duration::try_from(now.duration_since(*t)).unwrap_or(Duration::ZERO) < silence;
        let mut current = self.renewed.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let revived = renewed.iter().any(|(node, t)| fresh(t) && !current.get(node).is_some_and(fresh));
        *current = renewed;
        revived
    }
}

/// Lists the agents' heartbeat Leases in `namespace` every quarter of `silence`
/// (between 1 and 15 s) into `heartbeats` until `stop`, and bumps `revived` when an
/// agent that was silent renews its Lease again. A list of a few hundred bytes per
/// node every few seconds replaces one NodeState event per node and heartbeat on
/// every watch of NodeStates.
pub async fn poll_heartbeats(
    client: Client,
    namespace: String,
    heartbeats: Heartbeats,
    silence: Duration,
    revived: tokio::sync::watch::Sender<u64>,
    stop: CancellationToken,
) {
    let every = (silence / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let params = kube::api::ListParams::default().labels(&format!("{}=true", keys::AGENT_HEARTBEAT));
    let mut failing = false;
    loop {
        match api.list(&params).await {
            Ok(list) => {
                if failing {
                    info!(%namespace, "agents' heartbeat Leases listed again");
                    failing = false;
                }
                let renewed = list
                    .items
                    .into_iter()
                    .filter_map(|l| {
                        let spec = l.spec?;
                        Some((spec.holder_identity?, spec.renew_time?.0))
                    })
                    .collect();
                if heartbeats.replace(Timestamp::now(), silence, renewed) {
                    revived.send_modify(|n| *n += 1);
                }
            }
            Err(error) if !failing => {
                warn!(%namespace, %error, "cannot list the agents' heartbeat Leases; agents count as silent until it can");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Reads agents' reports as of one instant, and remembers when the first of those
/// still fresh goes stale. A report is fresh while its agent's last sign of life (its
/// heartbeat Lease's renewal, or the report's own `heartbeatTime`) is younger than
/// the silence limit.
#[derive(Debug)]
pub struct Freshness {
    now: Timestamp,
    silence: Duration,
    heartbeats: Heartbeats,
    next: Option<Duration>,
}

impl Freshness {
    /// Reports as of now; with no sign of life for `silence`, a report is its silent
    /// agent's.
    pub fn new(silence: Duration, heartbeats: &Heartbeats) -> Self {
        Self { now: Timestamp::now(), silence, heartbeats: heartbeats.clone(), next: None }
    }

    /// The node's report, if its agent showed a sign of life within the silence limit.
    pub fn report<'a>(&mut self, state: Option<&'a NodeState>) -> Option<&'a NodeStateStatus> {
        let state = state?;
        let st = state.status.as_ref()?;
        let lease = state.metadata.name.as_deref().and_then(|n| self.heartbeats.renewed(n));
        let beat = st.heartbeat_time.as_ref().map(|t| t.0).max(lease)?;
        // a heartbeat ahead of this clock is as young as can be
        let age = Duration::try_from(self.now.duration_since(beat)).unwrap_or(Duration::ZERO);
        let left = self.silence.checked_sub(age).filter(|l| !l.is_zero())?;
        self.next = Some(self.next.map_or(left, |n| n.min(left)));
        Some(st)
    }

    /// When the first fresh report read goes stale.
    pub fn next(&self) -> Option<Duration> {
        self.next
    }
}

/// How long the writer waits after a first write for the others that come with it
/// (the passes of several workloads running together).
const LINGER: Duration = Duration::from_millis(20);

/// A NodeState spec write that failed, shared by every pass whose write it carried.
#[derive(Clone, Debug, thiserror::Error)]
#[error("writing NodeState {node}: {source}")]
pub struct WriteError {
    /// The NodeState.
    pub node: String,
    /// The API's refusal.
    pub source: Arc<kube::Error>,
}

/// One pass's write waiting for the writer.
struct Pending {
    node: String,
    body: Value,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// Writes the spec merge patches of every node-local controller's passes. Patches for
/// one node that wait together are folded into one request when they touch different
/// workloads' keys, so the passes of ten sets changing a node at once cost the API,
/// the node's agent and this controller's own watch one write and one event instead
/// of ten. Each pass still learns whether its own writes went through.
#[derive(Clone, Debug)]
pub struct SpecWriter {
    tx: mpsc::UnboundedSender<Pending>,
}

/// The writer's receiving end, driven by [`SpecWrites::drive`].
pub struct SpecWrites {
    rx: mpsc::UnboundedReceiver<Pending>,
    client: Client,
}

impl std::fmt::Debug for SpecWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecWrites").field("waiting", &self.rx.len()).finish_non_exhaustive()
    }
}

impl SpecWriter {
    /// A writer and the loop that sends its patches with `client`.
    pub fn new(client: Client) -> (Self, SpecWrites) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, SpecWrites { rx, client })
    }

    /// Merge-patches each `(node, body)` into that node's NodeState (`body` a merge
    /// patch of `spec.<field>.<key>` entries); a NodeState gone meanwhile is skipped.
    ///
    /// # Errors
    /// The first refusal other than not found, or the writer has stopped.
    pub async fn write(&self, writes: Vec<(String, Value)>) -> Result<(), WriteError> {
        let stopped = |node: String| WriteError { node, source: Arc::new(stopped_error()) };
        let mut waits = Vec::with_capacity(writes.len());
        for (node, body) in writes {
            let (done, wait) = oneshot::channel();
            if self.tx.send(Pending { node: node.clone(), body, done }).is_err() {
                return Err(stopped(node));
            }
            waits.push((wait, node));
        }
        for (wait, node) in waits {
            wait.await.unwrap_or_else(|_| Err(stopped(node)))?;
        }
        Ok(())
    }
}

fn stopped_error() -> kube::Error {
    kube::Error::Service("the NodeState writer has stopped".into())
}

impl SpecWrites {
    /// Sends the patches until `stop`: after the first of a batch arrives, waits
    /// 20 ms for the others, folds them per node and sends them, at most
    /// 32 at once.
    pub async fn drive(mut self, stop: CancellationToken) {
        let api: Api<NodeState> = Api::all(self.client.clone());
        loop {
            let first = tokio::select! {
                p = self.rx.recv() => match p { Some(p) => p, None => return },
                () = stop.cancelled() => return,
            };
            let mut batch = Batch::default();
            batch.add(first);
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                () = stop.cancelled() => return,
            }
            while let Ok(p) = self.rx.try_recv() {
                batch.add(p);
            }
            batch.send(&api).await;
        }
    }
}

/// A node's folded patches, in the order they must go, each with its passes' waits.
type Chain = Vec<(Value, Vec<oneshot::Sender<Result<(), WriteError>>>)>;

/// Patches waiting together, folded per node.
#[derive(Default)]
struct Batch {
    nodes: Vec<(String, Chain)>,
    index: HashMap<String, usize>,
}

impl Batch {
    /// Folds `p` into its node's last patch when they touch different keys;
    /// otherwise it goes after it.
    fn add(&mut self, p: Pending) {
        let i = *self.index.entry(p.node.clone()).or_insert_with(|| {
            self.nodes.push((p.node.clone(), Vec::new()));
            self.nodes.len() - 1
        });
        let chain = &mut self.nodes[i].1;
        match chain.last_mut() {
            Some((body, waits)) if disjoint(body, &p.body) => {
                merge_into(body, p.body);
                waits.push(p.done);
            }
            _ => chain.push((p.body, vec![p.done])),
        }
    }

    async fn send(self, api: &Api<NodeState>) {
        stream::iter(self.nodes)
            .for_each_concurrent(WRITES_IN_FLIGHT, |(node, chain)| async move {
                for (body, waits) in chain {
                    let result = match api.patch(&node, &PatchParams::default(), &Patch::Merge(&body)).await {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                        Err(e) => Err(WriteError { node: node.clone(), source: Arc::new(e) }),
                    };
                    for done in waits {
                        // a pass that stopped waiting has nothing to learn
                        let _ = done.send(result.clone());
                    }
                }
            })
            .await;
    }
}

/// The `(field, key)` pairs under `spec` that a patch writes.
fn keys(body: &Value) -> impl Iterator<Item = (&str, &str)> {
    body.get("spec").and_then(Value::as_object).into_iter().flatten().flat_map(|(field, v)| {
        v.as_object().into_iter().flatten().map(move |(k, _)| (field.as_str(), k.as_str()))
    })
}

/// Whether two patches write different keys (and only `spec` entries), so that one
/// patch holding both does exactly what the two do one after the other.
fn disjoint(a: &Value, b: &Value) -> bool {
    let only_spec = |v: &Value| {
        v.as_object().is_some_and(|o| {
            o.len() == 1
                && o.get("spec")
                    .is_some_and(|s| s.as_object().is_some_and(|s| s.values().all(Value::is_object)))
        })
    };
    only_spec(a) && only_spec(b) && keys(a).all(|ka| keys(b).all(|kb| ka != kb))
}

/// Adds `b`'s entries to `a` (their keys are disjoint).
fn merge_into(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge_into(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, b) => *slot = b,
    }
}

/// The least time between two passes over one workload.
const MIN_PASS: Duration = Duration::from_secs(1);

/// Spaces the passes over each workload at least a second apart. Every agent's
/// report and every permit written is an event that asks for a pass over every
/// workload the node holds; at a thousand nodes they come faster than passes over a
/// thousand nodes end, and each pass that ran would write the workload's status anew.
/// Spaced, a pass takes in all the reports of its second at once.
#[derive(Debug, Default)]
pub struct Throttle {
    last: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    /// `None` when the workload with `uid` may have its pass now (which is then
    /// counted); otherwise how long until it may.
    pub fn wait(&self, uid: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = last.get(uid) {
            let since = now.duration_since(*at);
            if since < MIN_PASS {
                return Some(MIN_PASS - since);
            }
        }
        if last.len() >= 1024 {
            // older passes no longer hold anything back
            last.retain(|_, at| now.duration_since(*at) < MIN_PASS);
        }
        last.insert(uid.to_owned(), now);
        None
    }
}

/// The permits of workloads gone, as one JSON patch per node that holds any: each
/// removal guarded by a test of the permit's uid, so a workload recreated under the
/// same name meanwhile keeps its own. `live(field, key, uid)` says whether the
/// workload under `key` in `field` (`daemonSets` or `broadcastJobs`) with `uid`
/// still exists.
pub fn stale_permits<'a>(
    states: impl IntoIterator<Item = &'a NodeState>,
    live: impl Fn(&str, &str, &str) -> bool,
) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for state in states {
        let spec = &state.spec;
        let held = spec
            .daemon_sets
            .iter()
            .map(|(k, p)| ("daemonSets", k, &p.uid))
            .chain(spec.broadcast_jobs.iter().map(|(k, p)| ("broadcastJobs", k, &p.uid)));
        let mut ops = Vec::new();
        for (field, key, uid) in held {
            if live(field, key, uid) {
                continue;
            }
            // a JSON pointer escapes `~` and `/`
            let path = format!("/spec/{field}/{}", key.replace('~', "~0").replace('/', "~1"));
            ops.push(serde_json::json!({"op": "test", "path": format!("{path}/uid"), "value": uid}));
            ops.push(serde_json::json!({"op": "remove", "path": path}));
        }
        if !ops.is_empty() {
            out.push((state.metadata.name.clone().unwrap_or_default(), serde_json::Value::Array(ops)));
        }
    }
    out
}

/// Applies [`stale_permits`]' patches; a NodeState gone, or a permit rewritten
/// meanwhile (its test fails), is skipped. Returns the NodeStates changed.
///
/// # Errors
/// The first refusal of another kind.
pub async fn take_back(
    client: &Client,
    patches: Vec<(String, serde_json::Value)>,
) -> Result<usize, kube::Error> {
    let api: Api<NodeState> = Api::all(client.clone());
    let results: Vec<Result<bool, kube::Error>> = stream::iter(patches)
        .map(|(node, ops)| {
            let api = api.clone();
            async move {
                let patch: json_patch::Patch =
                    serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
                match api.patch(&node, &PatchParams::default(), &Patch::Json::<()>(patch)).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 422 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().try_fold(0, |n, r| Ok(n + usize::from(r?)))
}

/// How long a sweep waits after a deletion, for the others that come with it.
const SWEEP_DEBOUNCE: Duration = Duration::from_secs(1);
/// How often the permits are swept without a deletion (one missed by a watch that
/// relisted), and how soon after a failed sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(300);
const SWEEP_RETRY: Duration = Duration::from_secs(5);

/// Takes back the permits of deleted DaemonSets and BroadcastJobs until `stop`:
/// once every store has listed (what was deleted while no controller led), at each
/// wake of `gone` (a deletion), and every few minutes. Stale permits do no harm (an
/// agent acts only on workloads it sees, and a recreated workload has another uid),
/// but would pile up in every NodeState.
pub async fn sweep_permits(
    client: Client,
    states: SharedStore<NodeState>,
    daemon_sets: SharedStore<DaemonSet>,
    jobs: SharedStore<BroadcastJob>,
    gone: Arc<Notify>,
    stop: CancellationToken,
) {
    let listed = async {
        states.wait_until_ready().await.is_ok()
            && daemon_sets.wait_until_ready().await.is_ok()
            && jobs.wait_until_ready().await.is_ok()
    };
    tokio::select! {
        ok = listed => if !ok { return },
        () = stop.cancelled() => return,
    }
    loop {
        let live = |field: &str, key: &str, uid: &str| {
            let Some((ns, name)) = key.split_once('/') else { return false };
            let uid = Some(uid);
            if field == "daemonSets" {
                daemon_sets
                    .get(&ObjectRef::new(name).within(ns))
                    .is_some_and(|d| d.metadata.uid.as_deref() == uid)
            } else {
                jobs.get(&ObjectRef::new(name).within(ns)).is_some_and(|j| j.metadata.uid.as_deref() == uid)
            }
        };
        let all = states.state();
        let patches = stale_permits(all.iter().map(AsRef::as_ref), live);
        let wait = match take_back(&client, patches).await {
            Ok(0) => SWEEP_EVERY,
            Ok(nodes) => {
                info!(nodes, "permits of deleted workloads taken back");
                SWEEP_EVERY
            }
            Err(error) => {
                warn!(%error, "cannot take back the permits of deleted workloads; retrying");
                SWEEP_RETRY
            }
        };
        tokio::select! {
            () = gone.notified() => tokio::time::sleep(SWEEP_DEBOUNCE).await,
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;

    fn state(age: Option<u64>) -> NodeState {
        let mut s = NodeState::new("n", Default::default());
        s.status = Some(NodeStateStatus {
            heartbeat_time: age.map(|a| Time(Timestamp::now() - Duration::from_secs(a))),
            ..Default::default()
        });
        s
    }

    #[test]
    fn permits_of_workloads_gone_are_taken_back_guarded_by_uid() {
        use stevedore_proto::crd::node_state::{BroadcastJobPermit, DaemonSetPermit};
        let mut a = NodeState::new("a", Default::default());
        a.spec.daemon_sets.insert(
            "edge/agent".into(),
            DaemonSetPermit { uid: "u1".into(), revision: "r".into(), ..Default::default() },
        );
        a.spec.daemon_sets.insert(
            "edge/gone".into(),
            DaemonSetPermit { uid: "u2".into(), revision: "r".into(), ..Default::default() },
        );
        a.spec.broadcast_jobs.insert("ops/job~x".into(), BroadcastJobPermit { uid: "u3".into() });
        let mut b = NodeState::new("b", Default::default());
        b.spec.daemon_sets.insert(
            "edge/agent".into(),
            DaemonSetPermit { uid: "u1".into(), revision: "r".into(), ..Default::default() },
        );
        let live =
            |field: &str, key: &str, uid: &str| field == "daemonSets" && key == "edge/agent" && uid == "u1";
        let patches = stale_permits([&a, &b], live);
        assert_eq!(patches.len(), 1, "b holds only live permits: {patches:?}");
        assert_eq!(patches[0].0, "a");
        assert_eq!(
            patches[0].1,
            serde_json::json!([
                {"op": "test", "path": "/spec/daemonSets/edge~1gone/uid", "value": "u2"},
                {"op": "remove", "path": "/spec/daemonSets/edge~1gone"},
                {"op": "test", "path": "/spec/broadcastJobs/ops~1job~0x/uid", "value": "u3"},
                {"op": "remove", "path": "/spec/broadcastJobs/ops~1job~0x"},
            ])
        );
        let patch: json_patch::Patch = serde_json::from_value(patches[0].1.clone()).unwrap();
        let mut doc = serde_json::to_value(&a).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        let after: NodeState = serde_json::from_value(doc).unwrap();
        assert_eq!(after.spec.daemon_sets.keys().collect::<Vec<_>>(), ["edge/agent"]);
        assert!(after.spec.broadcast_jobs.is_empty());
    }

    #[test]
    fn writes_to_one_node_fold_unless_they_touch_the_same_key() {
        let mut batch = Batch::default();
        let mut waits = Vec::new();
        let writes = [
            ("a", json!({"spec": {"daemonSets": {"ns/x": {"uid": "1", "waiting": true}}}})),
            ("b", json!({"spec": {"daemonSets": {"ns/x": {"uid": "1"}}}})),
            ("a", json!({"spec": {"daemonSets": {"ns/y": null}, "broadcastJobs": {"ns/j": {"uid": "3"}}}})),
            // the same key again: it must go after the first, not into it
            ("a", json!({"spec": {"daemonSets": {"ns/x": {"waiting": null}}}})),
            ("a", json!({"spec": {"daemonSets": {"ns/z": {"uid": "4"}}}})),
        ];
        for (node, body) in writes.clone() {
            let (done, wait) = oneshot::channel();
            batch.add(Pending { node: node.into(), body, done });
            waits.push(wait);
        }
        let chains: Vec<(String, Vec<Value>, Vec<usize>)> = batch
            .nodes
            .iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    c.iter().map(|(b, _)| b.clone()).collect(),
                    c.iter().map(|(_, w)| w.len()).collect(),
                )
            })
            .collect();
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[0].0, "a");
        assert_eq!(chains[0].2, [2, 2], "two patches for a, two passes' writes in each");
        assert_eq!(
            chains[0].1[0],
            json!({"spec": {"daemonSets": {"ns/x": {"uid": "1", "waiting": true}, "ns/y": null},
                "broadcastJobs": {"ns/j": {"uid": "3"}}}})
        );
        assert_eq!(
            chains[0].1[1],
            json!({"spec": {"daemonSets": {"ns/x": {"waiting": null}, "ns/z": {"uid": "4"}}}})
        );
        assert_eq!((chains[1].0.as_str(), chains[1].2.as_slice()), ("b", [1].as_slice()));
        // the folded patches do what the writes do one after the other
        let start = json!({"spec": {"daemonSets": {"ns/y": {"uid": "2"}}}});
        let (mut one_by_one, mut folded) = (start.clone(), start);
        for (node, body) in &writes {
            if *node == "a" {
                json_patch::merge(&mut one_by_one, body);
            }
        }
        for body in &chains[0].1 {
            json_patch::merge(&mut folded, body);
        }
        assert_eq!(folded, one_by_one);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn passes_over_a_workload_are_spaced() {
        let t = Throttle::default();
        assert_eq!(t.wait("u1"), None, "the first pass runs");
        assert_eq!(t.wait("u2"), None, "another workload's too");
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(t.wait("u1"), Some(Duration::from_millis(700)));
        tokio::time::advance(Duration::from_millis(700)).await;
        assert_eq!(t.wait("u1"), None);
        assert_eq!(t.wait("u1"), Some(MIN_PASS));
    }

    #[test]
    fn a_renewed_lease_keeps_a_report_fresh_and_an_agent_back_is_told() {
        let (hb, now, silence) = (Heartbeats::default(), Timestamp::now(), Duration::from_secs(30));
        let ago = |s: u64| now - Duration::from_secs(s);
        let leases = |age: u64| [("n".to_owned(), ago(age))].into_iter().collect::<HashMap<_, _>>();
        assert!(hb.replace(now, silence, leases(5)), "a first lease is an agent alive");
        assert!(!hb.replace(now, silence, leases(2)), "still alive: nothing new");
        // the report's own heartbeat is 40 s old, its agent's lease 2 s
        let report = state(Some(40));
        assert!(Freshness::new(silence, &hb).report(Some(&report)).is_some());
        assert!(!hb.replace(now, silence, leases(40)), "gone silent");
        assert!(Freshness::new(silence, &hb).report(Some(&report)).is_none());
        assert!(hb.replace(now, silence, leases(1)), "back: every pass must look again");
        assert!(!hb.replace(now, silence, HashMap::new()), "a lease gone is no revival");
        assert_eq!(hb.renewed("n"), None);
    }

    #[test]
    fn only_fresh_reports_count() {
        let (young, old, none) = (state(Some(10)), state(Some(40)), state(None));
        let mut f = Freshness::new(Duration::from_secs(30), &Heartbeats::default());
        assert!(f.report(Some(&old)).is_none());
        assert!(f.report(Some(&none)).is_none(), "no heartbeat yet");
        assert!(f.report(None).is_none());
        assert_eq!(f.next(), None);
        assert!(f.report(Some(&young)).is_some());
        let left = f.next().unwrap();
        assert!(left <= Duration::from_secs(20) && left > Duration::from_secs(15), "{left:?}");
        let mut ahead = state(None);
        ahead.status.as_mut().unwrap().heartbeat_time = Some(Time(Timestamp::now() + Duration::from_secs(5)));
        assert!(f.report(Some(&ahead)).is_some(), "a clock ahead is fresh");
    }
}
