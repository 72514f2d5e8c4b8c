//! Advanced DaemonSet pods on this node. The agent does not watch the sets (each of
//! their status writes would reach every agent): it watches its own Node, its own
//! NodeState and the pods bound to its node. Each set that concerns the node has an
//! entry in `NodeState.spec.daemonSets` (uid, revision, whether the node may move to
//! it or waits, surge, in place, `minReadySeconds`); the revision's pod template comes
//! from its ControllerRevision, read once (revisions never change). The agent decides
//! locally whether the set targets the node (`proto::placement::daemon_set` on that
//! template, the function the controller counts with), and creates, replaces and
//! deletes the set's pod here ([`plan`]) as far as the entry allows; a waiting node
//! pulls the revision's images before its permit comes. A pod of a set without an
//! entry here is checked against the set itself (one read): gone, or no longer
//! targeting the node, the pod goes; otherwise it stays until the entry comes. It
//! reports each set's pod (revision, ready, available) in
//! `NodeState.status.daemonSets`, at most once per status interval and when it
//! changes (a pod settling waits up to [`SETTLE`] to be reported with its end); its
//! liveness is its heartbeat Lease, and while that cannot be renewed the report is
//! written at least once per heartbeat interval (`status.heartbeatTime`), so that a
//! live agent never shows as silent.
//!
//! Pods are created as OpenKruise creates them: `generateName: <set>-`, the template's
//! labels plus `controller-revision-hash`, the set as controlling owner, and the
//! DaemonSet tolerations; `spec.nodeName` names this node. Under `InPlaceIfPossible`
//! they carry the `InPlaceUpdateReady` readiness gate, and a change of images or
//! metadata only is made in place by the shared engine (`proto::inplace`, the
//! CloneSet's): the agent patches the pod, the kubelet restarts the containers, and
//! the agent sets `InPlaceUpdateReady` back to True once they run the new images.

pub mod plan;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::ControllerRevision,
        core::v1::{Pod, PodTemplateSpec},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams, PostParams},
    runtime::reflector::ObjectRef,
};
use serde_json::json;
use stevedore_proto::cri::{ImageSpec, PullImageRequest};
use stevedore_proto::{
    crd::common::LifecycleHook,
    crd::{
        daemon_set::v1beta1::DaemonSet,
        node_state::{DaemonSetNodeStatus, DaemonSetPermit, NodeState, WorkloadRef},
    },
    inplace, keys, lifecycle, placement, pod_write, revision,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::node_local::{self, RESYNC, Stores, controlled_by};
use crate::node_pods::NodePods;

use crate::images::worker::Runtime;

/// How long a created pod may take to appear in the watch before it is created again.
const CREATE_EXPECTATION: Duration = Duration::from_secs(30);

/// How long a report that differs from the last one only by the node's pods settling
/// (a new pod, or one moving to another revision, not ready yet) waits for them to
/// become ready, so that one write carries the whole step instead of one for its
/// start and one for its end.
pub const SETTLE: Duration = Duration::from_secs(5);

/// How the agent runs the node's daemon pods.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node.
    pub node_name: String,
    /// The least time between two NodeState status writes.
    pub status_interval: Duration,
    /// Whether the heartbeat Lease is being renewed; while it is not, the report is
    /// written at least once per `heartbeat` (`status.heartbeatTime`).
    pub lease: crate::heartbeat::Beating,
    /// The heartbeat interval.
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
    /// Since when the report has differed from the written one only by pods settling.
    settling_since: Option<Instant>,
    /// Pods this agent started to update in place, by name, with the revision they
    /// move to, until they are ready there.
    moving: HashMap<String, String>,
    /// Pod templates of revisions read (`<namespace>/<revision name>`); revisions
    /// never change.
    templates: HashMap<String, PodTemplateSpec>,
    /// The node's runtime, to pull a set's new images before the node's turn comes;
    /// `None`: no pre-download (hollow nodes).
    runtime: Option<Arc<dyn Runtime>>,
    /// Images already pre-downloaded or being pulled.
    prefetched: std::collections::HashSet<String>,
    /// Kubernetes' backoff before a failed pod of a set is replaced again.
    failed: plan::FailedBackoff,
    /// Sets read because their pods are here without an entry (read again after a
    /// resync).
    looked_up: node_local::Workloads<DaemonSet>,
}

/// Why a pod write failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    InPlace(#[from] inplace::InPlaceError),
}

impl std::fmt::Debug for Daemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemons").field("node", &self.settings.node_name).finish_non_exhaustive()
    }
}

/// The pod's Ready condition: whether it is True, and since when. A readiness gate
/// not True (`InPlaceUpdateReady` set False as an in-place update starts) makes it not
/// ready at once, as the kubelet's next status will say.
fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let is_true = |kind: &str| conditions.iter().any(|c| c.type_ == kind && c.status == "True");
    let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref());
    if gates.is_some_and(|g| g.iter().any(|g| !is_true(&g.condition_type))) {
        return None;
    }
    let c = conditions.iter().find(|c| c.type_ == "Ready")?;
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

/// When an unchanged report must be written again: never while the heartbeat Lease
/// is renewed (`None`); otherwise it is the heartbeat, due `every` after the last one
/// (`Some(ZERO)`: now).
fn unchanged_report_due(
    lease_renewing: bool,
    last_beat: Option<Timestamp>,
    now: Timestamp,
    every: Duration,
) -> Option<Duration> {
    if lease_renewing {
        return None;
    }
    let age =
        last_beat.map_or(every, |b| Duration::try_from(now.duration_since(b)).unwrap_or(Duration::ZERO));
    Some(every.saturating_sub(age))
}

/// Whether the report `now` differs from the written `was` only by pods settling: a
/// set whose pod here is new (the last report had none), has moved to another
/// revision, or is among `moving` (an in-place update this agent started, whose
/// readiness drops a moment before its revision label changes), and is not ready
/// yet. The controller already counts such a node as unavailable, or as holding the
/// permit it granted for the move, so a later report of the step loses no safety;
/// anything else (a pod gone, one of the same revision no longer ready, a pod
/// replaced without a revision change) is news it must get.
fn only_settling(
    was: &[DaemonSetNodeStatus],
    now: &[DaemonSetNodeStatus],
    moving: &HashMap<String, String>,
) -> bool {
    let find = |list: &'_ [DaemonSetNodeStatus], uid: &str| list.iter().position(|d| d.workload.uid == uid);
    was.iter().all(|w| find(now, &w.workload.uid).is_some())
        && now.iter().any(|r| find(was, &r.workload.uid).is_none_or(|i| was[i] != *r))
        && now.iter().all(|r| {
            let w = find(was, &r.workload.uid).map(|i| &was[i]);
            w == Some(r)
                || r.pod.is_some()
                    && !r.ready
                    && w.is_none_or(|w| {
                        w.workload == r.workload
                            && (w.pod.is_none()
                                || w.revision != r.revision
                                || r.pod.as_ref().is_some_and(|p| moving.contains_key(p)))
                    })
        })
}

/// The pod the agent creates for the set `<ns>/<name>` (`uid`) at revision `hash`
/// (whose pod template is `template`) on `node`.
pub fn new_pod(
    ns: &str,
    name: &str,
    uid: &str,
    template: &PodTemplateSpec,
    hash: &str,
    in_place: bool,
    node: &str,
) -> Pod {
    let label = (keys::CONTROLLER_REVISION_HASH.to_owned(), hash.to_owned());
    let owner = node_local::owner_ref::<DaemonSet>(None, ns, name, uid);
    node_local::owned_pod(owner, template, [label], node, |spec| {
        placement::daemon_pod_tolerations(spec);
        if in_place {
            inplace::add_readiness_gate(&mut spec.readiness_gates);
        }
    })
}

/// A set the node has to do with: an entry in its NodeState, or a pod here.
#[derive(Debug)]
struct Target {
    namespace: String,
    name: String,
    uid: String,
    /// Its entry in the NodeState, if it has one.
    entry: Option<DaemonSetPermit>,
}

/// The sets with an entry in `state`, and those whose pods are among `pods`, by
/// namespace and name.
fn targets(state: Option<&NodeState>, pods: &[Arc<Pod>]) -> Vec<Target> {
    let mut out: Vec<Target> = state
        .iter()
        .flat_map(|s| &s.spec.daemon_sets)
        .filter_map(|(key, e)| {
            let (ns, name) = key.split_once('/')?;
            Some(Target {
                namespace: ns.into(),
                name: name.into(),
                uid: e.uid.clone(),
                entry: Some(e.clone()),
            })
        })
        .collect();
    for (uid, (namespace, name)) in node_local::pod_owners::<DaemonSet>(pods) {
        if !out.iter().any(|t| t.uid == uid) {
            out.push(Target { namespace, name, uid, entry: None });
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name, &a.uid).cmp(&(&b.namespace, &b.name, &b.uid)));
    out
}

/// What the agent knows of a set here this pass.
#[derive(Debug)]
struct SetHere {
    /// Whether the set targets the node.
    place: placement::Placement,
    /// The pod template of the entry's revision (none without an entry).
    template: Option<PodTemplateSpec>,
    /// The set's `minReadySeconds`.
    min_ready: i32,
    /// The set's `lifecycle.preDelete` hook.
    pre_delete: Option<LifecycleHook>,
}

impl Daemons {
    /// Watches and acts until `shutdown` (alone: the agent runs it beside the
    /// BroadcastJob runner on one set of watches, see [`node_local::run`]).
    pub async fn run(
        settings: Settings,
        client: Client,
        runtime: Option<Arc<dyn Runtime>>,
        shutdown: CancellationToken,
    ) {
        let node = settings.node_name.clone();
        let pods = NodePods::start(&node, client.clone(), shutdown.clone());
        node_local::run(&node, client.clone(), &pods, Self::new(settings, client, runtime), shutdown).await;
    }

    /// The runner of `settings.node_name`'s daemon pods.
    pub fn new(settings: Settings, client: Client, runtime: Option<Arc<dyn Runtime>>) -> Self {
        info!(node = %settings.node_name, "running the node's DaemonSet pods");
        Self {
            settings,
            client,
            creating: HashMap::new(),
            written: None,
            settling_since: None,
            moving: HashMap::new(),
            templates: HashMap::new(),
            runtime,
            prefetched: std::collections::HashSet::new(),
            failed: plan::FailedBackoff::default(),
            looked_up: node_local::Workloads::new(false),
        }
    }

    /// One pass over every set with an entry in the NodeState or a pod here; returns
    /// when the next pass is due at the latest.
    async fn pass_sets(&mut self, stores: &Stores) -> Duration {
        let node_name = self.settings.node_name.clone();
        let Some(node) = stores.nodes.get(&ObjectRef::new(&node_name)) else {
            return RESYNC;
        };
        let state = stores.states.get(&ObjectRef::new(&node_name));
        let now = Timestamp::now();
        let mut next = RESYNC;
        let mut report = Vec::new();
        let pods = stores.pods.state();
        let targets = targets(state.as_deref(), &pods);
        let uids: std::collections::HashSet<&str> = targets.iter().map(|t| t.uid.as_str()).collect();
        self.failed.prune(std::time::Instant::now(), |k| uids.contains(k));
        self.looked_up.retain(|k| uids.contains(k));
        self.moving.retain(|name, rev| {
            pods.iter().any(|p| {
                p.name_any() == *name
                    && p.metadata.deletion_timestamp.is_none()
                    && !(p.labels().get(keys::CONTROLLER_REVISION_HASH) == Some(rev)
                        && ready_since(p).is_some())
            })
        });
        for Target { namespace: ns, name, uid, entry } in targets {
            let mine: Vec<&Arc<Pod>> = pods
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(&ns) && controlled_by(p, &uid))
                .collect();
            // What the node may do, from its entry and the entry revision's template; a
            // set without an entry here (a pod of it is) is looked up: gone, or no longer
            // targeting the node, its pods go; else they stay until an entry comes.
            let set = match &entry {
                Some(e) => self.template(&ns, &name, &e.revision).await.map(|t| SetHere {
                    place: placement::daemon_set(&node, &t),
                    template: Some(t),
                    min_ready: e.min_ready_seconds,
                    pre_delete: e.pre_delete.clone(),
                }),
                None => self.looked_up.get(&self.client, &ns, &name, &uid).await.map(|found| match found {
                    Some(ds) => SetHere {
                        place: placement::daemon_set(&node, &ds.spec.template),
                        template: None,
                        min_ready: ds.spec.min_ready_seconds.unwrap_or(0),
                        pre_delete: ds.spec.lifecycle.as_ref().and_then(|l| l.pre_delete.clone()),
                    },
                    None => {
                        SetHere { place: node_local::GONE, template: None, min_ready: 0, pre_delete: None }
                    }
                }),
            };
            if mine.is_empty() && set.as_ref().is_none_or(|s| !s.place.should_run) {
                continue;
            }
            let min_ready = set
                .as_ref()
                .map(|s| s.min_ready)
                .or_else(|| entry.as_ref().map(|e| e.min_ready_seconds))
                .unwrap_or(0);
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
            if let Some(set) = &set {
                let steps = self.act(&ns, &name, &uid, entry.as_ref(), set, &mine, &views, &node_name).await;
                next = next.min(steps);
            }
            for p in mine.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
                if let Some(d) = self.refresh(p, now).await {
                    next = next.min(d);
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
                updated_in_place: oldest.is_some_and(|p| {
                    let label = p.labels().get(keys::CONTROLLER_REVISION_HASH);
                    inplace::state(p).ok().flatten().is_some_and(|s| Some(&s.revision) == label)
                }),
            });
        }
        if let Some(wait) = self.report(state.as_deref(), report).await {
            next = next.min(wait);
        }
        next
    }

    /// Decides and takes the steps for one set here; returns when to look again.
    #[expect(clippy::too_many_arguments, reason = "one set's facts, gathered by the pass")]
    async fn act(
        &mut self,
        ns: &str,
        name: &str,
        uid: &str,
        entry: Option<&DaemonSetPermit>,
        set: &SetHere,
        pods: &[&Arc<Pod>],
        views: &[plan::PodView],
        node_name: &str,
    ) -> Duration {
        let mut next = RESYNC;
        let hash = entry.map(|e| e.revision.clone());
        let permitted = entry.is_some_and(|e| !e.waiting);
        let (surge, in_place_type) = entry.map_or((false, false), |e| (e.surge, e.in_place));
        if let Some((at, pod)) = self.creating.get(uid)
            && (views.iter().any(|v| &v.name == pod) || at.elapsed() > CREATE_EXPECTATION)
        {
            self.creating.remove(uid);
        }
        // one older pod, a permit, InPlaceIfPossible: can it be done in place?
        let mut in_place = None;
        if let (Some(h), true, false, true, Some(to)) =
            (hash.as_deref(), permitted, surge, in_place_type, set.template.as_ref())
        {
            let old: Vec<&plan::PodView> = views
                .iter()
                .filter(|v| !v.terminating && !v.failed && v.revision.as_deref() != Some(h))
                .collect();
            if let [one] = old.as_slice()
                && let Some(rev) = one.revision.as_deref()
                && let Some(from) = self.template(ns, name, rev).await
            {
                // both from revision data: the same serialisation on each side
                match inplace::plan(h, &from, to) {
                    inplace::Eligibility::InPlace(spec) => in_place = Some(spec),
                    inplace::Eligibility::Recreate(why) => {
                        debug!(daemonset = %name, pod = %one.name, %why, "not in place: recreating");
                    }
                }
            }
        }
        let backoff_left = self.failed.wait(uid, std::time::Instant::now());
        if let Some(left) = backoff_left
            && views.iter().any(|v| v.failed && !v.terminating)
        {
            next = next.min(left);
        }
        let input = plan::Input {
            should_run: set.place.should_run,
            should_continue: set.place.should_continue_running,
            permitted,
            hash: hash.clone(),
            surge,
            creating: self.creating.contains_key(uid),
            in_place: in_place.is_some(),
            failed_backoff: backoff_left.is_some(),
        };
        // an update is coming but this node's turn is not: pull its images now
        if let (Some(h), Some(t)) = (hash.as_deref(), set.template.as_ref())
            && !permitted
            && set.place.should_continue_running
            && views.iter().any(|v| !v.terminating && v.revision.as_deref() != Some(h))
        {
            self.prefetch(name, t);
        }
        let mut deleted = Vec::new();
        for step in plan::decide(&input, views) {
            match (step, hash.as_deref(), set.template.as_ref()) {
                (plan::Step::Create, Some(h), Some(t)) => {
                    let pod = new_pod(ns, name, uid, t, h, in_place_type, node_name);
                    self.create(name, uid, h, &pod).await;
                }
                (plan::Step::Delete(pod, pod_uid, why), _, _) => {
                    let held = pods.iter().find(|p| p.name_any() == pod);
                    if let Some(p) = held
                        && lifecycle::hooked(p, set.pre_delete.as_ref())
                    {
                        self.prepare_delete(p, why).await;
                        continue;
                    }
                    if why == plan::FAILED {
                        self.failed.deleted(uid, std::time::Instant::now());
                    }
                    node_local::delete_pod(&self.client, ns, &pod, &pod_uid, why).await;
                    deleted.push(pod);
                }
                (plan::Step::InPlace(pod), Some(h), _) => {
                    if let Some(spec) = &in_place {
                        self.moving.insert(pod.clone(), h.to_owned());
                        if let Err(error) = self.update_in_place(ns, &pod, spec, h).await {
                            warn!(pod.name = %pod, %error, "cannot update the daemon pod in place");
                        }
                        next = next.min(Duration::from_secs(1));
                    }
                }
                (plan::Step::Create | plan::Step::InPlace(_), _, _) => {}
            }
        }
        // a pod prepared for deletion goes once its preDelete hook lets go
        for p in pods {
            let name = p.name_any();
            if lifecycle::current_state(p) == lifecycle::state::PREPARING_DELETE
                && p.metadata.deletion_timestamp.is_none()
                && !deleted.contains(&name)
                && !lifecycle::hooked(p, set.pre_delete.as_ref())
            {
                let pod_uid = p.uid().unwrap_or_default();
                node_local::delete_pod(&self.client, ns, &name, &pod_uid, "its preDelete hook let go").await;
            }
        }
        next
    }

    /// Moves `pod`, which the set's preDelete hook holds, to `PreparingDelete` (once).
    async fn prepare_delete(&self, pod: &Pod, why: &str) {
        if lifecycle::current_state(pod) == lifecycle::state::PREPARING_DELETE {
            return;
        }
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let patch = lifecycle::state_patch(lifecycle::state::PREPARING_DELETE, Timestamp::now());
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                info!(pod.namespace = %ns, pod.name = %name, reason = why, "held by the preDelete hook: PreparingDelete")
            }
            Err(error) => warn!(pod.name = %name, %error, "cannot mark the pod PreparingDelete"),
        }
    }

    /// The pod template of the set's revision `hash` (`<set>-<hash>`, or a legacy
    /// revision named `hash`), read once.
    async fn template(&mut self, ns: &str, set: &str, hash: &str) -> Option<PodTemplateSpec> {
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        for name in [format!("{set}-{hash}"), hash.to_owned()] {
            let key = format!("{ns}/{name}");
            if let Some(t) = self.templates.get(&key) {
                return Some(t.clone());
            }
            match api.get_opt(&name).await {
                Ok(Some(r)) => {
                    let data = r.data.map(|d| d.0).unwrap_or_default();
                    match revision::template_from_data(&data) {
                        Ok(t) => {
                            self.templates.insert(key, t.clone());
                            return Some(t);
                        }
                        Err(error) => {
                            warn!(revision = %name, %error, "the revision holds no pod template");
                            return None;
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    warn!(revision = %name, %error, "cannot read the revision");
                    return None;
                }
            }
        }
        None
    }

    /// Carries an in-place update on (grace, next batch) and keeps the pod's
    /// `InPlaceUpdateReady` condition; returns when to look again.
    async fn refresh(&self, pod: &Pod, now: Timestamp) -> Option<Duration> {
        match pod_write::refresh_in_place(&self.client, pod, now).await {
            Ok(pod_write::Refreshed::Grace(left)) => Some(left),
            Ok(pod_write::Refreshed::Updating) => Some(Duration::from_secs(1)),
            Ok(_) => None,
            Err(error) => {
                warn!(pod.name = %pod.name_any(), %error, "cannot carry the in-place update on");
                Some(Duration::from_secs(1))
            }
        }
    }

    /// Starts updating `pod` in place to revision `hash`.
    async fn update_in_place(
        &self,
        ns: &str,
        pod: &str,
        spec: &inplace::UpdateSpec,
        hash: &str,
    ) -> Result<(), WriteError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let labels = BTreeMap::from([(keys::CONTROLLER_REVISION_HASH.to_owned(), hash.to_owned())]);
        if pod_write::start_in_place::<WriteError>(&api, pod, spec, &labels, 0).await? {
            info!(pod.namespace = ns, pod.name = pod, revision = hash, images = ?spec.container_images, "daemon pod updated in place");
        }
        Ok(())
    }

    /// Pulls the images of set `set`'s `template` that this agent has not pulled yet,
    /// in the background.
    fn prefetch(&mut self, set: &str, template: &PodTemplateSpec) {
        let Some(runtime) = self.runtime.clone() else { return };
        let spec = template.spec.as_ref();
        let images = spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers));
        for image in images.filter_map(|c| c.image.clone()) {
            if !self.prefetched.insert(image.clone()) {
                continue;
            }
            let (runtime, set) = (runtime.clone(), set.to_owned());
            tokio::spawn(async move {
                match runtime.present(image.clone()).await {
                    Ok(Some(id)) => {
                        info!(daemonset = %set, %image, image.id = %id, already = true, "image pre-downloaded for the update");
                        return;
                    }
                    Ok(None) => {}
                    Err(error) => debug!(%image, %error, "cannot ask the runtime for the image"),
                }
                let req = PullImageRequest {
                    image: Some(ImageSpec { image: image.clone(), ..ImageSpec::default() }),
                    ..PullImageRequest::default()
                };
                let (progress, mut sink) = tokio::sync::mpsc::channel(8);
                tokio::spawn(async move { while sink.recv().await.is_some() {} });
                match runtime.pull(req, progress).await {
                    Ok(id) => {
                        info!(daemonset = %set, %image, image.id = %id, already = false, "image pre-downloaded for the update");
                    }
                    Err(error) => warn!(daemonset = %set, %image, %error, "cannot pre-download the image"),
                }
            });
        }
    }

    async fn create(&mut self, set: &str, uid: &str, hash: &str, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), pod).await {
            Ok(p) => {
                info!(daemonset = %set, pod = %p.name_any(), revision = hash, "daemon pod created");
                self.creating.insert(uid.to_owned(), (Instant::now(), p.name_any()));
            }
            Err(error) => warn!(daemonset = %set, %error, "cannot create the daemon pod"),
        }
    }

    /// Writes the report if it changed and the interval allows; otherwise returns when
    /// to try again. (The agent's liveness is its heartbeat Lease, see
    /// [`crate::heartbeat`]; an unchanged report is not written again.)
    async fn report(
        &mut self,
        state: Option<&NodeState>,
        report: Vec<DaemonSetNodeStatus>,
    ) -> Option<Duration> {
        let state = state?;
        let have = state.status.as_ref().map(|s| &s.daemon_sets);
        let same = have == Some(&report) || (have.is_none() && report.is_empty());
        let beat = state.status.as_ref().and_then(|s| s.heartbeat_time.as_ref()).map(|t| t.0);
        let beat = unchanged_report_due(
            self.settings.lease.renewing(),
            beat,
            Timestamp::now(),
            self.settings.heartbeat,
        );
        if same {
            self.settling_since = None;
            match beat {
                Some(wait) if wait.is_zero() => {}
                wait => return wait,
            }
        } else if only_settling(have.map_or(&[], Vec::as_slice), &report, &self.moving)
            && beat != Some(Duration::ZERO)
        {
            let since = *self.settling_since.get_or_insert_with(Instant::now);
            let due = since + SETTLE;
            if due > Instant::now() {
                return Some(due - Instant::now());
            }
        }
        if let Some((_, at)) = &self.written {
            let due = *at + self.settings.status_interval;
            if due > Instant::now() {
                return Some(due - Instant::now());
            }
        }
        let count = i32::try_from(report.len()).unwrap_or(i32::MAX);
        let beat = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
        let body = json!({"status": {"daemonSets": &report, "daemonSetCount": count, "heartbeatTime": beat}});
        let api: Api<NodeState> = Api::all(self.client.clone());
        match api.patch_status(&state.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => {
                self.written = Some((report, Instant::now()));
                self.settling_since = None;
                (!self.settings.lease.renewing()).then_some(self.settings.heartbeat)
            }
            Err(error) => {
                warn!(%error, "cannot write the NodeState status");
                Some(Duration::from_secs(1))
            }
        }
    }
}

impl node_local::Runner for Daemons {
    async fn pass(&mut self, stores: &Stores) -> Duration {
        self.pass_sets(stores).await
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ObjectMeta;
    use stevedore_proto::crd::node_state::NodeStateSpec;

    use super::*;

    #[test]
    fn unchanged_reports_beat_only_while_the_lease_cannot() {
        let (now, every) = (Timestamp::now(), Duration::from_secs(20));
        let ago = |s: u64| Some(now - Duration::from_secs(s));
        assert_eq!(unchanged_report_due(true, None, now, every), None, "the Lease beats");
        assert_eq!(unchanged_report_due(true, ago(60), now, every), None);
        assert_eq!(unchanged_report_due(false, None, now, every), Some(Duration::ZERO), "never beaten");
        assert_eq!(unchanged_report_due(false, ago(5), now, every), Some(Duration::from_secs(15)));
        assert_eq!(unchanged_report_due(false, ago(25), now, every), Some(Duration::ZERO));
    }

    #[test]
    fn a_readiness_gate_not_true_makes_the_pod_not_ready() {
        use k8s_openapi::api::core::v1::{PodCondition, PodReadinessGate, PodSpec, PodStatus};
        let condition = |kind: &str, status: &str| PodCondition {
            type_: kind.into(),
            status: status.into(),
            ..PodCondition::default()
        };
        let mut pod = Pod {
            spec: Some(PodSpec {
                readiness_gates: Some(vec![PodReadinessGate { condition_type: "InPlaceUpdateReady".into() }]),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![condition("Ready", "True"), condition("InPlaceUpdateReady", "True")]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        assert!(ready_since(&pod).is_some());
        pod.status.as_mut().unwrap().conditions.as_mut().unwrap()[1].status = "False".into();
        assert!(ready_since(&pod).is_none(), "the update started; the kubelet has not said so yet");
        pod.status.as_mut().unwrap().conditions.as_mut().unwrap().pop();
        assert!(ready_since(&pod).is_none(), "a gate without its condition");
    }

    #[test]
    fn only_a_new_or_moved_pod_not_yet_ready_may_wait_to_be_reported() {
        let entry = |uid: &str, pod: Option<&str>, rev: &str, ready: bool| DaemonSetNodeStatus {
            workload: WorkloadRef { namespace: "edge".into(), name: uid.into(), uid: uid.into() },
            pod: pod.map(Into::into),
            revision: pod.map(|_| rev.into()),
            ready,
            available: ready,
            updated_in_place: false,
        };
        let was = [entry("a", Some("a-1"), "h1", true), entry("b", None, "", false)];
        let none = HashMap::new();
        let settling = |now: &[DaemonSetNodeStatus]| only_settling(&was, now, &none);
        // a pod moved to a new revision, and a new pod, neither ready yet
        assert!(settling(&[entry("a", Some("a-1"), "h2", false), entry("b", None, "", false)]));
        assert!(settling(&[entry("a", Some("a-1"), "h1", true), entry("b", Some("b-1"), "h1", false)]));
        assert!(settling(&[entry("a", Some("a-2"), "h2", false), entry("b", Some("b-1"), "h1", false)]));
        assert!(
            only_settling(&[], &[entry("a", Some("a-1"), "h1", false)], &none),
            "the first report of a new pod"
        );
        // nothing changed: nothing to wait for
        assert!(!settling(&was));
        // news: ready, gone, readiness lost at the same revision, replaced at the same one
        assert!(!settling(&[entry("a", Some("a-1"), "h2", true), entry("b", None, "", false)]));
        assert!(!settling(&[entry("a", None, "", false), entry("b", None, "", false)]));
        assert!(!settling(&[entry("a", Some("a-1"), "h1", false), entry("b", None, "", false)]));
        assert!(!settling(&[entry("a", Some("a-2"), "h1", false), entry("b", None, "", false)]));
        assert!(!settling(&[entry("a", Some("a-1"), "h1", true)]), "a set's entry gone");
        // readiness lost at the same revision, as an in-place update this agent started
        // begins: the revision label follows a moment later
        let moving = HashMap::from([("a-1".to_owned(), "h2".to_owned())]);
        let now = [entry("a", Some("a-1"), "h1", false), entry("b", None, "", false)];
        assert!(only_settling(&was, &now, &moving));
        // one settling change does not hold back news beside it
        assert!(!settling(&[entry("a", Some("a-1"), "h2", false), entry("b", Some("b-1"), "h1", true)]));
    }

    fn pod(ns: &str, owner: (&str, &str, &str, &str)) -> Arc<Pod> {
        let (api_version, kind, name, uid) = owner;
        Arc::new(Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: api_version.into(),
                    kind: kind.into(),
                    name: name.into(),
                    uid: uid.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        })
    }

    #[test]
    fn targets_are_the_entries_and_the_owners_of_pods_here() {
        let mut state = NodeState::new("n1", NodeStateSpec::default());
        let entry = DaemonSetPermit { uid: "u1".into(), revision: "h1".into(), ..DaemonSetPermit::default() };
        state.spec.daemon_sets.insert("edge/agent".into(), entry.clone());
        let pods = [
            pod("edge", ("apps.kruise.io/v1beta1", "DaemonSet", "agent", "u1")),
            // an older served version's owner, no entry: looked up
            pod("edge", ("apps.kruise.io/v1alpha1", "DaemonSet", "logs", "u2")),
            // Kubernetes' own DaemonSet, and a CloneSet: not ours to run
            pod("edge", ("apps/v1", "DaemonSet", "kube-proxy", "u3")),
            pod("edge", ("apps.kruise.io/v1alpha1", "CloneSet", "web", "u4")),
        ];
        let got: Vec<(String, String, String, bool)> = targets(Some(&state), &pods)
            .into_iter()
            .map(|t| (t.namespace, t.name, t.uid, t.entry.is_some()))
            .collect();
        let want = [("edge", "agent", "u1", true), ("edge", "logs", "u2", false)]
            .map(|(n, m, u, e)| (n.to_owned(), m.to_owned(), u.to_owned(), e));
        assert_eq!(got, want);
        assert!(targets(None, &[]).is_empty());
    }

    #[test]
    fn new_pods_come_from_the_revision_template() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_owned(), "agent".to_owned())].into()),
                ..ObjectMeta::default()
            }),
            spec: Some(k8s_openapi::api::core::v1::PodSpec::default()),
        };
        let pod = new_pod("edge", "agent", "u1", &template, "h1", true, "n1");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("edge"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(
            (labels["app"].as_str(), labels[keys::CONTROLLER_REVISION_HASH].as_str()),
            ("agent", "h1")
        );
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("apps.kruise.io/v1beta1", "DaemonSet", "agent", "u1")
        );
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        let gates = spec.readiness_gates.unwrap();
        assert!(gates.iter().any(|g| g.condition_type == "InPlaceUpdateReady"), "{gates:?}");
        assert!(spec.tolerations.is_some_and(|t| !t.is_empty()), "the DaemonSet tolerations");
    }
}
