//! Which nodes a per-node workload targets: the one decision the controller (desired
//! counts, update budgets, status) and the node agent (whether to run the pod on its
//! own node) both take, so that they never disagree.
//!
//! # Contract
//!
//! Each kind has exactly one function, pure over the Kubernetes objects it is given
//! and free of I/O: [`daemon_set`] for an Advanced DaemonSet and [`broadcast_job`] for
//! a BroadcastJob. Both take the node and the workload's pod template and return a
//! [`Placement`]:
//!
//! - `should_run`: a pod should be started on the node if none is there;
//! - `should_continue_running`: a pod already on the node may stay;
//! - `reason`: why not, when either is false (see [`Unfit`]).
//!
//! Callers must not add checks of their own (node readiness, free resources, …):
//! anything that decides placement belongs here, so that both sides see it. Nothing
//! here fails: malformed input (an unknown operator, a `Gt` bound that is not an
//! integer, a quantity that does not parse) never matches, as in Kubernetes, and the
//! reason says what was malformed.
//!
//! # Fidelity
//!
//! The rules are OpenKruise v1.9.0's (`nodeShouldRunDaemonPod` for DaemonSets,
//! `checkNodeFitness` for BroadcastJobs) and the Kubernetes v1.32 helpers they call
//! (`AddOrUpdateDaemonPodTolerations`, required node affinity, taint tolerations, the
//! scheduler's resource fit). Where the two kinds differ, they differ in OpenKruise
//! too; each function documents its rules.

use std::fmt;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, PodTemplateSpec, Taint,
    Toleration,
};

mod affinity;
mod resources;
mod taints;

#[cfg(test)]
mod tests;

/// Whether a workload's pod belongs on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// A pod should be created (or run) on the node if there is none.
    pub should_run: bool,
    /// A pod already on the node may keep running; when false it should be deleted.
    pub should_continue_running: bool,
    /// Why `should_run` (and maybe `should_continue_running`) is false; `None` when the
    /// node fits. When both are false it names a check that rules out running pods.
    pub reason: Option<Unfit>,
}

impl Placement {
    fn fits() -> Self {
        Self { should_run: true, should_continue_running: true, reason: None }
    }

    /// Neither new nor running pods belong on the node.
    fn never(reason: Unfit) -> Self {
        Self { should_run: false, should_continue_running: false, reason: Some(reason) }
    }

    /// No new pod, but a running one may stay.
    fn keep_only(reason: Unfit) -> Self {
        Self { should_run: false, should_continue_running: true, reason: Some(reason) }
    }
}

/// Why a node does not (fully) fit a workload's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unfit {
    /// The template's `spec.nodeName` names another node.
    NodeNameMismatch {
        /// The template's `spec.nodeName`.
        node_name: String,
    },
    /// A `spec.nodeSelector` entry is not among the node's labels.
    NodeSelectorMismatch {
        /// The first such key, in key order.
        key: String,
    },
    /// No term of the required node affinity matches the node.
    AffinityMismatch,
    /// No term of the required node affinity matches the node and some terms are
    /// malformed; a malformed term never matches, as in Kubernetes.
    MalformedAffinity {
        /// What is malformed, each with its path under `nodeSelectorTerms`.
        errors: Vec<String>,
    },
    /// The node has a `NoSchedule` or `NoExecute` taint the pod does not tolerate.
    UntoleratedTaint {
        /// The taint's key.
        key: String,
        /// The taint's value, if any.
        value: Option<String>,
        /// The taint's effect.
        effect: String,
    },
    /// The node is cordoned (`spec.unschedulable`) and the pod does not tolerate the
    /// `node.kubernetes.io/unschedulable:NoSchedule` taint (BroadcastJob only).
    Unschedulable,
    /// The node's allocatable resources cannot hold the pod (BroadcastJob only).
    InsufficientResources {
        /// Each resource that is short, in Kubernetes' order.
        resources: Vec<Insufficient>,
    },
    /// A quantity in the pod's requests or the node's allocatable does not parse, so
    /// the pod cannot be shown to fit.
    MalformedQuantity {
        /// Where: `spec.containers[0].resources.requests[cpu]`,
        /// `status.allocatable[memory]`, …
        field: String,
        /// The text that did not parse.
        value: String,
    },
}

/// One resource a node's allocatable cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insufficient {
    /// The resource name (`cpu`, `memory`, `pods`, `example.com/gpu`, …).
    pub resource: String,
    /// What the pod requests: millicores for `cpu`, otherwise whole units (bytes,
    /// pods, devices), rounded up.
    pub requested: i64,
    /// What the node has allocatable, in the same unit.
    pub allocatable: i64,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::NodeNameMismatch { node_name } => {
                write!(f, "the pod template's nodeName is {node_name:?}, not this node")
            }
            Unfit::NodeSelectorMismatch { key } => {
                write!(f, "node label {key:?} does not match the pod's nodeSelector")
            }
            Unfit::AffinityMismatch => {
                write!(f, "node didn't match the pod's required node affinity")
            }
            Unfit::MalformedAffinity { errors } => write!(
                f,
                "node didn't match the pod's required node affinity, which has malformed terms that match nothing: {}",
                errors.join("; ")
            ),
            Unfit::UntoleratedTaint { key, value, effect } => match value {
                Some(value) if !value.is_empty() => {
                    write!(f, "node has taint {key}={value}:{effect} that the pod doesn't tolerate")
                }
                _ => write!(f, "node has taint {key}:{effect} that the pod doesn't tolerate"),
            },
            Unfit::Unschedulable => write!(f, "node is unschedulable"),
            Unfit::InsufficientResources { resources } => {
                write!(f, "node has insufficient ")?;
                for (i, r) in resources.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(
                        f,
                        "{sep}{} (requested {}, allocatable {})",
                        r.resource, r.requested, r.allocatable
                    )?;
                }
                Ok(())
            }
            Unfit::MalformedQuantity { field, value } => {
                write!(f, "{field}: {value:?} is not a valid quantity")
            }
        }
    }
}

fn untolerated(taint: &Taint) -> Unfit {
    Unfit::UntoleratedTaint {
        key: taint.key.clone(),
        value: taint.value.clone(),
        effect: taint.effect.clone(),
    }
}

fn node_taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

/// Where an Advanced DaemonSet with pod template `template` runs, on `node`
/// (OpenKruise v1.9.0 `nodeShouldRunDaemonPod`, the same as Kubernetes' DaemonSet
/// controller). In order:
///
/// 1. `spec.nodeName`, when set, must be the node's name; otherwise neither runs.
/// 2. `spec.nodeSelector` must match the node's labels, and the required node affinity
///    (terms ORed, requirements in a term ANDed; `In`, `NotIn`, `Exists`,
///    `DoesNotExist`, `Gt`, `Lt` on labels, `In`/`NotIn` on `metadata.name` fields)
///    must match the node; otherwise neither runs.
/// 3. The node's taints against the template's tolerations plus the DaemonSet
///    defaults of [`daemon_pod_tolerations`]: an untolerated `NoExecute` taint means
///    neither runs; an untolerated `NoSchedule` one means no new pod, but a running
///    pod stays. `PreferNoSchedule` taints do not count. The defaults tolerate the
///    taints Kubernetes puts on not-ready, unreachable, pressured and cordoned nodes,
///    so such nodes keep (and get) their daemon pods.
///
/// Like OpenKruise, it does **not** look at node readiness, `spec.unschedulable`
/// (only its taint), free resources or host ports: the pod is placed and the kubelet
/// (here: the agent) admits it or not. `tolerationSeconds` is not looked at either: a
/// toleration with a deadline still tolerates.
pub fn daemon_set(node: &Node, template: &PodTemplateSpec) -> Placement {
    let none = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&none);
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    if let Some(wanted) = spec.node_name.as_deref().filter(|n| !n.is_empty() && *n != node_name) {
        return Placement::never(Unfit::NodeNameMismatch { node_name: wanted.to_owned() });
    }
    if let Some(unfit) =
        affinity::node_selector(spec, node).or_else(|| affinity::required_node_affinity(spec, node))
    {
        return Placement::never(unfit);
    }
    let mut tolerating = PodSpec {
        tolerations: spec.tolerations.clone(),
        host_network: spec.host_network,
        ..PodSpec::default()
    };
    daemon_pod_tolerations(&mut tolerating);
    let tolerations = tolerating.tolerations.as_deref().unwrap_or_default();
    let taints = node_taints(node);
    if let Some(taint) = taints::first_untolerated(taints, tolerations, |e| e == taints::NO_EXECUTE) {
        return Placement::never(untolerated(taint));
    }
    if let Some(taint) = taints::first_untolerated(taints, tolerations, |e| e == taints::NO_SCHEDULE) {
        return Placement::keep_only(untolerated(taint));
    }
    Placement::fits()
}

/// Adds the tolerations every DaemonSet pod gets to `spec` (Kubernetes'
/// `AddOrUpdateDaemonPodTolerations`, which OpenKruise applies too): `Exists` for
/// `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` with
/// `NoExecute` and no deadline; `Exists` with `NoSchedule` for
/// `node.kubernetes.io/disk-pressure`, `memory-pressure`, `pid-pressure`,
/// `unschedulable`, and `network-unavailable` when `spec.hostNetwork` is true.
///
/// A toleration for the same taint with other `tolerationSeconds` is replaced (the
/// daemon pod must survive a not-ready node indefinitely); an identical one is kept.
/// Calling it again changes nothing.
pub fn daemon_pod_tolerations(spec: &mut PodSpec) {
    for toleration in taints::daemon_defaults(spec.host_network == Some(true)) {
        taints::add_or_update(spec, toleration);
    }
}

/// Binds a pod to `node` by its required node affinity, as Kubernetes'
/// `ReplaceDaemonSetPodNodeNameNodeAffinity` does for OpenKruise's BroadcastJob pods:
/// the required node selector terms become one term matching the field
/// `metadata.name In [node]`; the preferred terms and the other affinities stay.
/// Calling it again changes nothing.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".to_owned(),
            operator: "In".to_owned(),
            values: Some(vec![node.to_owned()]),
        }]),
    };
    let node_affinity =
        spec.affinity.get_or_insert_with(Default::default).node_affinity.get_or_insert_with(Default::default);
    node_affinity.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector { node_selector_terms: vec![term] });
}

/// Where a BroadcastJob with pod template `template` runs, on `node` (OpenKruise
/// v1.9.0 `checkNodeFitness`, run on a pod made from the template for a node without
/// a pod, and on the existing pod otherwise). In order:
///
/// 1. `spec.nodeSelector` must match the node's labels.
/// 2. The required node affinity must match the node, for a new pod only: OpenKruise
///    replaces the affinity of the pods it creates by one naming their node, so a
///    running pod is not re-checked against the template's affinity.
/// 3. No `NoSchedule` or `NoExecute` taint may go untolerated by the template's own
///    tolerations (a BroadcastJob gets no default tolerations, so a not-ready node's
///    taint excludes it).
/// 4. A cordoned node (`spec.unschedulable`) needs a toleration of
///    `node.kubernetes.io/unschedulable:NoSchedule`.
/// 5. The pod's resource requests must fit in the node's `status.allocatable`, and
///    `allocatable.pods` must be at least 1. As in OpenKruise, the pods already on
///    the node are **not** counted: this compares with the node's total, not with what
///    is free; host ports are not checked either.
///
/// Each failure but the affinity one means neither a new nor a running pod. The
/// template's `spec.nodeName` is not checked: OpenKruise sets it to the candidate
/// node before checking, so it never excludes a node (the pod belongs on the node it
/// is placed on, whatever the template says). Node readiness is not looked at beyond
/// its taints.
///
/// One difference remains for running pods: OpenKruise checks the created pod, whose
/// tolerations may have grown at admission (Kubernetes' `DefaultTolerationSeconds`
/// plugin adds 300 s tolerations of `not-ready` and `unreachable` `NoExecute` taints),
/// while this reads the template only, so such a taint ends a running pod here at
/// once rather than after the node lifecycle controller's eviction.
pub fn broadcast_job(node: &Node, template: &PodTemplateSpec) -> Placement {
    let none = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&none);
    if let Some(unfit) = affinity::node_selector(spec, node) {
        return Placement::never(unfit);
    }
    let affinity = affinity::required_node_affinity(spec, node);
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let blocking = |e: &str| e == taints::NO_SCHEDULE || e == taints::NO_EXECUTE;
    if let Some(taint) = taints::first_untolerated(node_taints(node), tolerations, blocking) {
        return Placement::never(untolerated(taint));
    }
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if cordoned && !tolerates_cordon(tolerations) {
        return Placement::never(Unfit::Unschedulable);
    }
    if let Some(unfit) = resources::fits(spec, node) {
        return Placement::never(unfit);
    }
    match affinity {
        Some(unfit) => Placement::keep_only(unfit),
        None => Placement::fits(),
    }
}

fn tolerates_cordon(tolerations: &[Toleration]) -> bool {
    let cordon = Taint {
        key: taints::UNSCHEDULABLE.to_owned(),
        effect: taints::NO_SCHEDULE.to_owned(),
        ..Taint::default()
    };
    tolerations.iter().any(|t| taints::tolerates(t, &cordon))
}
