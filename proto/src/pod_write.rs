//! Writing a pod's status and spec as its controllers do: a get-edit-write loop that
//! redoes the edit after a lost race (OpenKruise's `RetryOnConflict`), and Ready
//! recomputed from the readiness gates (Kubernetes' `SetPodReadyCondition`). Shared by
//! the controller (CloneSet, ContainerRecreateRequest) and the agent (its node's
//! DaemonSet pods). The writes need the `client` feature.

use k8s_openapi::{
    api::core::v1::{Pod, PodCondition},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
#[cfg(feature = "client")]
use kube::{Api, Client, api::PostParams};

/// How often a write that lost a race (409) is tried again at once.
#[cfg(feature = "client")]
const CONFLICT_RETRIES: usize = 5;

/// The pod's condition of `type_`, to edit.
pub fn condition<'a>(pod: &'a mut Pod, type_: &str) -> Option<&'a mut PodCondition> {
    pod.status.as_mut()?.conditions.as_mut()?.iter_mut().find(|c| c.type_ == type_)
}

/// The status (`True`, `False`, `Unknown`) of the pod's condition of `type_`.
pub fn status_of(pod: &Pod, type_: &str) -> Option<String> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).map(|c| c.status.clone())
}

/// Ready from the readiness gates, when the containers are ready and the pod has a
/// Ready condition (`SetPodReadyCondition`).
pub fn recompute_ready(pod: &mut Pod, now: Timestamp) {
    if status_of(pod, "Ready").is_none() || status_of(pod, "ContainersReady").as_deref() != Some("True") {
        return;
    }
    let gates: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.condition_type)
        .collect();
    let unready: Vec<String> = gates
        .iter()
        .filter_map(|g| match status_of(pod, g) {
            None => Some(format!("corresponding condition of pod readiness gate {g:?} does not exist.")),
            Some(s) if s != "True" => {
                Some(format!("the status of pod readiness gate {g:?} is not \"True\", but {s}"))
            }
            Some(_) => None,
        })
        .collect();
    let Some(ready) = condition(pod, "Ready") else { return };
    let status = if unready.is_empty() { "True" } else { "False" };
    if ready.status != status {
        *ready = PodCondition {
            type_: "Ready".into(),
            status: status.into(),
            reason: (!unready.is_empty()).then(|| "ReadinessGatesNotReady".into()),
            message: (!unready.is_empty()).then(|| unready.join(", ")),
            last_transition_time: Some(Time(now)),
            ..PodCondition::default()
        };
    }
}

/// Applies `edit` to the pod `namespace/name` as stored and writes its status back,
/// reading it again after a lost race; nothing when the pod is gone or `edit`
/// changed nothing.
#[cfg(feature = "client")]
pub async fn edit_status(
    client: &Client,
    namespace: &str,
    name: &str,
    edit: impl Fn(&mut Pod) -> bool,
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    edit_pod(&pods, name, true, |pod| {
        Ok::<_, kube::Error>(pod.metadata.deletion_timestamp.is_none() && edit(pod))
    })
    .await
}

/// Starts updating the pod `name` in place to `spec`, the step the CloneSet and the
/// node agent share: `InPlaceUpdateReady` set False first when containers change,
/// then `labels` and the in-place state written ([`crate::inplace::start`]). Both
/// writes read the pod as stored: one that already carries the revision of `labels`
/// (`controller-revision-hash`) has its update started, though a watch that lags may
/// not show it yet, and is left alone; started again, the update would record the
/// new containers as the ones to replace and wait for their replacement forever.
/// Whether it started the update (not when already started, or the pod is gone).
///
/// # Errors
/// A write the API refused, or a pod whose in-place state does not parse.
#[cfg(feature = "client")]
pub async fn start_in_place<E: From<kube::Error> + From<crate::inplace::InPlaceError>>(
    pods: &Api<Pod>,
    name: &str,
    spec: &crate::inplace::UpdateSpec,
    labels: &std::collections::BTreeMap<String, String>,
    grace_seconds: i32,
) -> Result<bool, E> {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let target = labels.get(crate::keys::CONTROLLER_REVISION_HASH);
    let started = |p: &Pod| {
        target.is_some()
            && p.metadata.labels.as_ref().and_then(|l| l.get(crate::keys::CONTROLLER_REVISION_HASH)) == target
    };
    let (already, wrote) = (AtomicBool::new(false), AtomicBool::new(false));
    if spec.changes_containers() {
        edit_pod(pods, name, true, |p| {
            already.store(started(p), Relaxed);
            Ok::<_, kube::Error>(
                !already.load(Relaxed)
                    && p.metadata.deletion_timestamp.is_none()
                    && mark_in_place_ready(p, false, Timestamp::now()),
            )
        })
        .await?;
        if already.load(Relaxed) {
            return Ok(false);
        }
    }
    // the state's updateTimestamp is when the pod is patched
    let now = Timestamp::now();
    edit_pod::<E>(pods, name, false, |p| {
        wrote.store(!started(p), Relaxed);
        if wrote.load(Relaxed) {
            crate::inplace::start(p, spec, labels, grace_seconds, now)?;
        }
        Ok(wrote.load(Relaxed))
    })
    .await?;
    Ok(wrote.load(Relaxed))
}

/// Applies `edit` to the pod `name` as stored and writes it back (its status
/// subresource when `status`) when `edit` says it changed it, reading it again and
/// redoing the edit after a lost race (as OpenKruise's `RetryOnConflict`); nothing
/// when the pod is gone.
#[cfg(feature = "client")]
pub async fn edit_pod<E: From<kube::Error>>(
    pods: &Api<Pod>,
    name: &str,
    status: bool,
    edit: impl Fn(&mut Pod) -> Result<bool, E>,
) -> Result<(), E> {
    let mut tries = 0;
    loop {
        let Some(mut pod) = pods.get_opt(name).await? else { return Ok(()) };
        if !edit(&mut pod)? {
            return Ok(());
        }
        let pp = PostParams::default();
        let written = if status {
            pods.replace_status(name, &pp, &pod).await
        } else {
            pods.replace(name, &pp, &pod).await
        };
        match written {
            Err(kube::Error::Api(e)) if e.code == 409 && tries < CONFLICT_RETRIES => tries += 1,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Sets the pod's `InPlaceUpdateReady` condition to `ready` and recomputes Ready;
/// whether anything changed.
pub fn mark_in_place_ready(pod: &mut Pod, ready: bool, now: Timestamp) -> bool {
    let changed = crate::inplace::set_ready_condition(pod, ready, now);
    if changed {
        recompute_ready(pod, now);
    }
    changed
}

/// What [`refresh_in_place`] found, or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// Nothing to do: no update under way, or done and marked ready already.
    Nothing,
    /// The update waits out its grace period: this much is left.
    Grace(std::time::Duration),
    /// Containers of the current batch are still being updated.
    Updating,
    /// The grace period was over: the held images were patched.
    GraceFinished,
    /// A batch was done: the next one was patched.
    NextBatch,
    /// Every container was updated: `InPlaceUpdateReady` was set True.
    MarkedReady,
}

/// Why [`refresh_in_place`] could not go on.
#[cfg(feature = "client")]
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The pod's in-place update state cannot be read or applied.
    #[error(transparent)]
    InPlace(#[from] crate::inplace::InPlaceError),
    /// The API refused a write.
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// Carries a pod's in-place update one step on, as OpenKruise's refresh does, for
/// whichever controls it (the CloneSet controller, the node's agent): patches the
/// held images once the grace period is over, the next batch once one is done, and
/// sets `InPlaceUpdateReady` True once every container runs its new image. Each write
/// re-reads the pod and re-judges it (another pass may have done the step).
///
/// # Errors
/// The pod's update state is unreadable, or the API refuses a write.
#[cfg(feature = "client")]
pub async fn refresh_in_place(client: &Client, pod: &Pod, now: Timestamp) -> Result<Refreshed, RefreshError> {
    use crate::inplace::{self, Progress};
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    // one step, done on the pod as stored when it is still due there
    let step = |want: Progress, apply: fn(&mut Pod, Timestamp) -> Result<(), inplace::InPlaceError>| {
        let api = api.clone();
        async move {
            edit_pod::<RefreshError>(&api, name, false, |p| {
                let due = inplace::progress(p, now)? == want;
                if due {
                    apply(p, now)?;
                }
                Ok(due)
            })
            .await
        }
    };
    match inplace::progress(pod, now)? {
        Progress::Grace(left) => Ok(Refreshed::Grace(left)),
        Progress::Updating => Ok(Refreshed::Updating),
        Progress::GraceOver => {
            step(Progress::GraceOver, inplace::finish_grace).await?;
            Ok(Refreshed::GraceFinished)
        }
        Progress::NextBatch => {
            step(Progress::NextBatch, inplace::next_batch).await?;
            Ok(Refreshed::NextBatch)
        }
        Progress::Done | Progress::None => {
            if !inplace::has_readiness_gate(pod)
                || inplace::ready_condition(pod).is_some_and(|c| c.status == "True")
            {
                return Ok(Refreshed::Nothing);
            }
            edit_status(client, ns, name, |p| mark_in_place_ready(p, true, now)).await?;
            Ok(Refreshed::MarkedReady)
        }
    }
}
