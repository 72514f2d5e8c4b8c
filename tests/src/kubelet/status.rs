//! The pod status kubelet would write, computed from what the runtime shows
//! ([`Observed`]) — a pure function, shared by the CRI and the hollow modes.
//!
//! Follows kubelet 1.33's `generateAPIPodStatus`/`getPhase`/`status.Generate*`: the
//! five kubelet-owned conditions in kubelet's order, other conditions (readiness gates,
//! OpenKruise's `InPlaceUpdateReady`…) kept as they are, `lastTransitionTime` kept while
//! a condition's status does not change, a terminal phase never left.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The conditions kubelet owns (it leaves any other alone).
pub const KUBELET_CONDITIONS: [&str; 5] =
    ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"];

/// A container's runtime state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
    /// The runtime does not know.
    Unknown,
}

/// One container instance as the runtime shows it.
#[derive(Debug, Clone)]
pub struct CtrObs {
    /// Runtime id, without the `containerd://` prefix.
    pub id: String,
    /// Its state.
    pub state: CtrState,
    /// kubelet's restart count of this instance (its attempt).
    pub restart_count: i32,
    /// Exit code (exited only).
    pub exit_code: i32,
    /// The runtime's reason (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// The runtime's message.
    pub message: String,
    /// Start and finish times; `None` when not yet.
    pub started_at: Option<Timestamp>,
    /// See `started_at`.
    pub finished_at: Option<Timestamp>,
    /// The image as the spec named it when created.
    pub image: String,
    /// The runtime's image reference (digest), reported as `imageID`.
    pub image_ref: String,
    /// The `io.kubernetes.container.hash` it was created with.
    pub hash: String,
    /// Its readiness probe passes (or it has none and runs).
    pub ready: bool,
}

/// Everything [`pod_status`] needs beyond the pod.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The sandbox is ready (network set up).
    pub sandbox_ready: bool,
    /// The pod's IP (empty when no sandbox).
    pub pod_ip: String,
    /// The node's IP.
    pub host_ip: String,
    /// Instances per container name, newest first.
    pub containers: HashMap<String, Vec<CtrObs>>,
    /// Why a container waits, when sync knows better than `ContainerCreating`
    /// (`ErrImageNeverPull`, `CreateContainerConfigError`, `CrashLoopBackOff`…):
    /// name → (reason, message).
    pub waiting: HashMap<String, (String, String)>,
    /// Now, for new conditions and `startTime`.
    pub now: Timestamp,
}

impl Observed {
    /// The newest instance of a container.
    pub fn latest(&self, name: &str) -> Option<&CtrObs> {
        self.containers.get(name).and_then(|v| v.first())
    }
}

/// Whether the pod has finished for good (`Succeeded` or `Failed`).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Whether the pod is `Running` with its `Ready` condition `True`.
pub fn running_and_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// True when the init containers are done: each one's newest instance exited 0 (or
/// the pod already runs its containers, which kubelet also counts as initialized).
pub fn initialized(pod: &Pod, obs: &Observed) -> bool {
    let spec = pod.spec.as_ref();
    let inits = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    let ran_app = spec.is_some_and(|s| s.containers.iter().any(|c| obs.latest(&c.name).is_some()));
    ran_app
        || inits
            .iter()
            .all(|c| obs.latest(&c.name).is_some_and(|o| o.state == CtrState::Exited && o.exit_code == 0))
}

/// API times have whole seconds: anything finer would differ after a round trip and
/// make every sync write the status again.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn time(t: Option<Timestamp>) -> Option<Time> {
    t.map(|t| Time(whole_seconds(t)))
}

fn terminated(o: &CtrObs) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(format!("containerd://{}", o.id)),
            exit_code: o.exit_code,
            reason: Some(if o.reason.is_empty() {
                if o.exit_code == 0 { "Completed" } else { "Error" }.to_owned()
            } else {
                o.reason.clone()
            }),
            message: (!o.message.is_empty()).then(|| o.message.clone()),
            started_at: time(o.started_at),
            finished_at: time(o.finished_at),
            signal: None,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message: (!message.is_empty()).then(|| message.to_owned()),
        }),
        ..Default::default()
    }
}

/// One container's status. `default_wait` is the reason when nothing has run yet.
fn container_status(c: &Container, obs: &Observed, default_wait: &str, init: bool) -> ContainerStatus {
    let instances = obs.containers.get(&c.name).map(Vec::as_slice).unwrap_or_default();
    let latest = instances.first();
    let wait = obs.waiting.get(&c.name);
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        restart_count: latest.map_or(0, |o| o.restart_count),
        ready: false,
        started: Some(false),
        ..Default::default()
    };
    let Some(o) = latest else {
        let (r, m) = wait.map_or((default_wait, ""), |(r, m)| (r.as_str(), m.as_str()));
        st.state = Some(waiting(r, m));
        return st;
    };
    st.container_id = Some(format!("containerd://{}", o.id));
    st.image_id = o.image_ref.clone();
    if !o.image.is_empty() {
        st.image = o.image.clone();
    }
    let previous = instances.get(1).filter(|p| p.state == CtrState::Exited);
    match o.state {
        CtrState::Running => {
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning { started_at: time(o.started_at) }),
                ..Default::default()
            });
            st.ready = o.ready;
            st.started = Some(true);
            st.last_state = previous.map(terminated);
        }
        CtrState::Exited => match wait {
            Some((r, m)) => {
                st.state = Some(waiting(r, m));
                st.last_state = Some(terminated(o));
            }
            None => {
                st.state = Some(terminated(o));
                st.ready = init && o.exit_code == 0;
                st.last_state = previous.map(terminated);
            }
        },
        CtrState::Created | CtrState::Unknown => {
            st.state = Some(waiting("ContainerCreating", ""));
            st.last_state = previous.map(terminated);
        }
    }
    st
}

/// kubelet's `getPhase`.
fn phase(pod: &Pod, statuses: &[ContainerStatus], inited: bool, init_failed: bool) -> &'static str {
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    if !inited {
        return if init_failed { "Failed" } else { "Pending" };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.as_ref();
        if state.is_some_and(|x| x.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|x| x.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.as_ref().is_some_and(|l| l.terminated.is_some()) {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    match () {
        _ if waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => match policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "OnFailure" => "Running",
            _ => "Failed",
        },
        _ => "Pending",
    }
}

/// The pod's status as kubelet would write it now.
pub fn pod_status(pod: &Pod, obs: &Observed) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let inited = initialized(pod, obs);
    let never = spec.restart_policy.as_deref() == Some("Never");
    let init_failed = never
        && inits
            .iter()
            .any(|c| obs.latest(&c.name).is_some_and(|o| o.state == CtrState::Exited && o.exit_code != 0));

    let init_statuses: Vec<ContainerStatus> =
        inits.iter().map(|c| container_status(c, obs, "PodInitializing", true)).collect();
    let app_wait = if inited { "ContainerCreating" } else { "PodInitializing" };
    let statuses: Vec<ContainerStatus> =
        spec.containers.iter().map(|c| container_status(c, obs, app_wait, false)).collect();

    let mut phase = phase(pod, &statuses, inited, init_failed).to_owned();
    if let Some(p @ ("Succeeded" | "Failed")) = old.phase.as_deref() {
        phase = p.to_owned();
    }

    let unready: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let containers_ready = unready.is_empty();
    let gates: Vec<&str> = spec.readiness_gates.iter().flatten().map(|g| g.condition_type.as_str()).collect();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let gate_false: Vec<&str> = gates
        .iter()
        .copied()
        .filter(|g| !old_conditions.iter().any(|c| c.type_ == *g && c.status == "True"))
        .collect();

    let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let prev = old_conditions.iter().find(|c| c.type_ == type_ && c.status == status);
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: (!ok && !reason.is_empty()).then(|| reason.to_owned()),
            message: (!ok && !message.is_empty()).then_some(message),
            last_transition_time: Some(
                prev.and_then(|p| p.last_transition_time.clone()).unwrap_or(Time(whole_seconds(obs.now))),
            ),
            last_probe_time: None,
            observed_generation: None,
        }
    };
    let done = matches!(phase.as_str(), "Succeeded" | "Failed");
    let ready_reason = if done { "PodCompleted" } else { "ContainersNotReady" };
    let pending_inits: Vec<&str> = inits
        .iter()
        .filter(|c| !obs.latest(&c.name).is_some_and(|o| o.state == CtrState::Exited && o.exit_code == 0))
        .map(|c| c.name.as_str())
        .collect();
    let mut conditions = vec![
        cond("PodReadyToStartContainers", obs.sandbox_ready, "", String::new()),
        cond(
            "Initialized",
            inited,
            "ContainersNotInitialized",
            format!("containers with incomplete status: [{}]", pending_inits.join(" ")),
        ),
        if containers_ready && !gate_false.is_empty() {
            let msg = format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                gate_false[0]
            );
            cond("Ready", false, "ReadinessGatesNotReady", msg)
        } else {
            cond("Ready", containers_ready && !done, ready_reason, unready_msg.clone())
        },
        cond("ContainersReady", containers_ready && !done, ready_reason, unready_msg),
        cond("PodScheduled", true, "", String::new()),
    ];
    conditions
        .extend(old_conditions.iter().filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str())).cloned());

    let pod_ip = (!obs.pod_ip.is_empty()).then(|| obs.pod_ip.clone());
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(obs.host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: obs.host_ip.clone() }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old.start_time.clone().or(Some(Time(whole_seconds(obs.now)))),
        init_container_statuses: (!inits.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        qos_class: old.qos_class.clone(),
        ..old
    }
}

#[cfg(test)]
mod tests;
