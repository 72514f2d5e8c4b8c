//! The pure half of container recreation: which request of a pod goes first, and where
//! each of its containers stands given the pod's status (as kubelet reports it) and
//! what the agent already did. No I/O here; [`super`] acts on the outcome.
//!
//! A container counts as recreated ("already restarted", as OpenKruise's daemon has
//! it) when it runs and its id differs from the request's `statusContext.containerID`,
//! its restart count grew past `statusContext.restartCount`, or it started after the
//! request was created. Without `forceRecreate` such a container is not stopped again,
//! and one that is not running is left to kubelet, which restarts it. With
//! `forceRecreate` the agent recreates the container whatever its state.

use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerStatus;
use k8s_openapi::jiff::Timestamp;
use stevedore_proto::crd::container_recreate_request::{
    ContainerRecreatePhase, ContainerRecreateRequest, ContainerRecreateRequestContainer,
    ContainerRecreateRequestContainerRecreateState, ContainerRecreateRequestPhase,
};

/// A runtime id without its `<runtime>://` prefix.
pub fn bare_id(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

/// Sort key: a request already Recreating first, then the oldest, then by name.
fn order_key(crr: &ContainerRecreateRequest) -> (u8, Option<Timestamp>, String) {
    let phase = crr.status.as_ref().map(|s| s.phase);
    let weight = u8::from(phase != Some(ContainerRecreateRequestPhase::Recreating));
    (
        weight,
        crr.metadata.creation_timestamp.as_ref().map(|t| t.0),
        crr.metadata.name.clone().unwrap_or_default(),
    )
}

/// Whether a request still needs work: not completed, not being deleted.
pub fn is_active(crr: &ContainerRecreateRequest) -> bool {
    crr.metadata.deletion_timestamp.is_none()
        && crr.status.as_ref().is_none_or(|s| {
            s.completion_time.is_none() && s.phase != ContainerRecreateRequestPhase::Completed
        })
}

/// The active requests of one pod, the one to handle first at the front.
pub fn in_order(mut crrs: Vec<ContainerRecreateRequest>) -> Vec<ContainerRecreateRequest> {
    crrs.retain(is_active);
    crrs.sort_by_key(order_key);
    crrs
}

/// What the agent knows of a container it stopped (or recreated) for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    /// The id it stopped, bare.
    pub old_id: String,
}

/// One container's inputs.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The request's entry.
    pub spec: &'a ContainerRecreateRequestContainer,
    /// Its state in the request's status so far.
    pub previous: Option<&'a ContainerRecreateRequestContainerRecreateState>,
    /// What the agent remembers of stopping it (lost on an agent restart).
    pub killed: Option<&'a Killed>,
    /// Whether the pod's spec has a container of that name.
    pub in_pod_spec: bool,
    /// The pod's status of the container.
    pub status: Option<&'a ContainerStatus>,
    /// `strategy.forceRecreate`.
    pub force: bool,
    /// `strategy.minStartedSeconds`.
    pub min_started: Duration,
    /// When the request was created.
    pub created: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
}

/// Where a container stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Its state to report.
    pub state: ContainerRecreateRequestContainerRecreateState,
    /// The agent has to stop or recreate it now.
    pub act: bool,
    /// Look again after this long (minStartedSeconds still running).
    pub recheck: Option<Duration>,
}

fn state(
    name: &str,
    phase: ContainerRecreatePhase,
    message: Option<String>,
    killed: bool,
) -> ContainerRecreateRequestContainerRecreateState {
    ContainerRecreateRequestContainerRecreateState {
        name: name.to_owned(),
        phase,
        message,
        is_killed: killed.then_some(true),
    }
}

/// The container's state; see the module docs for the rules.
pub fn assess(i: &Inputs<'_>) -> Assessment {
    let name = i.spec.name.as_str();
    let was_killed = i.previous.and_then(|p| p.is_killed) == Some(true) || i.killed.is_some();
    let keep = |state| Assessment { state, act: false, recheck: None };
    if let Some(p) = i
        .previous
        .filter(|p| matches!(p.phase, ContainerRecreatePhase::Succeeded | ContainerRecreatePhase::Failed))
    {
        return keep(p.clone());
    }
    if !i.in_pod_spec {
        let msg = format!("container {name:?} is not a container of the pod");
        return keep(state(name, ContainerRecreatePhase::Failed, Some(msg), false));
    }
    let Some(status) = i.status else {
        let msg = "the container has no status in the pod yet".to_owned();
        return keep(state(name, ContainerRecreatePhase::Pending, Some(msg), was_killed));
    };
    let running_since =
        status.state.as_ref().and_then(|s| s.running.as_ref()).map(|r| r.started_at.as_ref().map(|t| t.0));
    let current = bare_id(status.container_id.as_deref().unwrap_or_default());
    let context_id = i.spec.status_context.as_ref().map(|c| bare_id(&c.container_id)).unwrap_or_default();
    if was_killed {
        let old = i.killed.map_or(context_id, |k| k.old_id.as_str());
        return match running_since {
            Some(started) if !current.is_empty() && current != old => {
                started_check(i, name, status, started, true)
            }
            _ => keep(state(
                name,
                ContainerRecreatePhase::Recreating,
                Some("waiting for the new container to run".to_owned()),
                true,
            )),
        };
    }
    if i.force {
        return Assessment {
            state: state(name, ContainerRecreatePhase::Pending, None, false),
            act: true,
            recheck: None,
        };
    }
    let Some(started) = running_since else {
        // Not running: kubelet restarts it (OpenKruise counts it as being recreated).
        let msg = "the container is not running; waiting for kubelet to restart it".to_owned();
        return keep(state(name, ContainerRecreatePhase::Recreating, Some(msg), false));
    };
    let restarted = (!context_id.is_empty() && current != context_id)
        || i.spec.status_context.as_ref().is_some_and(|c| status.restart_count > c.restart_count)
        || matches!((started, i.created), (Some(s), Some(c)) if s > c);
    if restarted {
        return started_check(i, name, status, started, false);
    }
    Assessment { state: state(name, ContainerRecreatePhase::Pending, None, false), act: true, recheck: None }
}

/// A new container runs: Succeeded once ready and up for `minStartedSeconds`.
fn started_check(
    i: &Inputs<'_>,
    name: &str,
    status: &ContainerStatus,
    started: Option<Timestamp>,
    killed: bool,
) -> Assessment {
    let up = started
        .map_or(Duration::ZERO, |s| Duration::try_from(i.now.duration_since(s)).unwrap_or(Duration::ZERO));
    if !status.ready {
        let msg = "the new container runs; waiting for it to be ready".to_owned();
        return Assessment {
            state: state(name, ContainerRecreatePhase::Recreating, Some(msg), killed),
            act: false,
            recheck: None,
        };
    }
    if up < i.min_started {
        let left = i.min_started - up;
        let msg =
            format!("the new container is ready; {}s of minStartedSeconds left", left.as_secs_f64().ceil());
        return Assessment {
            state: state(name, ContainerRecreatePhase::Recreating, Some(msg), killed),
            act: false,
            recheck: Some(left),
        };
    }
    Assessment {
        state: state(name, ContainerRecreatePhase::Succeeded, None, killed),
        act: false,
        recheck: None,
    }
}

#[cfg(test)]
mod tests;
