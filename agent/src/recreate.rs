//! Container recreation: the agent handles the ContainerRecreateRequests (CRR) of the
//! pods on its node, as OpenKruise's daemon does.
//!
//! - It watches only CRRs labelled `crr.apps.kruise.io/node-name=<node>` and
//!   `crr.apps.kruise.io/active=true`, and reads the pods with `spec.nodeName=<node>`
//!   from the agent's one watch of them ([`crate::node_pods`]).
//! - Per pod one request is handled at a time: one already Recreating, else the
//!   oldest; the others are marked Pending with a message naming the one that goes
//!   first.
//! - The handled request is Recreating while the agent works; each container goes
//!   Pending → Recreating → Succeeded or Failed ([`plan`] decides). A container is
//!   recreated by running its preStop hook (from the request), then either the
//!   proxy's `RecreateContainer` (proxy mode: stop, create and start in the same
//!   sandbox, after which the agent runs the pod spec's postStart hook in the new
//!   container) or CRI `StopContainer`, after which kubelet restarts it and runs
//!   postStart itself (kubelet mode, and proxy mode's fallback when the proxy has no
//!   control API or no record of the container).
//! - At the end the request is Completed with `completionTime` and a message. The
//!   controller may complete it too (deadline, pod gone, silent agent): status writes
//!   are merge patches carrying the resourceVersion they were computed from, so a
//!   write over a newer object fails with a conflict and the agent reads it again.
//! - Status writes are rate limited node-wide ([`STATUS_WRITES_PER_SECOND`]).

pub mod hooks;
pub mod plan;

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::{
    api::core::v1::{ContainerStatus, Pod},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams},
    runtime::{
        WatchStreamExt as _,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;
use stevedore_proto::{
    crd::container_recreate_request::{
        ContainerRecreatePhase, ContainerRecreateRequest, ContainerRecreateRequestContainer,
        ContainerRecreateRequestContainerRecreateState, ContainerRecreateRequestPhase,
        ContainerRecreateRequestStatus, FailurePolicy,
    },
    keys,
};
use tokio::{sync::Notify, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use self::plan::{Assessment, Inputs, Killed, bare_id};
use crate::{
    metrics::Metrics,
    node_pods::{NodePods, PodEvent},
    runtime::Containers,
};

/// Node-wide cap on CRR status writes.
pub const STATUS_WRITES_PER_SECOND: u32 = 20;
/// How often a request under way is looked at again without an event.
const POLL: Duration = Duration::from_secs(1);
/// How soon a pass runs again after a write lost to a newer object.
const RETRY: Duration = Duration::from_millis(200);
/// kubelet's least grace for the stop after a preStop hook.
const MIN_GRACE_SECONDS: i64 = 2;
/// How long a postStart hook may take (kubelet gives it no limit of its own; the agent
/// does not wait forever).
const POST_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How containers are recreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The proxy's `RecreateContainer`, falling back to [`Mode::Kubelet`] when the
    /// proxy cannot.
    #[default]
    Proxy,
    /// CRI `StopContainer`; kubelet restarts the container.
    Kubelet,
}

impl Mode {
    /// Its name, as the flag and the metric label spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::Kubelet => "kubelet",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "proxy" => Ok(Mode::Proxy),
            "kubelet" => Ok(Mode::Kubelet),
            other => Err(format!("{other:?} is not a recreate mode: expected proxy or kubelet")),
        }
    }
}

/// How the recreator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node.
    pub node_name: String,
    /// How containers are recreated.
    pub mode: Mode,
}

/// Why a step failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call.
    #[error("{what}: {source}")]
    Api {
        /// Which call.
        what: &'static str,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The status patch could not be built.
    #[error("cannot build the status patch: {0}")]
    Patch(#[from] serde_json::Error),
}

/// A pod: namespace and name.
type Key = (String, String);

struct Inner {
    settings: Settings,
    client: Client,
    runtime: Arc<dyn Containers>,
    metrics: Arc<Metrics>,
    crrs: Store<ContainerRecreateRequest>,
    pods: Store<Pod>,
    /// What the agent stopped, per (request uid, container name).
    killed: Mutex<HashMap<(String, String), Killed>>,
    /// When the next status write may go.
    next_write: tokio::sync::Mutex<Instant>,
    /// The agent's last write per request uid: (resourceVersion written over, the
    /// object it returned), used until the watch catches up.
    written: Mutex<HashMap<String, (String, ContainerRecreateRequest)>>,
}

/// The recreator of one node.
#[derive(Clone)]
pub struct Recreator {
    inner: Arc<Inner>,
    crr_writer: Arc<Mutex<Option<reflector::store::Writer<ContainerRecreateRequest>>>>,
    node_pods: NodePods,
}

impl std::fmt::Debug for Recreator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recreator").field("node", &self.inner.settings.node_name).finish_non_exhaustive()
    }
}

/// The result of a recreate call, for the metric and the log.
#[derive(Debug)]
struct Recreated {
    /// `proxy` or `kubelet`: the path that was used.
    path: Mode,
    /// The new container (proxy path only).
    new_id: Option<String>,
    /// Why the proxy path was not used, if it was asked for.
    fallback: Option<String>,
}

impl Recreator {
    /// A recreator acting through `runtime`, reading the node's pods from `node_pods`.
    pub fn new(
        settings: Settings,
        client: Client,
        node_pods: NodePods,
        runtime: Arc<dyn Containers>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (crrs, crr_writer) = reflector::store();
        let pods = node_pods.store();
        Self {
            inner: Arc::new(Inner {
                settings,
                client,
                runtime,
                metrics,
                crrs,
                pods,
                killed: Mutex::default(),
                next_write: tokio::sync::Mutex::new(Instant::now()),
                written: Mutex::default(),
            }),
            crr_writer: Arc::new(Mutex::new(Some(crr_writer))),
            node_pods,
        }
    }

    /// Watches the node's requests and pods and handles the requests, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let node = self.inner.settings.node_name.clone();
        let crr_writer = self.crr_writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(crr_writer) = crr_writer else {
            warn!("the recreator runs once");
            return;
        };
        let crr_api: Api<ContainerRecreateRequest> = Api::all(self.inner.client.clone());
        let labels = format!("{}={node},{}=true", keys::CRR_NODE_NAME, keys::CRR_ACTIVE);
        let crr_events = watcher(crr_api, watcher::Config::default().labels(&labels))
            .default_backoff()
            .reflect(crr_writer)
            .boxed();
        let pods = self.node_pods.store();
        let pod_events = self.node_pods.changes().map(move |e| Ok(keys_of_pod(&e, &pods)));
        let mut events =
            futures_util::stream::select(crr_events.map(|e| e.map(|e| keys_of_crr(&e))), pod_events.boxed());
        info!(node = %node, mode = self.inner.settings.mode.as_str(), "watching the node's ContainerRecreateRequests");
        let mut workers: HashMap<Key, Arc<Notify>> = HashMap::new();
        let mut tasks: JoinSet<Key> = JoinSet::new();
        loop {
            let keys = tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    // A worker with nothing left ended; a request that came meanwhile
                    // starts it again.
                    if let Ok(key) = done {
                        workers.remove(&key);
                        vec![key]
                    } else {
                        Vec::new()
                    }
                }
                e = events.next() => match e {
                    None => break,
                    Some(Ok(keys)) => keys,
                    Some(Err(error)) => {
                        warn!(%error, "watch failed; retrying");
                        Vec::new()
                    }
                },
            };
            for key in keys {
                if let Some(n) = workers.get(&key) {
                    n.notify_one();
                    continue;
                }
                if !self.inner.has_active(&key) {
                    continue;
                }
                let notify = Arc::new(Notify::new());
                workers.insert(key.clone(), notify.clone());
                let span = info_span!("crr_pod", pod.namespace = %key.0, pod.name = %key.1);
                let inner = self.inner.clone();
                tasks.spawn(inner.worker(key, notify, shutdown.clone()).instrument(span));
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

fn keys_of_crr(e: &watcher::Event<ContainerRecreateRequest>) -> Vec<Key> {
    match e {
        watcher::Event::Apply(c) | watcher::Event::InitApply(c) | watcher::Event::Delete(c) => {
            vec![(c.namespace().unwrap_or_default(), c.spec.pod_name.clone())]
        }
        watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
    }
}

fn keys_of_pod(e: &PodEvent, pods: &Store<Pod>) -> Vec<Key> {
    let key = |p: &Pod| (p.namespace().unwrap_or_default(), p.name_any());
    match e {
        PodEvent::Applied(p) | PodEvent::Deleted(p) => vec![key(p)],
        PodEvent::Resync => pods.state().iter().map(|p| key(p)).collect(),
    }
}

fn status_of(crr: &ContainerRecreateRequest) -> ContainerRecreateRequestStatus {
    crr.status.clone().unwrap_or_default()
}

impl Inner {
    /// The pod's requests, each as the watch has it or, if the watch has not seen the
    /// agent's last write yet, as that write returned it.
    fn requests_of(&self, key: &Key) -> Vec<ContainerRecreateRequest> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        self.crrs
            .state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(key.0.as_str()) && c.spec.pod_name == key.1)
            .map(|c| {
                let uid = c.uid().unwrap_or_default();
                match written.get(&uid) {
                    Some((before, mine)) if c.resource_version().as_deref() == Some(before.as_str()) => {
                        mine.clone()
                    }
                    Some(_) => {
                        written.remove(&uid);
                        (*c).clone()
                    }
                    None => (*c).clone(),
                }
            })
            .collect()
    }

    /// Drops what the agent remembers of requests no longer active (completed by the
    /// controller, or deleted).
    fn forget_finished(&self) {
        let active: std::collections::HashSet<String> =
            self.crrs.state().iter().filter(|c| plan::is_active(c)).filter_map(|c| c.uid()).collect();
        self.killed.lock().unwrap_or_else(|e| e.into_inner()).retain(|(u, _), _| active.contains(u));
        self.written.lock().unwrap_or_else(|e| e.into_inner()).retain(|u, _| active.contains(u));
    }

    fn has_active(&self, key: &Key) -> bool {
        self.requests_of(key).iter().any(plan::is_active)
    }

    /// One pod's worker: handles its requests until none is left.
    async fn worker(self: Arc<Self>, key: Key, notify: Arc<Notify>, shutdown: CancellationToken) -> Key {
        loop {
            let next = match self.sync(&key).await {
                Ok(None) => return key,
                Ok(Some(d)) => d,
                Err(error) => {
                    warn!(%error, "handling a ContainerRecreateRequest failed; retrying");
                    POLL
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return key,
                () = notify.notified() => {}
                () = tokio::time::sleep(next) => {}
            }
        }
    }

    /// One pass over a pod's requests; `None` when none is active.
    async fn sync(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let ordered = plan::in_order(self.requests_of(key));
        let Some((first, rest)) = ordered.split_first() else {
            self.forget_finished();
            return Ok(None);
        };
        let first_name = first.name_any();
        for other in rest {
            let mut s = status_of(other);
            let msg =
                format!("waiting for ContainerRecreateRequest {first_name} of the same pod to finish first");
            if s.phase != ContainerRecreateRequestPhase::Pending || s.message.as_deref() != Some(msg.as_str())
            {
                s.phase = ContainerRecreateRequestPhase::Pending;
                s.message = Some(msg);
                self.write(other, s).await?;
            }
        }
        let span = info_span!("crr", crr.name = %first_name);
        self.handle(first.clone()).instrument(span).await.map(Some)
    }

    /// Handles the pod's current request; returns when to look again.
    async fn handle(&self, crr: ContainerRecreateRequest) -> Result<Duration, Error> {
        let ns = crr.namespace().unwrap_or_default();
        let Some(pod) = self.pods.get(&ObjectRef::new(&crr.spec.pod_name).within(&ns)) else {
            debug!("the pod is not on this node (yet); the controller completes a request whose pod is gone");
            return Ok(POLL);
        };
        let uid_label = crr.labels().get(keys::CRR_POD_UID).cloned();
        if uid_label.as_deref().is_some_and(|u| Some(u) != pod.metadata.uid.as_deref()) {
            debug!("the pod's uid differs from the request's; left to the controller");
            return Ok(POLL);
        }
        let strategy = crr.spec.strategy.clone().unwrap_or_default();
        let mut crr = crr;
        let mut status = status_of(&crr);
        if status.phase != ContainerRecreateRequestPhase::Recreating {
            status.phase = ContainerRecreateRequestPhase::Recreating;
            status.message = None;
            match self.write(&crr, status.clone()).await? {
                Some(c) => crr = c,
                None => return Ok(RETRY),
            }
        }
        if let Some(grace) = strategy.unready_grace_period_seconds {
            let Some(since) = crr.annotations().get(keys::CRR_UNREADY_ACQUIRED).cloned() else {
                let msg = "waiting for the pod to be marked not ready (unready grace)".to_owned();
                if status.message.as_deref() != Some(msg.as_str()) {
                    status.message = Some(msg);
                    self.write(&crr, status).await?;
                }
                return Ok(POLL);
            };
            let since = match since.parse::<Timestamp>() {
                Ok(t) => t,
                Err(e) => {
                    let msg = format!(
                        "annotation {}: {since:?} is not an RFC 3339 time: {e}",
                        keys::CRR_UNREADY_ACQUIRED
                    );
                    self.complete(&crr, status, msg).await?;
                    return Ok(POLL);
                }
            };
            let waited = Duration::try_from(Timestamp::now().duration_since(since)).unwrap_or(Duration::ZERO);
            let want = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
            if waited < want {
                debug!(left = ?(want - waited), "waiting out the unready grace period");
                return Ok(want - waited + Duration::from_millis(100));
            }
        }
        self.manage(crr, &pod, strategy.failure_policy.unwrap_or_default()).await
    }

    /// Assesses every container, acts on those due, completes when all are done.
    async fn manage(
        &self,
        mut crr: ContainerRecreateRequest,
        pod: &Pod,
        policy: FailurePolicy,
    ) -> Result<Duration, Error> {
        let strategy = crr.spec.strategy.clone().unwrap_or_default();
        let ordered = strategy.ordered_recreate == Some(true);
        let uid = crr.uid().unwrap_or_default();
        let spec_names: Vec<&str> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let statuses: Vec<ContainerStatus> =
            pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        let prev = status_of(&crr).container_recreate_states.unwrap_or_default();
        let now = Timestamp::now();
        let min_started =
            Duration::from_secs(u64::try_from(strategy.min_started_seconds.unwrap_or(0)).unwrap_or(0));
        let created = crr.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let mut assessed: Vec<Assessment> = {
            let killed = self.killed.lock().unwrap_or_else(|e| e.into_inner());
            crr.spec
                .containers
                .iter()
                .map(|c| {
                    plan::assess(&Inputs {
                        spec: c,
                        previous: prev.iter().find(|p| p.name == c.name),
                        killed: killed.get(&(uid.clone(), c.name.clone())),
                        in_pod_spec: spec_names.contains(&c.name.as_str()),
                        status: statuses.iter().find(|s| s.name == c.name),
                        force: strategy.force_recreate == Some(true),
                        min_started,
                        created,
                        now,
                    })
                })
                .collect()
        };
        let mut recheck = POLL;
        let failed = |a: &[Assessment]| {
            a.iter().find(|x| x.state.phase == ContainerRecreatePhase::Failed).map(|x| x.state.clone())
        };
        for i in 0..assessed.len() {
            if policy == FailurePolicy::Fail && failed(&assessed).is_some() {
                break;
            }
            let a = &assessed[i];
            match a.state.phase {
                ContainerRecreatePhase::Succeeded | ContainerRecreatePhase::Failed => continue,
                ContainerRecreatePhase::Recreating => {
                    if let Some(r) = a.recheck {
                        recheck = recheck.min(r);
                    }
                    if ordered {
                        break;
                    }
                    continue;
                }
                ContainerRecreatePhase::Pending if !a.act => {
                    if ordered {
                        break;
                    }
                    continue;
                }
                ContainerRecreatePhase::Pending => {}
            }
            let spec = crr.spec.containers[i].clone();
            let Some(cstatus) = statuses.iter().find(|s| s.name == spec.name).cloned() else { continue };
            // Show the container as under way before the (possibly long) preStop and stop.
            assessed[i].state = ContainerRecreateRequestContainerRecreateState {
                name: spec.name.clone(),
                phase: ContainerRecreatePhase::Recreating,
                message: Some("running preStop and stopping the container".into()),
                is_killed: None,
            };
            match self.write(&crr, self.with_states(&crr, &assessed)).await? {
                Some(c) => crr = c,
                None => return Ok(RETRY),
            }
            assessed[i].state = self.recreate_container(&crr, pod, &spec, &cstatus, &uid).await;
            match self.write(&crr, self.with_states(&crr, &assessed)).await? {
                Some(c) => crr = c,
                None => return Ok(RETRY),
            }
            if ordered {
                break;
            }
        }
        let done = assessed.iter().all(|a| {
            matches!(a.state.phase, ContainerRecreatePhase::Succeeded | ContainerRecreatePhase::Failed)
        });
        let fail_now = if policy == FailurePolicy::Fail { failed(&assessed) } else { None };
        let status = self.with_states(&crr, &assessed);
        if let Some(f) = fail_now {
            let msg = format!("container {} failed: {}", f.name, f.message.unwrap_or_default());
            self.complete(&crr, status, msg).await?;
        } else if done {
            let n_failed =
                assessed.iter().filter(|a| a.state.phase == ContainerRecreatePhase::Failed).count();
            let msg = if n_failed == 0 {
                format!("recreated {} container(s)", assessed.len())
            } else {
                format!("{} of {} container(s) failed (failurePolicy Ignore)", n_failed, assessed.len())
            };
            self.complete(&crr, status, msg).await?;
        } else if status != status_of(&crr) {
            self.write(&crr, status).await?;
        }
        Ok(recheck)
    }

    fn with_states(
        &self,
        crr: &ContainerRecreateRequest,
        assessed: &[Assessment],
    ) -> ContainerRecreateRequestStatus {
        let mut s = status_of(crr);
        s.container_recreate_states = Some(assessed.iter().map(|a| a.state.clone()).collect());
        s
    }

    /// preStop, then the recreate by the mode; the container's new state.
    async fn recreate_container(
        &self,
        crr: &ContainerRecreateRequest,
        pod: &Pod,
        spec: &ContainerRecreateRequestContainer,
        status: &ContainerStatus,
        crr_uid: &str,
    ) -> ContainerRecreateRequestContainerRecreateState {
        let name = spec.name.clone();
        let strategy = crr.spec.strategy.clone().unwrap_or_default();
        let grace = strategy
            .termination_grace_period_seconds
            .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0);
        let id = bare_id(status.container_id.as_deref().unwrap_or_default()).to_owned();
        let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let started = Instant::now();
        let mut notes = Vec::new();
        if let Some(h) = &spec.pre_stop {
            let ports = spec.ports.clone().unwrap_or_default();
            let target = hooks::Target { container_id: &id, pod_ip: &pod_ip, ports: &ports };
            let timeout = Duration::from_secs(u64::try_from(grace.max(1)).unwrap_or(1));
            match hooks::run_pre_stop(self.runtime.as_ref(), h, target, timeout).await {
                Ok(()) => debug!(container = %name, "preStop hook ran"),
                Err(e) => {
                    // As kubelet: a failed preStop does not stop the kill.
                    warn!(container = %name, error = %e, "preStop hook failed; stopping anyway");
                    notes.push(format!("preStop hook failed: {e}"));
                }
            }
        }
        let spent = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
        let left = if spec.pre_stop.is_some() { (grace - spent).max(MIN_GRACE_SECONDS) } else { grace };
        let outcome = recreate_call(self.settings.mode, self.runtime.as_ref(), &id, left).await;
        let took = started.elapsed();
        let mut state = ContainerRecreateRequestContainerRecreateState {
            name: name.clone(),
            phase: ContainerRecreatePhase::Recreating,
            message: None,
            is_killed: None,
        };
        match outcome {
            Err((path, e)) => {
                self.metrics.container_recreated(path.as_str(), false);
                warn!(container = %name, container.id = %id, recreate.mode = path.as_str(), error = %e, "recreate failed");
                state.phase = ContainerRecreatePhase::Failed;
                notes.push(format!("kill container error: {e}"));
            }
            Ok(r) => {
                self.metrics.container_recreated(r.path.as_str(), true);
                info!(
                    container = %name,
                    container.id = %id,
                    container.new_id = r.new_id.as_deref().unwrap_or(""),
                    recreate.mode = r.path.as_str(),
                    recreate.fallback = r.fallback.as_deref().unwrap_or(""),
                    grace_seconds = left,
                    elapsed_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    "container recreated"
                );
                self.killed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((crr_uid.to_owned(), name.clone()), Killed { old_id: id.clone() });
                state.is_killed = Some(true);
                if let Some(f) = &r.fallback {
                    notes.push(format!("{f}; stopped for kubelet to restart"));
                }
                match &r.new_id {
                    Some(new_id) => {
                        notes.push(format!("recreated by the proxy as {new_id}"));
                        if let Err(e) = self.post_start(pod, &name, new_id, &pod_ip, left).await {
                            state.phase = ContainerRecreatePhase::Failed;
                            notes.push(format!("postStart hook failed: {e}"));
                        }
                    }
                    None => notes.push("stopped; waiting for kubelet to restart it".into()),
                }
            }
        }
        state.message = Some(notes.join("; "));
        state
    }

    /// The pod spec's postStart hook in the new container; on failure the container is
    /// stopped, as kubelet does.
    async fn post_start(
        &self,
        pod: &Pod,
        name: &str,
        new_id: &str,
        pod_ip: &str,
        grace: i64,
    ) -> Result<(), hooks::Error> {
        let Some(c) = pod.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == name)) else {
            return Ok(());
        };
        let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else { return Ok(()) };
        let ports = c.ports.clone().unwrap_or_default();
        let target = hooks::Target { container_id: bare_id(new_id), pod_ip, ports: &ports };
        let r = hooks::run_post_start(self.runtime.as_ref(), h, target, POST_START_TIMEOUT).await;
        if let Err(e) = &r {
            warn!(container = %name, container.id = %new_id, error = %e, "postStart hook failed; stopping the container");
            if let Err(s) = self.runtime.stop(bare_id(new_id).to_owned(), grace).await {
                warn!(status = %s, "cannot stop the container after its postStart failed");
            }
        }
        r
    }

    async fn complete(
        &self,
        crr: &ContainerRecreateRequest,
        mut status: ContainerRecreateRequestStatus,
        message: String,
    ) -> Result<(), Error> {
        info!(crr.message = %message, "ContainerRecreateRequest completed");
        status.phase = ContainerRecreateRequestPhase::Completed;
        status.completion_time = Some(Time(Timestamp::now()));
        status.message = Some(message);
        if self.write(crr, status).await?.is_some() {
            self.metrics.crr_completed();
        }
        let uid = crr.uid().unwrap_or_default();
        self.killed.lock().unwrap_or_else(|e| e.into_inner()).retain(|(u, _), _| *u != uid);
        Ok(())
    }

    /// Writes `status` over the request as read (its resourceVersion checked), rate
    /// limited. `Ok(None)`: someone wrote it meanwhile (re-read on the next pass).
    async fn write(
        &self,
        crr: &ContainerRecreateRequest,
        status: ContainerRecreateRequestStatus,
    ) -> Result<Option<ContainerRecreateRequest>, Error> {
        if crr.status.as_ref() == Some(&status) {
            return Ok(Some(crr.clone()));
        }
        {
            let mut next = self.next_write.lock().await;
            tokio::time::sleep_until(*next).await;
            *next = Instant::now() + Duration::from_secs(1) / STATUS_WRITES_PER_SECOND;
        }
        let mut value = serde_json::to_value(&status)?;
        // A merge patch keeps fields it does not mention: clear them explicitly.
        for k in ["message", "completionTime", "containerRecreateStates"] {
            if value.get(k).is_none() {
                value[k] = serde_json::Value::Null;
            }
        }
        let patch = json!({"metadata": {"resourceVersion": crr.resource_version()}, "status": value});
        let api: Api<ContainerRecreateRequest> =
            Api::namespaced(self.client.clone(), &crr.namespace().unwrap_or_default());
        match api.patch_status(&crr.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(c) => {
                self.metrics.crr_status_written(true);
                let before = crr.resource_version().unwrap_or_default();
                self.written
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(c.uid().unwrap_or_default(), (before, c.clone()));
                Ok(Some(c))
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                self.metrics.crr_status_written(false);
                debug!(reason = %s.message, "the request changed meanwhile; reading it again");
                Ok(None)
            }
            Err(source) => {
                self.metrics.crr_status_written(false);
                Err(Error::Api { what: "patching the ContainerRecreateRequest status", source })
            }
        }
    }
}

/// How long a recreate waits for a runtime that cannot be reached (the proxy
/// restarting, say) before the container fails.
const UNREACHABLE_FOR: Duration = Duration::from_secs(120);

/// The recreate itself along `mode`'s path (see [`Mode`]); `Err((path, reason))` when
/// the runtime refused. While neither the proxy nor CRI can be reached (the proxy
/// restarting), it waits and tries again, up to [`UNREACHABLE_FOR`].
async fn recreate_call(
    mode: Mode,
    rt: &dyn Containers,
    id: &str,
    grace: i64,
) -> Result<Recreated, (Mode, String)> {
    let until = tokio::time::Instant::now() + UNREACHABLE_FOR;
    let mut pause = Duration::from_millis(200);
    loop {
        match recreate_attempt(mode, rt, id, grace).await {
            Err(Attempt::Unreachable(path, reason)) => {
                if tokio::time::Instant::now() + pause > until {
                    return Err((path, reason));
                }
                debug!(container.id = id, %reason, retry_in_ms = pause.as_millis(), "the runtime cannot be reached; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(Attempt::Refused(path, reason)) => return Err((path, reason)),
            Ok(r) => return Ok(r),
        }
    }
}

/// Why one attempt failed.
enum Attempt {
    /// Neither the proxy nor CRI answered: worth another try.
    Unreachable(Mode, String),
    /// The runtime answered no.
    Refused(Mode, String),
}

async fn recreate_attempt(
    mode: Mode,
    rt: &dyn Containers,
    id: &str,
    grace: i64,
) -> Result<Recreated, Attempt> {
    let mut fallback = None;
    if mode == Mode::Proxy {
        match rt.recreate(id.to_owned(), grace).await {
            Ok(r) if r.recorded && !r.container_id.is_empty() => {
                return Ok(Recreated { path: Mode::Proxy, new_id: Some(r.container_id), fallback: None });
            }
            Ok(_) => {
                // The proxy had no record: it only stopped the container.
                return Ok(Recreated {
                    path: Mode::Kubelet,
                    new_id: None,
                    fallback: Some("the proxy has no record of the container".into()),
                });
            }
            Err(s) if matches!(s.code(), tonic::Code::Unimplemented | tonic::Code::Unavailable) => {
                debug!(status = %s, "the proxy cannot recreate; falling back to kubelet");
                fallback = Some(format!("the proxy cannot recreate ({})", s.message()));
            }
            Err(s) => {
                return Err(Attempt::Refused(Mode::Proxy, format!("RecreateContainer: {}", s.message())));
            }
        }
    }
    match rt.stop(id.to_owned(), grace).await {
        Ok(()) => Ok(Recreated { path: Mode::Kubelet, new_id: None, fallback }),
        Err(s) if s.code() == tonic::Code::NotFound => {
            Ok(Recreated { path: Mode::Kubelet, new_id: None, fallback })
        }
        Err(s) if s.code() == tonic::Code::Unavailable => {
            Err(Attempt::Unreachable(Mode::Kubelet, format!("StopContainer: {}", s.message())))
        }
        Err(s) => Err(Attempt::Refused(Mode::Kubelet, format!("StopContainer: {}", s.message()))),
    }
}

#[cfg(test)]
mod tests;
