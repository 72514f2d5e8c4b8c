//! The scheduler's filters, as pure functions (the default plugins' rules):
//! NodeReady/unschedulable, NodeName, NodeAffinity (nodeSelector and required
//! nodeAffinity), TaintToleration (NoSchedule and NoExecute; PreferNoSchedule is
//! ignored), and the pod count.

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration};

use crate::kubelet::quantity;

/// Why a node does not fit a pod (the scheduler's message fragments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// Not Ready, or unschedulable.
    NotReady,
    /// The pod names another node.
    NodeName,
    /// nodeSelector or required node affinity.
    Affinity,
    /// An untolerated NoSchedule/NoExecute taint.
    Taint,
    /// `pods` allocatable reached.
    TooManyPods,
}

/// Node is Ready and not cordoned.
pub fn node_ready(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ready && node.spec.as_ref().and_then(|s| s.unschedulable) != Some(true)
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

/// One requirement against a set of values (a label's or a field's).
pub fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(int), values.first().and_then(|x| int(x))), (Some(v), Some(x)) if v > x)
        }
        "Lt" => {
            matches!((value.and_then(int), values.first().and_then(|x| int(x))), (Some(v), Some(x)) if v < x)
        }
        _ => false,
    }
}

/// One nodeSelectorTerm: all its expressions and fields match (an empty term matches
/// nothing, as in Kubernetes).
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs.iter().all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node_name(node))))
}

/// nodeSelector and `requiredDuringSchedulingIgnoredDuringExecution` (terms ORed).
pub fn affinity_matches(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return true };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec.node_selector.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    selector_ok && required.is_none_or(|sel| sel.node_selector_terms.iter().any(|t| term_matches(t, node)))
}

/// Does `t` tolerate `taint` (kubelet's/scheduler's `ToleratesTaint`)?
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => t.key.as_deref().is_none_or(|k| k.is_empty() || k == taint.key),
        _ => {
            t.key.as_deref() == Some(taint.key.as_str())
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// Every NoSchedule/NoExecute taint of the node is tolerated (a cordoned node's
/// `node.kubernetes.io/unschedulable` taint included).
pub fn taints_tolerated(pod: &Pod, node: &Node) -> bool {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// The node's allocatable pod count (110 when unset, kubelet's default).
pub fn max_pods(node: &Node) -> usize {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("pods"))
        .and_then(|q| quantity::value(q).ok())
        .map_or(110, |v| v as usize)
}

/// Every filter; `pods_on_node` counts the non-terminated pods bound to the node.
pub fn fits(pod: &Pod, node: &Node, pods_on_node: usize) -> Result<(), Misfit> {
    let wanted = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty());
    if wanted.is_some_and(|n| n != node_name(node)) {
        return Err(Misfit::NodeName);
    }
    if !node_ready(node) {
        return Err(Misfit::NotReady);
    }
    if !affinity_matches(pod, node) {
        return Err(Misfit::Affinity);
    }
    if !taints_tolerated(pod, node) {
        return Err(Misfit::Taint);
    }
    if pods_on_node >= max_pods(node) {
        return Err(Misfit::TooManyPods);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
