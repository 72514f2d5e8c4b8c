//! The in-place update engine every workload shares (CloneSet now; Advanced
//! DaemonSet, Advanced StatefulSet and SidecarSet reuse it), after OpenKruise v1.9.0's
//! `pkg/util/inplaceupdate`:
//!
//! - [`plan`] says whether going from one pod template to another can be done in
//!   place: only container images and pod labels/annotations may differ. A label or
//!   annotation that a container reads as env (`fieldRef`) marks that container for
//!   the node agent's one-restart env update. Resources are never eligible: the
//!   clusters this runs on do not resize pods.
//! - [`start`] changes the pod: the labels and annotations merged, the state
//!   annotation `apps.kruise.io/inplace-update-state` in OpenKruise's JSON shape (so a
//!   pod OpenKruise was updating reads the same), and the first batch of images, by
//!   `KRUISE_CONTAINER_PRIORITY` (highest first). With a grace period the images wait
//!   in `apps.kruise.io/inplace-update-grace` until it has passed.
//! - [`progress`] judges the update from the pod's container statuses: a container is
//!   updated when its imageID is no longer the one recorded before the update (or,
//!   for an env-only update, when it started again after the update began).
//! - [`set_ready_condition`] writes the `InPlaceUpdateReady` condition (the
//!   readiness gate every CloneSet pod carries): False before the pod is patched, True
//!   when the update is done.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::{Container, Pod, PodCondition, PodReadinessGate, PodTemplateSpec},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The pod annotation that records an in-place update.
pub const STATE_ANNOTATION: &str = "apps.kruise.io/inplace-update-state";
/// The same, as OpenKruise wrote it before v1.0 (still read).
pub const LEGACY_STATE_ANNOTATION: &str = "inplace-update-state";
/// The pod annotation that holds an update during its grace period.
pub const GRACE_ANNOTATION: &str = "apps.kruise.io/inplace-update-grace";
/// The same, as OpenKruise wrote it before v1.0 (still read).
pub const LEGACY_GRACE_ANNOTATION: &str = "inplace-update-grace";
/// The pod condition and readiness gate of in-place updates.
pub const READY_CONDITION: &str = "InPlaceUpdateReady";
/// The reason of a False [`READY_CONDITION`].
pub const START_REASON: &str = "StartInPlaceUpdate";
/// The container env var that orders containers into update batches.
pub const CONTAINER_PRIORITY_ENV: &str = "KRUISE_CONTAINER_PRIORITY";

/// Why an in-place update step failed.
#[derive(Debug, thiserror::Error)]
pub enum InPlaceError {
    /// The state annotation is not OpenKruise's JSON.
    #[error("metadata.annotations[{STATE_ANNOTATION}]: {0}")]
    State(serde_json::Error),
    /// The grace annotation is not OpenKruise's JSON.
    #[error("metadata.annotations[{GRACE_ANNOTATION}]: {0}")]
    Grace(serde_json::Error),
    /// The update names a container the pod does not have.
    #[error("spec.containers: the pod has no container {0:?}")]
    NoContainer(String),
}

/// A container's status before the update (`InPlaceUpdateContainerStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// Its image id then.
    #[serde(rename = "imageID", default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// Its resources then (always written, as Go writes a struct).
    #[serde(default = "empty_object")]
    pub resources: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// One batch of containers patched together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// When it was patched.
    pub timestamp: Time,
    /// The containers.
    pub containers: Vec<String>,
}

/// What must hold before the next batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreCheck {
    /// Containers that must be ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers_required_ready: Vec<String>,
}

/// The `apps.kruise.io/inplace-update-state` annotation, in OpenKruise's JSON shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The revision the pod is updated to.
    pub revision: String,
    /// When the update started.
    pub update_timestamp: Time,
    /// The updated containers' statuses before the update (Go writes `null` when none).
    #[serde(default)]
    pub last_container_statuses: Option<BTreeMap<String, ContainerRecord>>,
    /// Containers restart for env read from labels or annotations.
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_env_from_metadata: bool,
    /// Resources change (never set here; read when OpenKruise set it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_resources: bool,
    /// Images change.
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_images: bool,
    /// Images of later batches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_container_images: BTreeMap<String, String>,
    /// Metadata of later batches' env updates (kept as OpenKruise wrote it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_container_ref_metadata: BTreeMap<String, Value>,
    /// Resources of later batches (kept as OpenKruise wrote it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_container_resources: BTreeMap<String, Value>,
    /// What must hold before the next batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_check_before_next: Option<PreCheck>,
    /// The batches patched so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_batches_record: Vec<Batch>,
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_false(b: &bool) -> bool {
    !*b
}

/// The `apps.kruise.io/inplace-update-grace` annotation: an update waiting out its
/// grace period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraceSpec {
    /// The revision.
    pub revision: String,
    /// The images to set when the grace period is over.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub container_images: BTreeMap<String, String>,
    /// Whether containers restart for env from metadata.
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_env_from_metadata: bool,
    /// The grace period.
    #[serde(default)]
    pub grace_seconds: i32,
}

/// What an update from one template to another changes, when it can be done in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSpec {
    /// The revision updated to.
    pub revision: String,
    /// New images by container name.
    pub container_images: BTreeMap<String, String>,
    /// Containers whose env reads a label or annotation that changes.
    pub env_from_metadata: BTreeSet<String>,
    /// Labels to set (`Some`) or remove (`None`).
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotations to set (`Some`) or remove (`None`).
    pub annotations: BTreeMap<String, Option<String>>,
}

impl UpdateSpec {
    /// Whether the pod's spec changes (and so its containers restart).
    pub fn changes_containers(&self) -> bool {
        !self.container_images.is_empty() || !self.env_from_metadata.is_empty()
    }
}

/// Whether an update can be done in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Eligibility {
    /// It can: these are the changes.
    InPlace(UpdateSpec),
    /// It cannot: the pod must be recreated, for this reason (the first field found
    /// that differs).
    Recreate(String),
}

fn map_diff(
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, Option<String>> {
    let empty = BTreeMap::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut out = BTreeMap::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            out.insert(k.clone(), Some(v.clone()));
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.insert(k.clone(), None);
        }
    }
    out
}

/// `key` of a `fieldRef` path `prefix['key']` or `prefix["key"]` (e.g. prefix
/// `metadata.labels`).
pub fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
    rest.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

/// The labels and annotations `c`'s env reads (`fieldRef`).
fn metadata_refs(c: &Container) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let (mut labels, mut annotations) = (BTreeSet::new(), BTreeSet::new());
    for e in c.env.iter().flatten() {
        let Some(path) =
            e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str())
        else {
            continue;
        };
        if let Some(k) = subscript(path, "metadata.labels") {
            labels.insert(k);
        } else if let Some(k) = subscript(path, "metadata.annotations") {
            annotations.insert(k);
        }
    }
    (labels, annotations)
}

/// The first top-level key (in sorted order) whose value differs between two JSON
/// objects.
fn first_difference(old: &Value, new: &Value) -> Option<String> {
    let (Value::Object(a), Value::Object(b)) = (old, new) else {
        return (old != new).then(String::new);
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).cloned()
}

/// Whether going from template `old` to `new` (revision `revision`) can be done in
/// place, and what it changes.
pub fn plan(revision: &str, old: &PodTemplateSpec, new: &PodTemplateSpec) -> Eligibility {
    let (old_spec, new_spec) = (old.spec.clone().unwrap_or_default(), new.spec.clone().unwrap_or_default());
    if old_spec.containers.len() != new_spec.containers.len()
        || old_spec.containers.iter().zip(&new_spec.containers).any(|(a, b)| a.name != b.name)
    {
        return Eligibility::Recreate(
            "spec.template.spec.containers: containers added, removed or renamed".into(),
        );
    }
    let mut images = BTreeMap::new();
    let (mut o, mut n) = (old_spec.clone(), new_spec.clone());
    for (a, b) in o.containers.iter_mut().zip(n.containers.iter_mut()) {
        if a.image != b.image {
            images.insert(b.name.clone(), b.image.clone().unwrap_or_default());
        }
        a.image = None;
        b.image = None;
    }
    let (ov, nv) =
        (serde_json::to_value(&o).unwrap_or(Value::Null), serde_json::to_value(&n).unwrap_or(Value::Null));
    if let Some(field) = first_difference(&ov, &nv) {
        if field == "containers" {
            for (i, (a, b)) in o.containers.iter().zip(&n.containers).enumerate() {
                let (a, b) = (
                    serde_json::to_value(a).unwrap_or(Value::Null),
                    serde_json::to_value(b).unwrap_or(Value::Null),
                );
                if let Some(f) = first_difference(&a, &b) {
                    return Eligibility::Recreate(format!("spec.template.spec.containers[{i}].{f}: changed"));
                }
            }
        }
        return Eligibility::Recreate(format!("spec.template.spec.{field}: changed"));
    }
    let (om, nm) = (old.metadata.clone().unwrap_or_default(), new.metadata.clone().unwrap_or_default());
    let (mut om_rest, mut nm_rest) = (om.clone(), nm.clone());
    for m in [&mut om_rest, &mut nm_rest] {
        m.labels = None;
        m.annotations = None;
    }
    if om_rest != nm_rest {
        let (a, b) = (
            serde_json::to_value(&om_rest).unwrap_or(Value::Null),
            serde_json::to_value(&nm_rest).unwrap_or(Value::Null),
        );
        let field = first_difference(&a, &b).unwrap_or_default();
        return Eligibility::Recreate(format!("spec.template.metadata.{field}: changed"));
    }
    let labels = map_diff(om.labels.as_ref(), nm.labels.as_ref());
    let annotations = map_diff(om.annotations.as_ref(), nm.annotations.as_ref());
    let mut env_from_metadata = BTreeSet::new();
    for c in &new_spec.containers {
        let (ls, ans) = metadata_refs(c);
        if ls.iter().any(|k| labels.contains_key(*k)) || ans.iter().any(|k| annotations.contains_key(*k)) {
            env_from_metadata.insert(c.name.clone());
        }
    }
    Eligibility::InPlace(UpdateSpec {
        revision: revision.to_owned(),
        container_images: images,
        env_from_metadata,
        labels,
        annotations,
    })
}

/// The container's update priority (`KRUISE_CONTAINER_PRIORITY`, 0 when unset or not
/// an integer).
pub fn container_priority(c: &Container) -> i64 {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == CONTAINER_PRIORITY_ENV)
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Splits `images` into the batch to patch now (the highest priority present) and
/// the rest.
fn first_batch(
    pod: &Pod,
    images: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let priority = |name: &str| containers.iter().find(|c| c.name == name).map_or(0, container_priority);
    let Some(top) = images.keys().map(|n| priority(n)).max() else {
        return (BTreeMap::new(), BTreeMap::new());
    };
    images.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(k, _)| priority(k) == top)
}

/// The pod's in-place update state, if it has one (the current annotation, or the
/// legacy one).
pub fn state(pod: &Pod) -> Result<Option<State>, InPlaceError> {
    let Some(a) = pod.metadata.annotations.as_ref() else { return Ok(None) };
    let Some(raw) = a.get(STATE_ANNOTATION).or_else(|| a.get(LEGACY_STATE_ANNOTATION)) else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(raw).map(Some).map_err(InPlaceError::State)
}

/// The update waiting out its grace period on the pod, if any.
pub fn grace(pod: &Pod) -> Result<Option<GraceSpec>, InPlaceError> {
    let Some(a) = pod.metadata.annotations.as_ref() else { return Ok(None) };
    let Some(raw) = a.get(GRACE_ANNOTATION).or_else(|| a.get(LEGACY_GRACE_ANNOTATION)) else {
        return Ok(None);
    };
    serde_json::from_str(raw).map(Some).map_err(InPlaceError::Grace)
}

fn image_id(pod: &Pod, container: &str) -> String {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|s| s.name == container)
        .map(|s| s.image_id.clone())
        .unwrap_or_default()
}

fn set_images(pod: &mut Pod, images: &BTreeMap<String, String>) -> Result<(), InPlaceError> {
    let spec = pod.spec.get_or_insert_with(Default::default);
    for (name, image) in images {
        let c = spec
            .containers
            .iter_mut()
            .find(|c| &c.name == name)
            .ok_or_else(|| InPlaceError::NoContainer(name.clone()))?;
        c.image = Some(image.clone());
    }
    Ok(())
}

fn apply_map(target: &mut Option<BTreeMap<String, String>>, diff: &BTreeMap<String, Option<String>>) {
    let m = target.get_or_insert_with(BTreeMap::new);
    for (k, v) in diff {
        match v {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
}

fn annotate<T: Serialize>(pod: &mut Pod, key: &str, value: &T) {
    let json = serde_json::to_string(value).unwrap_or_default();
    pod.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(key.to_owned(), json);
}

/// Starts the in-place update `spec` of `pod` at `now`: merges its labels and
/// annotations, sets `labels` (the workload's revision labels), records the state,
/// and patches the first batch of images, or, with `grace_seconds` > 0, records them
/// in the grace annotation for [`finish_grace`]. The caller writes the pod (and sets
/// [`READY_CONDITION`] False first, with [`set_ready_condition`]).
pub fn start(
    pod: &mut Pod,
    spec: &UpdateSpec,
    labels: &BTreeMap<String, String>,
    grace_seconds: i32,
    now: Timestamp,
) -> Result<(), InPlaceError> {
    apply_map(&mut pod.metadata.labels, &spec.labels);
    apply_map(&mut pod.metadata.annotations, &spec.annotations);
    let pl = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    pl.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(a) = pod.metadata.annotations.as_mut() {
        a.remove(LEGACY_STATE_ANNOTATION);
        a.remove(GRACE_ANNOTATION);
        a.remove(LEGACY_GRACE_ANNOTATION);
    }
    if grace_seconds > 0 && spec.changes_containers() {
        let state = State {
            revision: spec.revision.clone(),
            update_timestamp: Time(now),
            last_container_statuses: None,
            update_env_from_metadata: !spec.env_from_metadata.is_empty(),
            update_resources: false,
            update_images: false,
            next_container_images: BTreeMap::new(),
            next_container_ref_metadata: BTreeMap::new(),
            next_container_resources: BTreeMap::new(),
            pre_check_before_next: None,
            container_batches_record: Vec::new(),
        };
        annotate(pod, STATE_ANNOTATION, &state);
        let g = GraceSpec {
            revision: spec.revision.clone(),
            container_images: spec.container_images.clone(),
            update_env_from_metadata: !spec.env_from_metadata.is_empty(),
            grace_seconds,
        };
        annotate(pod, GRACE_ANNOTATION, &g);
        return Ok(());
    }
    patch_batch(pod, &spec.revision, &spec.container_images, &spec.env_from_metadata, now)
}

/// Patches the highest-priority batch of `images` and records the state (with the
/// rest as the next batches).
fn patch_batch(
    pod: &mut Pod,
    revision: &str,
    images: &BTreeMap<String, String>,
    env: &BTreeSet<String>,
    now: Timestamp,
) -> Result<(), InPlaceError> {
    let (now_batch, rest) = first_batch(pod, images);
    let mut last = BTreeMap::new();
    for name in now_batch.keys() {
        last.insert(
            name.clone(),
            ContainerRecord { image_id: image_id(pod, name), resources: empty_object() },
        );
    }
    for name in env.iter().filter(|c| !now_batch.contains_key(*c)) {
        last.insert(name.clone(), ContainerRecord { image_id: String::new(), resources: empty_object() });
    }
    let mut containers: Vec<String> = now_batch.keys().cloned().collect();
    containers.extend(env.iter().filter(|c| !now_batch.contains_key(*c)).cloned());
    let state = State {
        revision: revision.to_owned(),
        update_timestamp: Time(now),
        last_container_statuses: Some(last),
        update_env_from_metadata: !env.is_empty(),
        update_resources: false,
        update_images: !images.is_empty(),
        next_container_images: rest,
        next_container_ref_metadata: BTreeMap::new(),
        next_container_resources: BTreeMap::new(),
        pre_check_before_next: None,
        container_batches_record: if containers.is_empty() {
            Vec::new()
        } else {
            vec![Batch { timestamp: Time(now), containers }]
        },
    };
    set_images(pod, &now_batch)?;
    annotate(pod, STATE_ANNOTATION, &state);
    Ok(())
}

/// Where an in-place update of a pod stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The pod has no in-place update recorded.
    None,
    /// The update waits out its grace period: this much is left.
    Grace(std::time::Duration),
    /// The grace period is over: call [`finish_grace`].
    GraceOver,
    /// Containers of the current batch have not been updated yet.
    Updating,
    /// The current batch is done and a later one waits: call [`next_batch`].
    NextBatch,
    /// Every container is updated.
    Done,
}

/// Judges the pod's in-place update at `now` from its container statuses.
pub fn progress(pod: &Pod, now: Timestamp) -> Result<Progress, InPlaceError> {
    let Some(state) = state(pod)? else { return Ok(Progress::None) };
    if let Some(g) = grace(pod)? {
        let over = state.update_timestamp.0 + SignedDuration::from_secs(i64::from(g.grace_seconds));
        return Ok(if now >= over {
            Progress::GraceOver
        } else {
            Progress::Grace(now.duration_until(over).unsigned_abs())
        });
    }
    let statuses: Vec<_> = pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).collect();
    let started = state.update_timestamp.0;
    for (name, before) in state.last_container_statuses.iter().flatten() {
        let Some(now_status) = statuses.iter().find(|s| &s.name == name) else {
            return Ok(Progress::Updating);
        };
        let restarted_after = now_status
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .is_some_and(|t| t.0 >= started.round(k8s_openapi::jiff::Unit::Second).unwrap_or(started));
        // An image update is judged by the image id (OpenKruise's rule); an env-only
        // restart, recorded without one, by the container having started again.
        let done = if state.update_images && !before.image_id.is_empty() {
            now_status.image_id != before.image_id && !now_status.image_id.is_empty()
        } else {
            restarted_after
        };
        if !done {
            return Ok(Progress::Updating);
        }
    }
    if !state.next_container_images.is_empty() {
        return Ok(Progress::NextBatch);
    }
    Ok(Progress::Done)
}

/// Applies the images held during the grace period.
pub fn finish_grace(pod: &mut Pod, now: Timestamp) -> Result<(), InPlaceError> {
    let Some(g) = grace(pod)? else { return Ok(()) };
    let env: BTreeSet<String> = if g.update_env_from_metadata {
        state(pod)?.and_then(|s| s.last_container_statuses).unwrap_or_default().into_keys().collect()
    } else {
        BTreeSet::new()
    };
    if let Some(a) = pod.metadata.annotations.as_mut() {
        a.remove(GRACE_ANNOTATION);
        a.remove(LEGACY_GRACE_ANNOTATION);
    }
    patch_batch(pod, &g.revision, &g.container_images, &env, now)
}

/// Patches the next batch of images (the current one is done).
pub fn next_batch(pod: &mut Pod, now: Timestamp) -> Result<(), InPlaceError> {
    let Some(mut st) = state(pod)? else { return Ok(()) };
    let images = std::mem::take(&mut st.next_container_images);
    let (now_batch, rest) = first_batch(pod, &images);
    let mut last = st.last_container_statuses.take().unwrap_or_default();
    for name in now_batch.keys() {
        last.insert(
            name.clone(),
            ContainerRecord { image_id: image_id(pod, name), resources: empty_object() },
        );
    }
    st.last_container_statuses = Some(last);
    st.next_container_images = rest;
    st.container_batches_record
        .push(Batch { timestamp: Time(now), containers: now_batch.keys().cloned().collect() });
    set_images(pod, &now_batch)?;
    annotate(pod, STATE_ANNOTATION, &st);
    Ok(())
}

/// Whether the pod carries the [`READY_CONDITION`] readiness gate.
pub fn has_readiness_gate(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.readiness_gates.iter().flatten())
        .any(|g| g.condition_type == READY_CONDITION)
}

/// Adds the [`READY_CONDITION`] readiness gate to a pod template or pod spec.
pub fn add_readiness_gate(gates: &mut Option<Vec<PodReadinessGate>>) {
    let gates = gates.get_or_insert_with(Vec::new);
    if !gates.iter().any(|g| g.condition_type == READY_CONDITION) {
        gates.push(PodReadinessGate { condition_type: READY_CONDITION.to_owned() });
    }
}

/// The pod's [`READY_CONDITION`], if any.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == READY_CONDITION)
}

/// Whether the pod is not held back by an in-place update (its condition is not
/// False).
pub fn is_in_place_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_none_or(|c| c.status != "False")
}

/// Sets [`READY_CONDITION`] to `ready` (False with reason [`START_REASON`]); returns
/// whether anything changed.
pub fn set_ready_condition(pod: &mut Pod, ready: bool, now: Timestamp) -> bool {
    let status = if ready { "True" } else { "False" };
    let conditions = pod.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == READY_CONDITION) {
        if c.status == status {
            return false;
        }
        c.status = status.to_owned();
        c.reason = (!ready).then(|| START_REASON.to_owned());
        c.last_transition_time = Some(Time(now));
        return true;
    }
    conditions.push(PodCondition {
        type_: READY_CONDITION.to_owned(),
        status: status.to_owned(),
        reason: (!ready).then(|| START_REASON.to_owned()),
        last_transition_time: Some(Time(now)),
        ..Default::default()
    });
    true
}

#[cfg(test)]
mod tests;
