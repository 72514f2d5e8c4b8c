//! ContainerRecreateRequest, the controller's side (OpenKruise v1.9.0
//! `pkg/controller/containerrecreaterequest`); the node agent recreates the
//! containers and writes the request's phase and per-container states.
//!
//! For an unfinished request the controller:
//! - completes it, with a message, when its pod is gone (deleted, being deleted, or
//!   replaced by one with another uid), when the agent has not answered within
//!   [`RESPONSE_TIMEOUT`] of its creation (it still has no status), or when
//!   `activeDeadlineSeconds` have passed since its creation;
//! - while it is Recreating, copies the pod's running containers into the annotation
//!   `crr.apps.kruise.io/sync-container-statuses`, and, with
//!   `unreadyGracePeriodSeconds`, holds the pod not ready before the agent recreates
//!   anything: the finalizer `crr.apps.kruise.io/unready-acquired` first, then a
//!   `KruisePodReady` not-ready key (pods with that readiness gate only), then the
//!   annotation `crr.apps.kruise.io/unready-acquired` with the time, which the
//!   agent waits for.
//!
//! A finished (or deleted) request releases the key and the finalizer, loses its
//! `active` label and is deleted `ttlSecondsAfterFinished` after completion. Each
//! deadline is a requeue at the moment it falls due.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::Pod,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use serde_json::json;
use stevedore_proto::{
    crd::container_recreate_request::{
        ContainerRecreateRequest, ContainerRecreateRequestPhase, ContainerRecreateRequestSyncContainerStatus,
    },
    keys,
};
use tracing::{info, instrument};

use super::pod_readiness::{self, Message};
use crate::runtime::Events;

/// How long the node agent has to give a new request a status.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The user agent of the requests' not-ready keys.
pub const USER_AGENT: &str = "ContainerRecreateRequest";

/// What reconciles share.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// Events on the requests.
    pub events: Events,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

/// The controller: every request, and every pod (from the controller's one shared
/// pod watch, `pods`) mapped to its unfinished requests (by namespace and the pod-uid
/// label), so that a pod deleted or changing its container statuses is seen at once.
/// That watch leaves out the node agents' pods: a request on one of those is looked
/// at every [`NODE_LOCAL_POLL`].
pub fn controller(
    client: &Client,
    pods: impl futures_util::Stream<Item = Arc<Pod>> + Send + 'static,
) -> Controller<ContainerRecreateRequest> {
    let controller =
        Controller::new(Api::<ContainerRecreateRequest>::all(client.clone()), watcher::Config::default());
    let requests = controller.store();
    controller.watches_shared_stream(pods, move |pod: Arc<Pod>| {
        let (ns, uid) = (pod.namespace(), pod.uid());
        requests
            .state()
            .into_iter()
            .filter(|r| {
                r.namespace() == ns
                    && uid.is_some()
                    && r.labels().get(keys::CRR_POD_UID) == uid.as_ref()
                    && !is_finished(r)
            })
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect::<Vec<_>>()
    })
}

/// Completed or being deleted.
pub fn is_finished(crr: &ContainerRecreateRequest) -> bool {
    crr.metadata.deletion_timestamp.is_some()
        || crr.status.as_ref().is_some_and(|s| s.completion_time.is_some())
}

/// The request's not-ready key on its pod.
pub fn readiness_message(crr: &ContainerRecreateRequest) -> Message {
    Message {
        user_agent: USER_AGENT.into(),
        key: format!("{}/{}", crr.namespace().unwrap_or_default(), crr.name_any()),
    }
}

/// Whether `pod` (the pod of the request's name, if any) is no longer the request's:
/// gone, being deleted, or another pod of that name.
pub fn pod_gone(crr: &ContainerRecreateRequest, pod: Option<&Pod>) -> bool {
    pod.is_none_or(|p| {
        p.metadata.deletion_timestamp.is_some() || p.uid().as_ref() != crr.labels().get(keys::CRR_POD_UID)
    })
}

/// What the request's deadlines say at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Due {
    /// A deadline has passed: complete with this message.
    Complete(&'static str),
    /// None has: the next falls due after this long (none when there is none).
    Wait(Option<Duration>),
}

fn left(created: Timestamp, limit: SignedDuration, now: Timestamp) -> SignedDuration {
    limit - now.duration_since(created)
}

/// The agent's response deadline ([`RESPONSE_TIMEOUT`] after creation, while the
/// request has no status) and `activeDeadlineSeconds` (after creation).
pub fn deadlines(crr: &ContainerRecreateRequest, now: Timestamp) -> Due {
    let Some(created) = crr.metadata.creation_timestamp.as_ref().map(|t| t.0) else { return Due::Wait(None) };
    let mut next: Option<SignedDuration> = None;
    if crr.status.is_none() {
        let l = left(created, SignedDuration::try_from(RESPONSE_TIMEOUT).unwrap_or(SignedDuration::MAX), now);
        if !l.is_positive() {
            return Due::Complete("daemon has not responded for a long time");
        }
        next = Some(l);
    }
    if let Some(secs) = crr.spec.active_deadline_seconds {
        let l = left(created, SignedDuration::from_secs(secs), now);
        if !l.is_positive() {
            return Due::Complete("recreating has exceeded the activeDeadlineSeconds");
        }
        next = Some(next.map_or(l, |n| n.min(l)));
    }
    Due::Wait(next.map(|n| n.unsigned_abs()))
}

/// How long a completed request has until `ttlSecondsAfterFinished` deletes it
/// (zero: now); `None` without a TTL or a completion time.
pub fn ttl_left(crr: &ContainerRecreateRequest, now: Timestamp) -> Option<Duration> {
    let ttl = crr.spec.ttl_seconds_after_finished?;
    let done = crr.status.as_ref()?.completion_time.as_ref()?.0;
    let l = left(done, SignedDuration::from_secs(i64::from(ttl)), now);
    Some(if l.is_positive() { l.unsigned_abs() } else { Duration::ZERO })
}

/// The pod's containers the request names that run since the request was made, as
/// the agent reads them from `crr.apps.kruise.io/sync-container-statuses`.
pub fn synced_statuses(
    crr: &ContainerRecreateRequest,
    pod: &Pod,
) -> Vec<ContainerRecreateRequestSyncContainerStatus> {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    let created = crr.metadata.creation_timestamp.as_ref().map(|t| t.0);
    crr.spec
        .containers
        .iter()
        .filter_map(|c| statuses?.iter().find(|s| s.name == c.name))
        .filter(|s| {
            let started = s
                .state
                .as_ref()
                .and_then(|st| st.running.as_ref())
                .map(|r| r.started_at.as_ref().map(|t| t.0));
            // running, and not since before the request (history)
            match (started, created) {
                (None, _) => false,
                (Some(Some(at)), Some(created)) => at >= created,
                (Some(_), _) => true,
            }
        })
        .map(|s| ContainerRecreateRequestSyncContainerStatus {
            name: s.name.clone(),
            ready: s.ready,
            restart_count: s.restart_count,
            container_id: s.container_id.clone().unwrap_or_default(),
        })
        .collect()
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// How often a request on a pod a node agent runs (an Advanced DaemonSet's or a
/// BroadcastJob's, not in the controller's pod watch) is looked at while unfinished.
pub const NODE_LOCAL_POLL: Duration = Duration::from_secs(2);

fn requeue(next: Option<Duration>) -> Action {
    next.map_or_else(Action::await_change, Action::requeue)
}

/// One pass over one request.
///
/// # Errors
/// The API server refused a request (retried with backoff).
#[instrument(skip_all, fields(crr = %format!("{}/{}", crr.namespace().unwrap_or_default(), crr.name_any())))]
pub async fn reconcile(crr: Arc<ContainerRecreateRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = crr.namespace().unwrap_or_default();
    let name = crr.name_any();
    let api: Api<ContainerRecreateRequest> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = pods.get_opt(&crr.spec.pod_name).await?;
    let now = Timestamp::now();

    if is_finished(&crr) {
        if crr.finalizers().iter().any(|f| f == keys::CRR_UNREADY_ACQUIRED) {
            release(&ctx, &api, &crr, pod.as_ref()).await?;
        }
        if crr.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        if crr.labels().contains_key(keys::CRR_ACTIVE) {
            let body = json!({"metadata": {"labels": {keys::CRR_ACTIVE: null}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)).await?;
            // the change comes back through the watch
            return Ok(Action::await_change());
        }
        return match ttl_left(&crr, now) {
            Some(Duration::ZERO) => {
                info!("deleting the request: ttlSecondsAfterFinished passed");
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => Ok(Action::await_change()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
                    Err(e) => Err(e.into()),
                }
            }
            left => Ok(requeue(left)),
        };
    }

    if pod_gone(&crr, pod.as_ref()) {
        complete(&ctx, &api, &crr, now, "pod has gone", "PodGone").await?;
        return Ok(Action::await_change());
    }
    let pod = pod.unwrap_or_default();
    let next = match deadlines(&crr, now) {
        Due::Complete(message) => {
            let reason = if crr.status.is_none() { "AgentNotResponding" } else { "DeadlineExceeded" };
            complete(&ctx, &api, &crr, now, message, reason).await?;
            return Ok(Action::await_change());
        }
        Due::Wait(next) => next,
    };
    // a node agent's pod is not in the controller's pod watch: its changes are
    // looked for at least every NODE_LOCAL_POLL
    let next = if pod.labels().contains_key(keys::NODE_LOCAL) {
        Some(next.map_or(NODE_LOCAL_POLL, |n| n.min(NODE_LOCAL_POLL)))
    } else {
        next
    };
    if crr.status.as_ref().map(|s| s.phase) != Some(ContainerRecreateRequestPhase::Recreating) {
        return Ok(requeue(next));
    }

    let synced = serde_json::to_string(&synced_statuses(&crr, &pod)).unwrap_or_else(|_| "[]".into());
    if crr.annotations().get(keys::CRR_SYNC_CONTAINER_STATUSES) != Some(&synced) {
        let body = json!({"metadata": {"annotations": {keys::CRR_SYNC_CONTAINER_STATUSES: synced}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)).await?;
    }
    let grace = crr.spec.strategy.as_ref().and_then(|s| s.unready_grace_period_seconds);
    let acquired = crr.annotations().get(keys::CRR_UNREADY_ACQUIRED).is_some_and(|v| !v.is_empty());
    if grace.is_some() && !acquired {
        acquire(&ctx, &api, &crr, &pod, now).await?;
    }
    Ok(requeue(next))
}

/// Marks the request Completed with `message`.
async fn complete(
    ctx: &Ctx,
    api: &Api<ContainerRecreateRequest>,
    crr: &ContainerRecreateRequest,
    now: Timestamp,
    message: &str,
    reason: &str,
) -> Result<(), kube::Error> {
    info!(message, "completing the request");
    // the resourceVersion makes it lose to a status the agent wrote meanwhile
    let body = json!({
        "metadata": {"resourceVersion": crr.resource_version()},
        "status": {"phase": "Completed", "completionTime": rfc3339(now), "message": message},
    });
    api.patch_status(&crr.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await?;
    ctx.events.publish(crr, true, reason, format!("Completed: {message}")).await;
    Ok(())
}

/// Holds the pod not ready for the request: finalizer, key, then the annotation.
async fn acquire(
    ctx: &Ctx,
    api: &Api<ContainerRecreateRequest>,
    crr: &ContainerRecreateRequest,
    pod: &Pod,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let ns = crr.namespace().unwrap_or_default();
    if pod_readiness::has_gate(pod) {
        if !crr.finalizers().iter().any(|f| f == keys::CRR_UNREADY_ACQUIRED) {
            let mut finalizers = crr.finalizers().to_vec();
            finalizers.push(keys::CRR_UNREADY_ACQUIRED.into());
            let body =
                json!({"metadata": {"resourceVersion": crr.resource_version(), "finalizers": finalizers}});
            api.patch(&crr.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await?;
        }
        pod_readiness::add_not_ready_key(&ctx.client, &ns, &pod.name_any(), &readiness_message(crr)).await?;
        ctx.events
            .publish(
                crr,
                false,
                "PodNotReady",
                format!("Marked pod {} not ready before recreating", pod.name_any()),
            )
            .await;
    } else {
        ctx.events
            .publish(
                crr,
                true,
                "PodNotReadyUnsupported",
                format!(
                    "Pod {} has no {} readiness gate: it cannot be marked not ready",
                    pod.name_any(),
                    keys::KRUISE_POD_READY
                ),
            )
            .await;
    }
    let body = json!({"metadata": {"annotations": {keys::CRR_UNREADY_ACQUIRED: rfc3339(now)}}});
    api.patch(&crr.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await?;
    Ok(())
}

/// Releases the pod's not-ready key (while the pod is the request's and not being
/// deleted) and the finalizer.
async fn release(
    ctx: &Ctx,
    api: &Api<ContainerRecreateRequest>,
    crr: &ContainerRecreateRequest,
    pod: Option<&Pod>,
) -> Result<(), kube::Error> {
    if let Some(pod) = pod.filter(|p| p.metadata.deletion_timestamp.is_none() && pod_readiness::has_gate(p)) {
        let ns = crr.namespace().unwrap_or_default();
        pod_readiness::remove_not_ready_key(&ctx.client, &ns, &pod.name_any(), &readiness_message(crr))
            .await?;
    }
    let finalizers: Vec<&String> =
        crr.finalizers().iter().filter(|f| f.as_str() != keys::CRR_UNREADY_ACQUIRED).collect();
    let body = json!({"metadata": {"resourceVersion": crr.resource_version(), "finalizers": finalizers}});
    api.patch(&crr.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
