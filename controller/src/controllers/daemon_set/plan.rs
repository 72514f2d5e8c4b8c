//! Which nodes may move an Advanced DaemonSet's pod to its update revision, and the
//! status the agents' reports add up to. Pure: the pass feeds it the nodes, their
//! placement (from `proto::placement`, the function the agents use too), the permits
//! already given and each node's report.
//!
//! A permit lets the node's agent create the set's pod at the update revision, or move
//! an older pod there. Permits are given:
//! - to nodes whose pod already runs the update revision (so a pod that dies comes
//!   back at it);
//! - to nodes that should run a pod and have none, in ascending name (OpenKruise's
//!   `GetNodesNeedingPods`), at most `burstReplicas` of them waiting at once, and
//!   under progressive creation (`partitionedScaling`) at most `desired - partition`
//!   minus those already on the update revision;
//! - to nodes with an older pod, under the rollout budget, in OpenKruise's order
//!   (nodes already updating first, then by descending name), only on nodes the
//!   `rollingUpdate.selector` matches, for at most `desired - partition` nodes on the
//!   update revision, and none while `paused`. Without surge, an older pod that is not
//!   available is replaced without using the budget, and the others only while fewer
//!   than `maxUnavailable` nodes are unavailable. With surge, at most `maxSurge`
//!   nodes run two pods at once.

use std::collections::BTreeSet;

/// One node as the pass sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// The set places a new pod here.
    pub should_run: bool,
    /// A pod already here may stay.
    pub should_continue: bool,
    /// The rolling update's node selector matches (true without one).
    pub on_selector: bool,
    /// The node holds a permit for the update revision.
    pub permitted: bool,
    /// The agent's report of the set's pod here; `None`: no pod (or no report).
    pub pod: Option<PodReport>,
}

/// The set's (oldest) pod on a node, as its agent reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodReport {
    /// It runs the update revision.
    pub updated: bool,
    /// It is ready.
    pub ready: bool,
    /// It has been ready for `minReadySeconds`.
    pub available: bool,
}

/// The budget, scaled against the desired count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Nodes that may be unavailable during the update.
    pub max_unavailable: i64,
    /// Nodes that may run an extra pod during the update.
    pub max_surge: i64,
    /// Nodes kept on older revisions.
    pub partition: i64,
    /// Nodes waiting for a new pod at once.
    pub burst: i64,
    /// No update goes further.
    pub paused: bool,
    /// Progressive creation (`scaleStrategy.partitionedScaling`, v1alpha1's
    /// `daemonset.kruise.io/progressive-create-pod: "true"`): new pods only up to
    /// `desired - partition` on the update revision.
    pub progressive: bool,
}

/// The status counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Nodes that should run the pod.
    pub desired: i32,
    /// Of those, nodes that run it.
    pub current: i32,
    /// Nodes that run it but should not.
    pub misscheduled: i32,
    /// Nodes (that should run it) whose pod is ready.
    pub ready: i32,
    /// Nodes whose pod has been ready for `minReadySeconds`.
    pub available: i32,
    /// Nodes whose pod runs the update revision.
    pub updated: i32,
}

/// What the set adds up to.
pub fn counts(nodes: &[NodeView]) -> Counts {
    let mut c = Counts::default();
    for n in nodes {
        match (&n.pod, n.should_run) {
            (Some(p), true) => {
                c.desired += 1;
                c.current += 1;
                c.ready += i32::from(p.ready);
                c.available += i32::from(p.available);
                c.updated += i32::from(p.updated);
            }
            (None, true) => c.desired += 1,
            (Some(_), false) => c.misscheduled += 1,
            (None, false) => {}
        }
    }
    c
}

/// The nodes that hold a permit for the update revision after this pass.
pub fn permits(nodes: &[NodeView], limits: &Limits) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let desired = nodes.iter().filter(|n| n.should_run).count() as i64;

    // Updated pods keep theirs.
    let mut on_update = 0_i64;
    for n in nodes.iter().filter(|n| n.should_continue && n.pod.as_ref().is_some_and(|p| p.updated)) {
        out.insert(n.name.clone());
        on_update += 1;
    }

    // Nodes without a pod: those already waiting first, then ascending names, at most
    // `burst` at once (and, progressively, up to the partition).
    let mut missing: Vec<&NodeView> = nodes.iter().filter(|n| n.should_run && n.pod.is_none()).collect();
    missing.sort_by_key(|n| (!n.permitted, n.name.clone()));
    let mut cap = limits.burst.max(0);
    if limits.progressive {
        cap = cap.min((desired - limits.partition.clamp(0, desired) - on_update).max(0));
    }
    for n in missing.iter().take(usize::try_from(cap).unwrap_or(usize::MAX)) {
        out.insert(n.name.clone());
        on_update += 1;
    }

    // Older pods, in OpenKruise's order.
    let mut old: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| n.should_continue && n.on_selector && n.pod.as_ref().is_some_and(|p| !p.updated))
        .collect();
    old.sort_by_key(|n| (!n.permitted, std::cmp::Reverse(n.name.clone())));
    let mut room = (desired - limits.partition).max(0) - on_update;
    let mut budget = if limits.max_surge > 0 {
        // Surge: the nodes updating hold the budget until their old pod is gone.
        limits.max_surge
    } else {
        let unavailable =
            nodes.iter().filter(|n| n.should_run && !n.pod.as_ref().is_some_and(|p| p.available)).count()
                as i64;
        limits.max_unavailable - unavailable
    };
    for n in old {
        if room <= 0 {
            break;
        }
        let available = n.pod.as_ref().is_some_and(|p| p.available);
        if n.permitted || !limits.paused && (!available || budget > 0) {
            out.insert(n.name.clone());
            room -= 1;
            if available {
                budget -= 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pod: Option<(bool, bool)>) -> NodeView {
        NodeView {
            name: name.into(),
            should_run: true,
            should_continue: true,
            on_selector: true,
            permitted: false,
            pod: pod.map(|(updated, available)| PodReport { updated, ready: available, available }),
        }
    }

    fn names(s: &BTreeSet<String>) -> Vec<&str> {
        s.iter().map(String::as_str).collect()
    }

    fn limits(max_unavailable: i64) -> Limits {
        Limits { max_unavailable, max_surge: 0, partition: 0, burst: 250, paused: false, progressive: false }
    }

    #[test]
    fn new_nodes_get_permits_up_to_the_burst() {
        let nodes: Vec<NodeView> = (0..5).map(|i| node(&format!("n{i}"), None)).collect();
        assert_eq!(permits(&nodes, &limits(1)).len(), 5);
        let two = Limits { burst: 2, ..limits(1) };
        assert_eq!(names(&permits(&nodes, &two)), ["n0", "n1"], "ascending names first");
        let mut nodes = nodes;
        nodes[4].permitted = true;
        assert_eq!(names(&permits(&nodes, &two)), ["n0", "n4"], "those already waiting keep theirs");
    }

    #[test]
    fn progressive_creation_stops_at_the_partition() {
        // 5 nodes, 1 already on the update revision, partition 2: 2 more at most
        let mut nodes: Vec<NodeView> = (0..5).map(|i| node(&format!("n{i}"), None)).collect();
        nodes[4].pod = Some(PodReport { updated: true, ready: true, available: true });
        let progressive = Limits { partition: 2, progressive: true, ..limits(1) };
        assert_eq!(names(&permits(&nodes, &progressive)), ["n0", "n1", "n4"]);
        let plain = Limits { partition: 2, ..limits(1) };
        assert_eq!(permits(&nodes, &plain).len(), 5, "without it the partition holds updates only");
        let all = Limits { partition: 9, progressive: true, ..limits(1) };
        assert_eq!(names(&permits(&nodes, &all)), ["n4"], "a partition above desired creates nothing");
    }

    #[test]
    fn max_unavailable_takes_one_node_at_a_time_in_descending_order() {
        let mut nodes: Vec<NodeView> = (0..4).map(|i| node(&format!("n{i}"), Some((false, true)))).collect();
        assert_eq!(names(&permits(&nodes, &limits(1))), ["n3"]);
        assert_eq!(names(&permits(&nodes, &limits(2))), ["n2", "n3"]);
        // n3 is updating: its pod is down; nothing else may start
        nodes[3].permitted = true;
        nodes[3].pod = None;
        assert_eq!(names(&permits(&nodes, &limits(1))), ["n3"]);
        // n3 is back, updated and available: the next one starts
        nodes[3].pod = Some(PodReport { updated: true, ready: true, available: true });
        assert_eq!(names(&permits(&nodes, &limits(1))), ["n2", "n3"]);
        // updated but not yet available: it still holds the budget
        nodes[3].pod = Some(PodReport { updated: true, ready: true, available: false });
        assert_eq!(names(&permits(&nodes, &limits(1))), ["n3"]);
    }

    #[test]
    fn unavailable_old_pods_are_replaced_without_budget() {
        let mut nodes: Vec<NodeView> = (0..3).map(|i| node(&format!("n{i}"), Some((false, true)))).collect();
        nodes[0].pod = Some(PodReport::default());
        assert_eq!(names(&permits(&nodes, &limits(1))), ["n0"], "the broken pod uses up the budget itself");
        assert_eq!(names(&permits(&nodes, &limits(2))), ["n0", "n2"]);
    }

    #[test]
    fn partition_keeps_the_lowest_names_old() {
        let nodes: Vec<NodeView> = (0..4).map(|i| node(&format!("n{i}"), Some((false, true)))).collect();
        let l = Limits { partition: 3, ..limits(4) };
        assert_eq!(names(&permits(&nodes, &l)), ["n3"]);
        let l = Limits { partition: 4, ..limits(4) };
        assert!(permits(&nodes, &l).is_empty());
        let mut nodes = nodes;
        nodes[3].pod = Some(PodReport { updated: true, ready: true, available: true });
        let l = Limits { partition: 2, ..limits(4) };
        assert_eq!(names(&permits(&nodes, &l)), ["n2", "n3"], "an updated node counts against the room");
    }

    #[test]
    fn selector_and_pause() {
        let mut nodes: Vec<NodeView> = (0..3).map(|i| node(&format!("n{i}"), Some((false, true)))).collect();
        nodes[2].on_selector = false;
        assert_eq!(names(&permits(&nodes, &limits(1))), ["n1"]);
        let paused = Limits { paused: true, ..limits(3) };
        assert!(permits(&nodes, &paused).is_empty());
        nodes[1].permitted = true;
        assert_eq!(names(&permits(&nodes, &paused)), ["n1"], "an update under way goes on");
        nodes.push(node("n9", None));
        assert_eq!(
            names(&permits(&nodes, &paused)),
            ["n1", "n9"],
            "a missing pod is created even when paused"
        );
    }

    #[test]
    fn surge_holds_the_budget_until_the_old_pod_is_gone() {
        let mut nodes: Vec<NodeView> = (0..3).map(|i| node(&format!("n{i}"), Some((false, true)))).collect();
        let surge = Limits { max_surge: 1, max_unavailable: 0, ..limits(0) };
        assert_eq!(names(&permits(&nodes, &surge)), ["n2"]);
        nodes[2].permitted = true;
        // the oldest pod (the old one) is reported until it goes
        assert_eq!(names(&permits(&nodes, &surge)), ["n2"]);
        nodes[2].pod = Some(PodReport { updated: true, ready: true, available: true });
        assert_eq!(names(&permits(&nodes, &surge)), ["n1", "n2"]);
    }

    #[test]
    fn counts_follow_kubernetes() {
        let mut nodes = vec![
            node("a", Some((true, true))),
            node("b", Some((false, false))),
            node("c", None),
            node("d", Some((true, true))),
        ];
        nodes[3].should_run = false;
        nodes[1].pod.as_mut().unwrap().ready = true;
        let c = counts(&nodes);
        assert_eq!(c, Counts { desired: 3, current: 2, misscheduled: 1, ready: 2, available: 1, updated: 1 });
    }
}
