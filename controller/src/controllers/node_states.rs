//! What the node-local controllers ([`super::daemon_set`], [`super::broadcast_job`])
//! share: an agent's report counts only while it is fresh, and a workload's permits
//! are written as one merge patch of its own key per node, and taken back when the
//! workload is deleted.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt as _, stream};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::reflector::ObjectRef,
};
use stevedore_proto::crd::{
    broadcast_job::v1beta1::BroadcastJob,
    daemon_set::v1beta1::DaemonSet,
    node_state::{NodeState, NodeStateStatus},
};
use tokio::sync::Notify;
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

/// Reads agents' reports as of one instant, and remembers when the first of those
/// still fresh goes stale.
#[derive(Debug)]
pub struct Freshness {
    now: Timestamp,
    silence: Duration,
    next: Option<Duration>,
}

impl Freshness {
    /// Reports as of now; older than `silence`, a report is its silent agent's.
    pub fn new(silence: Duration) -> Self {
        Self { now: Timestamp::now(), silence, next: None }
    }

    /// The node's report, if its agent wrote it within the silence limit.
    pub fn report<'a>(&mut self, state: Option<&'a NodeState>) -> Option<&'a NodeStateStatus> {
        let st = state?.status.as_ref()?;
        // a heartbeat ahead of this clock is as young as can be
        let age = Duration::try_from(self.now.duration_since(st.heartbeat_time.as_ref()?.0))
            .unwrap_or(Duration::ZERO);
        let left = self.silence.checked_sub(age).filter(|l| !l.is_zero())?;
        self.next = Some(self.next.map_or(left, |n| n.min(left)));
        Some(st)
    }

    /// When the first fresh report read goes stale.
    pub fn next(&self) -> Option<Duration> {
        self.next
    }
}

/// Merge-patches each `(node, body)` into that node's NodeState; a NodeState gone
/// meanwhile is skipped.
///
/// # Errors
/// The first refusal other than not found.
pub async fn patch_specs(
    client: &Client,
    writes: Vec<(String, serde_json::Value)>,
) -> Result<(), kube::Error> {
    let api: Api<NodeState> = Api::all(client.clone());
    let results: Vec<Result<(), kube::Error>> = stream::iter(writes)
        .map(|(node, body)| {
            let api = api.clone();
            async move {
                match api.patch(&node, &PatchParams::default(), &Patch::Merge(&body)).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
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
    fn only_fresh_reports_count() {
        let (young, old, none) = (state(Some(10)), state(Some(40)), state(None));
        let mut f = Freshness::new(Duration::from_secs(30));
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
