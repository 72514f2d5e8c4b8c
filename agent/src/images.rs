//! Image pre-download: the agent watches its own NodeImage (by name, nothing of other
//! nodes), pulls what its spec lists — one worker per tag, at most
//! `max_concurrent_pulls` at once — and reports each tag in the NodeImage's status.
//!
//! - A tag is pulled again when its spec `version` changes (a worker of an older
//!   version is stopped); a tag whose status in the API already records the same
//!   version as finished is not: a restarted agent picks up exactly what was left.
//! - Status is written through the `status` subresource only (the controller writes
//!   the spec), whole, at most once per `status_interval` however many tags change:
//!   a thousand tags cannot flood the API server.
//! - Pull secrets are read from the agent's own namespace only (the controller copies
//!   them there).

pub mod auth;
pub mod worker;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use serde_json::json;
use stevedore_proto::{
    crd::node_image::{
        ImagePullPhase, ImageStatus, ImageTagStatus, NodeImageStatus,
        v1beta1::{ImageSpec, NodeImage, ReferenceObject},
    },
    cri::{AuthConfig, PodSandboxConfig},
    image,
};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use self::worker::{Pull, Report, Runtime};
use crate::metrics::Metrics;

/// How the puller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node; its NodeImage has the same name.
    pub node_name: String,
    /// The agent's namespace: the only one it reads Secrets in.
    pub namespace: String,
    /// Pulls at once on this node.
    pub max_concurrent_pulls: usize,
    /// The least time between two status writes.
    pub status_interval: Duration,
}

/// Image name and tag.
type Key = (String, String);

#[derive(Debug)]
struct TagState {
    version: i64,
    status: ImageTagStatus,
    /// Stops the tag's worker, if one runs.
    stop: Option<CancellationToken>,
}

#[derive(Debug, Default)]
struct State {
    tags: BTreeMap<Key, TagState>,
    /// Whether a NodeImage exists (status is only written to one that does).
    exists: bool,
}

/// The puller of one node.
#[derive(Clone)]
pub struct Puller {
    settings: Arc<Settings>,
    client: Client,
    runtime: Arc<dyn Runtime>,
    slots: Arc<Semaphore>,
    state: Arc<Mutex<State>>,
    dirty: Arc<Notify>,
    metrics: Arc<Metrics>,
    events: Recorder,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller").field("node", &self.settings.node_name).finish_non_exhaustive()
    }
}

/// A worker's reports, kept only while its version is the tag's current one.
struct TagReport {
    state: Arc<Mutex<State>>,
    key: Key,
    version: i64,
    dirty: Arc<Notify>,
}

impl Report for TagReport {
    fn update(&self, status: ImageTagStatus) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = state.tags.get_mut(&self.key).filter(|t| t.version == self.version) {
            t.status = status;
            drop(state);
            self.dirty.notify_one();
        }
    }
}

impl Puller {
    /// A puller pulling through `runtime`.
    pub fn new(settings: Settings, client: Client, runtime: Arc<dyn Runtime>, metrics: Arc<Metrics>) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_concurrent_pulls.max(1)));
        let reporter =
            Reporter { controller: "stevedore-agent".into(), instance: Some(settings.node_name.clone()) };
        Self {
            events: Recorder::new(client.clone(), reporter),
            settings: Arc::new(settings),
            client,
            runtime,
            slots,
            state: Arc::default(),
            dirty: Arc::new(Notify::new()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches the node's NodeImage and pulls what it asks, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let writer =
            tokio::spawn(self.clone().write_status(shutdown.clone()).instrument(info_span!("status")));
        let api: Api<NodeImage> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.settings.node_name));
        let mut events = watcher(api, config).boxed();
        info!(node = %self.settings.node_name, "watching the node's NodeImage");
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                e = events.next() => e,
            };
            match event {
                Some(Ok(watcher::Event::Apply(ni) | watcher::Event::InitApply(ni))) => self.sync(&ni).await,
                Some(Ok(watcher::Event::Delete(_))) => self.clear(),
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                Some(Err(error)) => {
                    warn!(%error, "NodeImage watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => break,
            }
        }
        self.clear();
        let _ = writer.await;
    }

    /// The NodeImage is gone: every worker stops.
    fn clear(&self) {
        let mut state = self.lock();
        for t in state.tags.values() {
            if let Some(s) = &t.stop {
                s.cancel();
            }
        }
        state.tags.clear();
        state.exists = false;
    }

    /// Starts, keeps or stops workers so that they match the spec.
    async fn sync(&self, ni: &NodeImage) {
        let images = ni.spec.images.clone().unwrap_or_default();
        let reported = ni.status.as_ref().and_then(|s| s.image_statuses.clone()).unwrap_or_default();
        let mut wanted: Vec<(Key, i64)> = Vec::new();
        let mut to_start: Vec<(Key, Pull)> = Vec::new();
        for (name, spec) in &images {
            let mut auths: Option<Vec<AuthConfig>> = None;
            for tag in &spec.tags {
                let key = (name.clone(), tag.tag.clone());
                let version = tag.version.unwrap_or(0);
                wanted.push((key.clone(), version));
                {
                    let state = self.lock();
                    if state.tags.get(&key).is_some_and(|t| t.version == version) {
                        continue;
                    }
                }
                let finished = reported
                    .get(name)
                    .and_then(|s| s.tags.iter().find(|t| t.tag == tag.tag))
                    .filter(|t| t.version.unwrap_or(0) == version && t.completion_time.is_some());
                if let Some(done) = finished {
                    let mut state = self.lock();
                    state.tags.insert(key, TagState { version, status: done.clone(), stop: None });
                    continue;
                }
                if auths.is_none() {
                    auths = Some(self.credentials(name, spec).await);
                }
                to_start.push((key, self.pull_of(name, spec, tag, auths.clone().unwrap_or_default())));
            }
        }
        let mut state = self.lock();
        state.exists = true;
        state.tags.retain(|k, t| {
            let keep = wanted.iter().any(|(w, v)| w == k && *v == t.version);
            if !keep && let Some(s) = &t.stop {
                s.cancel();
            }
            keep
        });
        for (key, pull) in to_start {
            let stop = CancellationToken::new();
            let version = pull.version;
            state.tags.insert(
                key.clone(),
                TagState { version, status: ImageTagStatus::default(), stop: Some(stop.clone()) },
            );
            let report = Arc::new(TagReport {
                state: self.state.clone(),
                key: key.clone(),
                version,
                dirty: self.dirty.clone(),
            });
            let (runtime, slots, metrics) = (self.runtime.clone(), self.slots.clone(), self.metrics.clone());
            let reference = pull.reference.clone();
            let (events, node_image) = (self.events.clone(), self.node_image_ref(ni));
            let span = info_span!("pull", image = %reference, version);
            tokio::spawn(
                async move {
                    let started = tokio::time::Instant::now();
                    metrics.pull_started();
                    let out = worker::run(pull, runtime, slots, report, stop).await;
                    metrics.pull_finished(out.as_ref().map(|s| s.phase.clone()), started.elapsed());
                    let event = match out {
                        Some(s) if s.phase == ImagePullPhase::Succeeded => {
                            info!(image.id = ?s.image_id, elapsed = ?started.elapsed(), "pulled");
                            Some((
                                false,
                                "PullImageSucceed",
                                format!(
                                    "Image {reference} pulled in {:.1}s",
                                    started.elapsed().as_secs_f64()
                                ),
                            ))
                        }
                        Some(s) => {
                            warn!(message = ?s.message, "pull failed");
                            Some((
                                true,
                                "PullImageFailed",
                                format!("Image {reference}: {}", s.message.unwrap_or_default()),
                            ))
                        }
                        None => {
                            debug!("pull stopped");
                            None
                        }
                    };
                    if let Some((warning, reason, note)) = event {
                        let ev = Event {
                            type_: if warning { EventType::Warning } else { EventType::Normal },
                            reason: reason.into(),
                            note: Some(note),
                            action: "Pull".into(),
                            secondary: None,
                        };
                        if let Err(error) = events.publish(&ev, &node_image).await {
                            debug!(%error, "cannot publish an event");
                        }
                    }
                }
                .instrument(span),
            );
        }
        drop(state);
        self.dirty.notify_one();
    }

    fn node_image_ref(&self, ni: &NodeImage) -> ObjectReference {
        ObjectReference {
            api_version: Some("apps.kruise.io/v1beta1".into()),
            kind: Some("NodeImage".into()),
            name: ni.metadata.name.clone(),
            uid: ni.metadata.uid.clone(),
            ..ObjectReference::default()
        }
    }

    fn pull_of(
        &self,
        name: &str,
        spec: &ImageSpec,
        tag: &stevedore_proto::crd::node_image::ImageTagSpec,
        auths: Vec<AuthConfig>,
    ) -> Pull {
        let policy = tag.pull_policy.clone().unwrap_or_default();
        let secs = |s: Option<i64>| s.filter(|s| *s > 0).map(|s| Duration::from_secs(s.unsigned_abs()));
        let sandbox = spec.sandbox_config.as_ref().map(|s| {
            let mut annotations: HashMap<String, String> =
                s.annotations.clone().unwrap_or_default().into_iter().collect();
            annotations.insert("apps.kruise.io/pulling-image-by".into(), "stevedore-agent".into());
            PodSandboxConfig {
                labels: s.labels.clone().unwrap_or_default().into_iter().collect(),
                annotations,
                ..PodSandboxConfig::default()
            }
        });
        Pull {
            reference: image::pull_reference(name, &tag.tag),
            tag: tag.tag.clone(),
            version: tag.version.unwrap_or(0),
            always: tag.image_pull_policy.as_ref().is_some_and(|p| p.as_str() == "Always"),
            timeout: secs(policy.timeout_seconds.map(i64::from)).unwrap_or(Duration::from_secs(600)),
            backoff_limit: policy.backoff_limit.and_then(|b| u32::try_from(b).ok()).unwrap_or(3),
            deadline: secs(policy.active_deadline_seconds),
            auths,
            sandbox,
        }
    }

    /// The credentials for image `name` in the pull secrets its spec names that live
    /// in the agent's namespace.
    async fn credentials(&self, name: &str, spec: &ImageSpec) -> Vec<AuthConfig> {
        let Ok(reference) = image::parse(name) else { return Vec::new() };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let mut out = Vec::new();
        for ReferenceObject { namespace, name: secret, .. } in spec.pull_secrets.iter().flatten() {
            let Some(secret) = secret else { continue };
            if namespace.as_deref().is_some_and(|n| !n.is_empty() && n != self.settings.namespace) {
                warn!(secret, namespace = ?namespace, "pull secret outside the agent's namespace; not read");
                continue;
            }
            match secrets.get_opt(secret).await {
                Ok(Some(s)) => {
                    let data: BTreeMap<String, Vec<u8>> =
                        s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                    out.extend(auth::credentials_for(
                        s.type_.as_deref().unwrap_or_default(),
                        &data,
                        &reference,
                    ));
                }
                Ok(None) => warn!(secret, "pull secret not found"),
                Err(error) => warn!(secret, %error, "cannot read pull secret"),
            }
        }
        out
    }

    /// The status to write: every tag's, counted.
    fn status(&self) -> Option<NodeImageStatus> {
        let state = self.lock();
        if !state.exists {
            return None;
        }
        let mut s = NodeImageStatus::default();
        let mut images: BTreeMap<String, ImageStatus> = BTreeMap::new();
        let (mut succeeded, mut failed, mut pulling, mut waiting) = (0, 0, 0, 0);
        for ((name, _), t) in &state.tags {
            match t.status.phase {
                ImagePullPhase::Succeeded => succeeded += 1,
                ImagePullPhase::Failed => failed += 1,
                ImagePullPhase::Pulling => pulling += 1,
                ImagePullPhase::Waiting => waiting += 1,
                // the agent writes only the four it names
                ImagePullPhase::Other(_) => {}
            }
            if !t.status.tag.is_empty() {
                images.entry(name.clone()).or_default().tags.push(t.status.clone());
            }
        }
        s.desired = i32::try_from(state.tags.len()).unwrap_or(i32::MAX);
        s.succeeded = Some(succeeded);
        s.failed = Some(failed);
        s.pulling = Some(pulling);
        s.waiting = Some(waiting);
        s.image_statuses = (!images.is_empty()).then_some(images);
        Some(s)
    }

    /// Writes the status when it changed, at most once per interval.
    async fn write_status(self, shutdown: CancellationToken) {
        let api: Api<NodeImage> = Api::all(self.client.clone());
        let mut last: Option<NodeImageStatus> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.dirty.notified() => {}
            }
            let Some(status) = self.status() else { continue };
            if last.as_ref() == Some(&status) {
                continue;
            }
            // Replace the whole status (images gone from the spec leave it too).
            let patch = json!([{"op": "add", "path": "/status", "value": status}]);
            let patch: json_patch::Patch = match serde_json::from_value(patch) {
                Ok(p) => p,
                Err(error) => {
                    warn!(%error, "cannot build the status patch");
                    continue;
                }
            };
            let params = PatchParams::default();
            match api.patch_status(&self.settings.node_name, &params, &Patch::<()>::Json(patch)).await {
                Ok(_) => {
                    self.metrics.status_written(true);
                    last = Some(status);
                }
                Err(error) => {
                    self.metrics.status_written(false);
                    debug!(%error, "cannot write the NodeImage status; retrying");
                    self.dirty.notify_one();
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.status_interval) => {}
            }
        }
    }
}
