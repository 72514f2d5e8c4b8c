//! Advanced DaemonSet pods on this node. The agent watches the (few, small) sets
//! cluster-wide, its own Node, its own NodeState and the pods bound to its node; it
//! decides locally whether each set targets the node (`proto::placement::daemon_set`,
//! the function the controller counts with), and creates, replaces and deletes the
//! set's pod here ([`plan`]) as far as the controller's permit in `NodeState.spec`
//! allows; a set's new images are pulled before the node's permit comes. It reports each
//! set's pod (revision, ready, available) in
//! `NodeState.status.daemonSets`, at most once per status interval, and at least once
//! per heartbeat interval (`status.heartbeatTime`), so that a silent agent shows.
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
    crd::{
        daemon_set::{RollingUpdateType, v1beta1::DaemonSet},
        node_state::{DaemonSetNodeStatus, NodeState, WorkloadRef, workload_key},
    },
    inplace,
    intstr::{self, Percent, Rounding},
    keys, placement, pod_write, revision,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::node_local::{self, RESYNC, Stores, controlled_by};

use crate::images::worker::Runtime;

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
    let label = (keys::CONTROLLER_REVISION_HASH.to_owned(), hash.to_owned());
    node_local::owned_pod(ds, None, &ds.spec.template, [label], node, |spec| {
        placement::daemon_pod_tolerations(spec);
        if in_place_type(ds) {
            inplace::add_readiness_gate(&mut spec.readiness_gates);
        }
    })
}

/// Whether the set updates in place when it can.
fn in_place_type(ds: &DaemonSet) -> bool {
    let ru = ds.spec.update_strategy.as_ref().and_then(|u| u.rolling_update.as_ref());
    ru.and_then(|r| r.type_.as_ref()) == Some(&RollingUpdateType::InPlaceIfPossible)
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
    pub async fn run(
        settings: Settings,
        client: Client,
        runtime: Option<Arc<dyn Runtime>>,
        shutdown: CancellationToken,
    ) {
        let node = settings.node_name.clone();
        info!(node = %node, "running the node's DaemonSet pods");
        let me = Self {
            settings,
            client: client.clone(),
            creating: HashMap::new(),
            written: None,
            templates: HashMap::new(),
            runtime,
            prefetched: std::collections::HashSet::new(),
            failed: plan::FailedBackoff::default(),
        };
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
        let uids: std::collections::HashSet<String> = sets.iter().filter_map(|d| d.uid()).collect();
        self.failed.prune(std::time::Instant::now(), |k| uids.contains(k));
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
            for p in mine.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
                if let Some(d) = self.refresh(p, now).await {
                    next = next.min(d);
                }
            }
            // one older pod, a permit, InPlaceIfPossible: can it be done in place?
            let mut in_place = None;
            if let (Some(h), true, false, true) = (hash.as_deref(), permitted, surge, in_place_type(&ds)) {
                let old: Vec<&plan::PodView> = views
                    .iter()
                    .filter(|v| !v.terminating && !v.failed && v.revision.as_deref() != Some(h))
                    .collect();
                if let [one] = old.as_slice()
                    && let Some(rev) = one.revision.as_deref()
                    && let Some(from) = self.template(&ns, &name, rev).await
                    && let Some(to) = self.template(&ns, &name, h).await
                {
                    // both from revision data: the same serialisation on each side
                    match inplace::plan(h, &from, &to) {
                        inplace::Eligibility::InPlace(spec) => in_place = Some(spec),
                        inplace::Eligibility::Recreate(why) => {
                            debug!(daemonset = %name, pod = %one.name, %why, "not in place: recreating");
                        }
                    }
                }
            }
            let backoff_left = self.failed.wait(&uid, std::time::Instant::now());
            if let Some(left) = backoff_left
                && views.iter().any(|v| v.failed && !v.terminating)
            {
                next = next.min(left);
            }
            let input = plan::Input {
                should_run: place.should_run,
                should_continue: place.should_continue_running,
                permitted,
                hash: hash.clone(),
                surge,
                creating: self.creating.contains_key(&uid),
                in_place: in_place.is_some(),
                failed_backoff: backoff_left.is_some(),
            };
            // an update is coming but this node's turn is not: pull its images now
            if let Some(h) = hash.as_deref()
                && !permitted
                && place.should_continue_running
                && views.iter().any(|v| !v.terminating && v.revision.as_deref() != Some(h))
            {
                self.prefetch(&ds);
            }
            for step in plan::decide(&input, &views) {
                match (step, hash.as_deref()) {
                    (plan::Step::Create, Some(h)) => self.create(&ds, h, &node_name).await,
                    (plan::Step::Create | plan::Step::InPlace(_), None) => {}
                    (plan::Step::Delete(pod, pod_uid, why), _) => {
                        if why == plan::FAILED {
                            self.failed.deleted(&uid, std::time::Instant::now());
                        }
                        node_local::delete_pod(&self.client, &ns, &pod, &pod_uid, why).await;
                    }
                    (plan::Step::InPlace(pod), Some(h)) => {
                        if let Some(spec) = &in_place {
                            if let Err(error) = self.update_in_place(&ns, &pod, spec, h).await {
                                warn!(pod.name = %pod, %error, "cannot update the daemon pod in place");
                            }
                            next = next.min(Duration::from_secs(1));
                        }
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
        if spec.changes_containers() {
            pod_write::edit_status(&self.client, ns, pod, |p| {
                pod_write::mark_in_place_ready(p, false, Timestamp::now())
            })
            .await?;
        }
        let labels = BTreeMap::from([(keys::CONTROLLER_REVISION_HASH.to_owned(), hash.to_owned())]);
        let now = Timestamp::now();
        pod_write::edit_pod::<WriteError>(&api, pod, false, |p| {
            inplace::start(p, spec, &labels, 0, now)?;
            Ok(true)
        })
        .await?;
        info!(pod.namespace = ns, pod.name = pod, revision = hash, images = ?spec.container_images, "daemon pod updated in place");
        Ok(())
    }

    /// Pulls the set's images that this agent has not pulled yet, in the background.
    fn prefetch(&mut self, ds: &DaemonSet) {
        let Some(runtime) = self.runtime.clone() else { return };
        let spec = ds.spec.template.spec.as_ref();
        let images = spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers));
        for image in images.filter_map(|c| c.image.clone()) {
            if !self.prefetched.insert(image.clone()) {
                continue;
            }
            let (runtime, set) = (runtime.clone(), ds.name_any());
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
