//! Advanced DaemonSet pods on this node. The agent watches the (few, small) sets
//! cluster-wide, its own Node, its own NodeState and the pods bound to its node; it
//! decides locally whether each set targets the node (`proto::placement::daemon_set`,
//! the function the controller counts with), and creates, replaces and deletes the
//! set's pod here ([`plan`]) as far as the controller's permit in `NodeState.spec`
//! allows. It reports each set's pod (revision, ready, available) in
//! `NodeState.status.daemonSets`, at most once per status interval, and at least once
//! per heartbeat interval (`status.heartbeatTime`), so that a silent agent shows.
//!
//! Pods are created as OpenKruise creates them: `generateName: <set>-`, the template's
//! labels plus `controller-revision-hash`, the set as controlling owner, and the
//! DaemonSet tolerations; `spec.nodeName` names this node.

pub mod plan;

use std::{collections::HashMap, sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api, Client, Resource as _, ResourceExt as _,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::reflector::ObjectRef,
};
use serde_json::json;
use stevedore_proto::{
    crd::{
        daemon_set::v1beta1::DaemonSet,
        node_state::{DaemonSetNodeStatus, NodeState, WorkloadRef, workload_key},
    },
    intstr::{self, Percent, Rounding},
    keys, placement,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::node_local::{self, RESYNC, Stores, controlled_by};

/// How long a created pod may take to appear in the watch before it is created again.
const CREATE_EXPECTATION: Duration = Duration::from_secs(30);

/// How the agent runs the node's daemon pods.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node.
    pub node_name: String,
    /// The least time between two NodeState status writes.
    pub status_interval: Duration,
    /// The most time between two NodeState status writes: the controller takes a
    /// report older than a few of these for a silent agent's.
    pub heartbeat: Duration,
}

/// The node's daemon pods.
pub struct Daemons {
    settings: Settings,
    client: Client,
    /// Per set uid: when a pod was created that the watch has not shown yet, and its
    /// name.
    creating: HashMap<String, (Instant, String)>,
    /// The last status written, and when.
    written: Option<(Vec<DaemonSetNodeStatus>, Instant)>,
}

impl std::fmt::Debug for Daemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemons").field("node", &self.settings.node_name).finish_non_exhaustive()
    }
}

/// The pod's Ready condition: whether it is True, and since when.
fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

/// Whether `pod` has been ready for `min_ready` seconds at `now`, and if it is ready
/// but not yet available, how long until it is.
fn available(pod: &Pod, min_ready: i32, now: Timestamp) -> (bool, bool, Option<Duration>) {
    let Some(since) = ready_since(pod) else { return (false, false, None) };
    let due = since + Duration::from_secs(u64::try_from(min_ready.max(0)).unwrap_or(0));
    if min_ready <= 0 || due <= now {
        (true, true, None)
    } else {
        (true, false, Some(Duration::try_from(due.duration_since(now)).unwrap_or(Duration::from_secs(1))))
    }
}

/// The pod the agent creates for `ds` at revision `hash` on `node`.
pub fn new_pod(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = ds.spec.template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(keys::CONTROLLER_REVISION_HASH.to_owned(), hash.to_owned());
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(node.to_owned());
    placement::daemon_pod_tolerations(&mut spec);
    let owner = ds.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    });
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Whether the set's rolling update surges (a non-zero `maxSurge`).
fn surges(ds: &DaemonSet) -> bool {
    let ru = ds.spec.update_strategy.as_ref().and_then(|u| u.rolling_update.as_ref());
    ru.and_then(|r| r.max_surge.as_ref())
        .and_then(|s| intstr::scaled(s, Percent::Integer, 100, Rounding::Up).ok())
        .is_some_and(|n| n > 0)
}

impl Daemons {
    /// Watches and acts until `shutdown`.
    pub async fn run(settings: Settings, client: Client, shutdown: CancellationToken) {
        let node = settings.node_name.clone();
        info!(node = %node, "running the node's DaemonSet pods");
        let me = Self { settings, client: client.clone(), creating: HashMap::new(), written: None };
        node_local::run(&node, client, me, shutdown).await;
    }

    /// One pass over every set; returns when the next pass is due at the latest.
    async fn pass_sets(&mut self, stores: &Stores<DaemonSet>) -> Duration {
        let node_name = self.settings.node_name.clone();
        let Some(node) = stores.nodes.get(&ObjectRef::new(&node_name)) else {
            return RESYNC;
        };
        let state = stores.states.get(&ObjectRef::new(&node_name));
        let now = Timestamp::now();
        let mut next = RESYNC;
        let mut report = Vec::new();
        let pods = stores.pods.state();
        let mut sets = stores.workloads.state();
        sets.sort_by_key(|d| (d.namespace(), d.name_any()));
        for ds in sets {
            let (Some(uid), ns, name) = (ds.uid(), ds.namespace().unwrap_or_default(), ds.name_any()) else {
                continue;
            };
            if ds.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let place = placement::daemon_set(&node, &ds.spec.template);
            let mine: Vec<&Arc<Pod>> = pods
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(&ns) && controlled_by(p, &uid))
                .collect();
            if mine.is_empty() && !place.should_run {
                continue;
            }
            let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
            let views: Vec<plan::PodView> = mine
                .iter()
                .map(|p| {
                    let (_, avail, due) = available(p, min_ready, now);
                    if let Some(d) = due {
                        next = next.min(d);
                    }
                    plan::PodView {
                        name: p.name_any(),
                        uid: p.uid().unwrap_or_default(),
                        revision: p.labels().get(keys::CONTROLLER_REVISION_HASH).cloned(),
                        terminating: p.metadata.deletion_timestamp.is_some(),
                        failed: p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"),
                        available: avail,
                        created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    }
                })
                .collect();
            // the status describes the current spec: its update revision is this spec's
            let st = ds.status.as_ref();
            let hash = st
                .filter(|s| {
                    s.observed_generation.is_some() && s.observed_generation == ds.metadata.generation
                })
                .and_then(|s| s.update_revision.clone());
            let permit = state.as_ref().and_then(|s| s.spec.daemon_sets.get(&workload_key(&ns, &name)));
            let permitted = permit.is_some_and(|p| p.uid == uid && Some(&p.revision) == hash.as_ref());
            if let Some((at, pod)) = self.creating.get(&uid)
                && (views.iter().any(|v| &v.name == pod) || at.elapsed() > CREATE_EXPECTATION)
            {
                self.creating.remove(&uid);
            }
            let surge = surges(&ds);
            let input = plan::Input {
                should_run: place.should_run,
                should_continue: place.should_continue_running,
                permitted,
                hash: hash.clone(),
                surge,
                creating: self.creating.contains_key(&uid),
            };
            for step in plan::decide(&input, &views) {
                match (step, hash.as_deref()) {
                    (plan::Step::Create, Some(h)) => self.create(&ds, h, &node_name).await,
                    (plan::Step::Create, None) => {}
                    (plan::Step::Delete(pod, pod_uid, why), _) => {
                        node_local::delete_pod(&self.client, &ns, &pod, &pod_uid, why).await;
                    }
                }
            }
            // the report: the oldest live pod, as Kubernetes counts a node's daemon pod
            let oldest = mine
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .min_by_key(|p| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), p.name_any()));
            let (ready, avail) = oldest.map_or((false, false), |p| {
                let (r, a, _) = available(p, min_ready, now);
                (r, a)
            });
            report.push(DaemonSetNodeStatus {
                workload: WorkloadRef { namespace: ns, name, uid },
                pod: oldest.map(|p| p.name_any()),
                revision: oldest.and_then(|p| p.labels().get(keys::CONTROLLER_REVISION_HASH).cloned()),
                ready,
                available: avail,
                updated_in_place: false,
            });
        }
        if let Some(wait) = self.report(state.as_deref(), report).await {
            next = next.min(wait);
        }
        next
    }

    async fn create(&mut self, ds: &DaemonSet, hash: &str, node: &str) {
        let ns = ds.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &new_pod(ds, hash, node)).await {
            Ok(p) => {
                info!(daemonset = %ds.name_any(), pod = %p.name_any(), revision = hash, "daemon pod created");
                if let Some(uid) = ds.uid() {
                    self.creating.insert(uid, (Instant::now(), p.name_any()));
                }
            }
            Err(error) => warn!(daemonset = %ds.name_any(), %error, "cannot create the daemon pod"),
        }
    }

    /// Writes the report if it changed and the interval allows; otherwise returns when
    /// to try again.
    async fn report(
        &mut self,
        state: Option<&NodeState>,
        report: Vec<DaemonSetNodeStatus>,
    ) -> Option<Duration> {
        let state = state?;
        let have = state.status.as_ref().map(|s| &s.daemon_sets);
        let same = have == Some(&report) || (have.is_none() && report.is_empty());
        let now = Timestamp::now();
        let beat = state.status.as_ref().and_then(|s| s.heartbeat_time.as_ref()).map(|t| t.0);
        let beat_age = beat.map(|b| Duration::try_from(now.duration_since(b)).unwrap_or(Duration::ZERO));
        let beat_due = beat_age.is_none_or(|a| a >= self.settings.heartbeat);
        if same && !beat_due {
            return beat_age.map(|a| self.settings.heartbeat.saturating_sub(a));
        }
        if let Some((_, at)) = &self.written {
            let due = *at + self.settings.status_interval;
            if due > Instant::now() {
                return Some(due - Instant::now());
            }
        }
        let count = i32::try_from(report.len()).unwrap_or(i32::MAX);
        let beat = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
        let body = json!({"status": {"daemonSets": &report, "daemonSetCount": count, "heartbeatTime": beat}});
        let api: Api<NodeState> = Api::all(self.client.clone());
        match api.patch_status(&state.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => {
                self.written = Some((report, Instant::now()));
                Some(self.settings.heartbeat)
            }
            Err(error) => {
                warn!(%error, "cannot write the NodeState status");
                Some(Duration::from_secs(1))
            }
        }
    }
}

impl node_local::Runner for Daemons {
    type Workload = DaemonSet;

    async fn pass(&mut self, stores: &Stores<DaemonSet>) -> Duration {
        self.pass_sets(stores).await
    }
}
