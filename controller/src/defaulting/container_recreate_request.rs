//! ContainerRecreateRequest's mutating webhook, which in OpenKruise v1.9.0 also
//! refuses (`pkg/webhook/containerrecreaterequest/mutating`): the rules of
//! [`validation::jobs::container_recreate_request`](crate::validation::jobs::container_recreate_request)
//! on CREATE and UPDATE (where spec, the pod labels and the unready-acquired
//! annotation are immutable), then, on CREATE, the pod looked up through the API
//! server: it must exist, be active and scheduled, and have each container, with a
//! containerID in its status. The request gets the pod's uid and node as labels,
//! the pod's terminationGracePeriodSeconds when it sets none, and each container's
//! preStop (with the ports when preStop is httpGet) and statusContext.
//!
//! OpenKruise also reads the pod's Node, to refuse when it is gone and to copy a
//! virtual-kubelet label; Stevedore does not (no node runs a virtual kubelet here).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use kube::{
    ResourceExt,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, Operation as AdmissionOperation},
    },
};
use stevedore_proto::{
    crd::container_recreate_request::{ContainerRecreateRequest, ContainerRecreateRequestContainerContext},
    keys,
};

use super::{jobs, patch_by};
use crate::{
    validation::{Validator, jobs::container_recreate_request as rules},
    webhook::{Admit, Cluster, cluster, refused, typed},
};

/// The pod condition OpenKruise's sidecar terminator sets on a pod it ended: such a
/// pod is terminal but may still have containers recreated.
const SIDECAR_TERMINATED: &str = "SidecarTerminated";

/// The admission handler: rules, then the pod.
pub struct Admission {
    rules: Validator<ContainerRecreateRequest>,
    cluster: Arc<dyn Cluster>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Admission {
    /// A handler reading pods through `cluster`.
    pub fn new(cluster: Arc<dyn Cluster>) -> Self {
        // 400 for a bad request, 403 for a change to what may not change
        let rules =
            Validator::new(rules).code(|op, _| if *op == AdmissionOperation::Update { 403 } else { 400 });
        Self { rules, cluster }
    }
}

impl Admit for Admission {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let checked = self.rules.admit(req);
        if !checked.allowed || req.operation != AdmissionOperation::Create {
            return checked;
        }
        let Some(object) = &req.object else { return checked };
        let crr: ContainerRecreateRequest = match typed(object) {
            Ok(crr) => crr,
            Err(e) => return refused(req, 400, e),
        };
        let namespace = req.namespace.clone().or_else(|| crr.namespace()).unwrap_or_default();
        let pod_name = &crr.spec.pod_name;
        let pod = match cluster::get::<Pod>(self.cluster.as_ref(), Some(&namespace), pod_name) {
            Ok(Some(pod)) => pod,
            Ok(None) => {
                return refused(req, 400, format!("spec.podName: pod {namespace}/{pod_name} not found"));
            }
            Err(e) => return refused(req, 500, format!("spec.podName: {e}")),
        };
        match patch_by(object, |crr: &mut ContainerRecreateRequest| fill_from_pod(crr, &pod)) {
            Ok(patch) if patch.0.is_empty() => checked,
            Ok(patch) => match AdmissionResponse::from(req).with_patch(patch) {
                Ok(resp) => resp,
                Err(e) => refused(req, 500, format!("cannot encode the defaults: {e}")),
            },
            Err(e) => refused(req, 400, e),
        }
    }
}

/// Whether `pod` can have containers recreated: not being deleted, not Succeeded or
/// Failed (unless OpenKruise's sidecar terminator ended it).
pub fn is_active(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let terminal = status.and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
    let sidecar_terminated = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == SIDECAR_TERMINATED));
    (pod.metadata.deletion_timestamp.is_none() && !terminal) || sidecar_terminated
}

fn pod_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers.iter().flatten().chain(&spec.containers).find(|c| c.name == name)
}

fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status.as_ref()?.container_statuses.iter().flatten().find(|s| s.name == name)
}

/// Fills `crr` in from its `pod`, or says why the request cannot be made: the
/// defaults of every request (the active label, failurePolicy Fail), the pod's uid
/// and node as labels, the pod's terminationGracePeriodSeconds when the request sets
/// none, and per container its preStop (with the ports when preStop is httpGet) and
/// statusContext.
///
/// # Errors
/// The pod is inactive or not scheduled, or a container is named twice, is not in
/// the pod or has no containerID in the pod's status yet: the message names the
/// field.
pub fn fill_from_pod(crr: &mut ContainerRecreateRequest, pod: &Pod) -> Result<(), String> {
    let who = format!("pod {}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    if !is_active(pod) {
        return Err(format!(
            "spec.podName: {who} is not active (being deleted, Succeeded or Failed): its containers cannot be recreated"
        ));
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
    let Some(node) = node else {
        return Err(format!("spec.podName: {who} is not scheduled yet (no spec.nodeName)"));
    };
    jobs::container_recreate_request(crr, None);
    let labels = crr.metadata.labels.get_or_insert_default();
    labels.insert(keys::CRR_NODE_NAME.into(), node);
    labels.insert(keys::CRR_POD_UID.into(), pod.uid().unwrap_or_default());
    let strategy = crr.spec.strategy.get_or_insert_default();
    if strategy.termination_grace_period_seconds.is_none() {
        strategy.termination_grace_period_seconds =
            pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in crr.spec.containers.iter_mut().enumerate() {
        let field = format!("spec.containers[{i}].name");
        if !seen.insert(c.name.clone()) {
            return Err(format!("{field}: container {:?} is named twice", c.name));
        }
        let Some(spec) = pod_container(pod, &c.name) else {
            return Err(format!("{field}: container {:?} not found in {who}", c.name));
        };
        let status = container_status(pod, &c.name)
            .filter(|s| s.container_id.as_ref().is_some_and(|id| !id.is_empty()));
        let Some(status) = status else {
            return Err(format!(
                "{field}: container {:?} has no containerID in the status of {who} yet (not started)",
                c.name
            ));
        };
        c.pre_stop = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()).map(Into::into);
        if c.pre_stop.as_ref().is_some_and(|p| p.http_get.is_some()) {
            c.ports = spec.ports.clone();
        }
        c.status_context = Some(ContainerRecreateRequestContainerContext {
            container_id: status.container_id.clone().unwrap_or_default(),
            restart_count: status.restart_count,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
