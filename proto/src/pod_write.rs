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
