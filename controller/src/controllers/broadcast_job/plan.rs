//! What a BroadcastJob's pass decides, as OpenKruise v1.9.0's reconcile decides it,
//! with the agents' reports in place of its pod list and permits in place of its pod
//! creations and deletions. Pure: the pass feeds it the nodes, their placement (from
//! `proto::placement::broadcast_job`, the function the agents use too), the permits
//! already given and each node's report.
//!
//! - **Targets** (`desired`): nodes whose pod fits (`should_continue`) and nodes
//!   without a pod where a new one fits (`should_run`).
//! - **Counts**: every reported pod of the job, on any node: active (not finished),
//!   succeeded, failed (phase Failed, or under `OnFailure` more container restarts
//!   than `restartLimit`).
//! - **Permits**: a target node not finished keeps the permit it holds (or gets one
//!   back while its pod runs); new ones go to the other unfinished target nodes in
//!   ascending name order while fewer than `parallelism` nodes hold one, none while
//!   the job is paused. A finished node, a finished or failed job: no permit (the
//!   agent then deletes a pod that still runs, as OpenKruise deletes the active pods
//!   of a failed job).
//! - **Phase**, in OpenKruise's order: a failed job stays failed; `paused` pauses it;
//!   a failed pod pauses it under `Pause`, fails it under `FailFast` and is ignored
//!   under `Continue`; past `activeDeadlineSeconds` (completion policy `Always`) it
//!   fails; with `Always` it completes once every target node has a finished pod.

use std::collections::BTreeSet;

use stevedore_proto::crd::broadcast_job::{
    BroadcastJobPhase, FailurePolicyType, JobConditionType, restarts_exceeded,
};

/// Where a node's pod is, as the pass counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodState {
    /// Pending or Running, within the restart limit.
    Active,
    /// Phase Succeeded.
    Succeeded,
    /// Phase Failed, or restarted more than the restart limit.
    Failed,
}

/// A node's pod as its agent reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodReport {
    /// The pod's phase (Pending, Running, Succeeded, Failed).
    pub phase: String,
    /// Its `restartPolicy` is `OnFailure`.
    pub on_failure: bool,
    /// Its container restarts.
    pub restarts: i32,
}

impl PodReport {
    /// How the job counts this pod, under `restart_limit` (OpenKruise's
    /// `filterPods`: only `OnFailure` pods count restarts).
    pub fn state(&self, restart_limit: i32) -> PodState {
        match self.phase.as_str() {
            "Succeeded" => PodState::Succeeded,
            "Failed" => PodState::Failed,
            _ if restarts_exceeded(self.on_failure, self.restarts, restart_limit) => PodState::Failed,
            _ => PodState::Active,
        }
    }
}

/// One node as the pass sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// A new pod fits here.
    pub should_run: bool,
    /// A pod already here may stay.
    pub should_continue: bool,
    /// The node holds a permit for the job.
    pub permitted: bool,
    /// The job's pod here, as reported; `None`: no pod (or no fresh report).
    pub pod: Option<PodReport>,
}

impl NodeView {
    /// The job targets this node.
    fn target(&self) -> bool {
        if self.pod.is_some() { self.should_continue } else { self.should_run }
    }
}

/// The job's spec and status, as far as the decision goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobView {
    /// `<namespace>/<name>`, for the deadline's message.
    pub key: String,
    /// Completion policy `Always` (otherwise `Never`).
    pub always: bool,
    /// `spec.paused`.
    pub paused: bool,
    /// `failurePolicy.type`.
    pub failure_policy: FailurePolicyType,
    /// `failurePolicy.restartLimit` (0 when unset).
    pub restart_limit: i32,
    /// The phase in the status.
    pub phase: Option<BroadcastJobPhase>,
    /// `activeDeadlineSeconds` has passed since the start.
    pub past_deadline: bool,
}

/// The status counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Target nodes.
    pub desired: i32,
    /// Pods not finished.
    pub active: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
}

/// What the job comes to in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The counts to show.
    pub counts: Counts,
    /// The phase to show.
    pub phase: BroadcastJobPhase,
    /// The job finishes now: the condition to add (type, reason, message).
    pub finish: Option<(JobConditionType, String, String)>,
    /// The nodes that hold a permit after this pass.
    pub permits: BTreeSet<String>,
}

/// What the nodes add up to.
pub fn counts(nodes: &[NodeView], restart_limit: i32) -> Counts {
    let mut c = Counts::default();
    for n in nodes {
        c.desired += i32::from(n.target());
        match n.pod.as_ref().map(|p| p.state(restart_limit)) {
            Some(PodState::Active) => c.active += 1,
            Some(PodState::Succeeded) => c.succeeded += 1,
            Some(PodState::Failed) => c.failed += 1,
            None => {}
        }
    }
    c
}

/// The decision for a job not yet finished; `parallelism` is already scaled against
/// the desired count.
pub fn decide(job: &JobView, nodes: &[NodeView], parallelism: i64) -> Decision {
    let mut counts = counts(nodes, job.restart_limit);
    let state = |n: &NodeView| n.pod.as_ref().map(|p| p.state(job.restart_limit));
    // unfinished target nodes, those already holding a permit or running a pod first
    let mut open: Vec<&NodeView> =
        nodes.iter().filter(|n| n.target() && matches!(state(n), None | Some(PodState::Active))).collect();
    let started = |n: &NodeView| n.permitted || state(n).is_some();
    open.sort_by_key(|n| (!started(n), n.name.clone()));
    let held = || open.iter().filter(|n| started(n)).map(|n| n.name.clone()).collect::<BTreeSet<_>>();
    let none = BTreeSet::new;
    let decision = |counts, phase, finish, permits| Decision { counts, phase, finish, permits };

    if job.phase == Some(BroadcastJobPhase::Failed) {
        return decision(counts, BroadcastJobPhase::Failed, None, none());
    }
    let running = matches!(job.phase, None | Some(BroadcastJobPhase::Running | BroadcastJobPhase::Paused));
    if job.paused && running {
        return decision(counts, BroadcastJobPhase::Paused, None, held());
    }
    let mut failure = None;
    if counts.failed > 0 {
        match job.failure_policy {
            FailurePolicyType::Pause => return decision(counts, BroadcastJobPhase::Paused, None, held()),
            FailurePolicyType::FailFast => {
                failure =
                    Some("failure policy is FailurePolicyTypeFailFast and failed pod is found".to_owned());
            }
            _ => {}
        }
    }
    if failure.is_none() && job.always && job.past_deadline {
        failure = Some(format!("Job {} was active longer than specified deadline", job.key));
    }
    if let Some(message) = failure {
        // the active pods go, and count as failed (as OpenKruise's deleteJobPods counts)
        counts.failed += counts.active;
        counts.active = 0;
        let finish = (JobConditionType::Failed, "Failed".to_owned(), message);
        return decision(counts, BroadcastJobPhase::Failed, Some(finish), none());
    }
    let mut permits = held();
    let room = usize::try_from(parallelism.max(0)).unwrap_or(usize::MAX);
    for n in open.iter().filter(|n| !started(n)) {
        if permits.len() >= room {
            break;
        }
        permits.insert(n.name.clone());
    }
    let complete = job.always && counts.desired > 0 && open.is_empty();
    if complete {
        let message =
            format!("Job completed, {} pods succeeded, {} pods failed", counts.succeeded, counts.failed);
        let finish = (JobConditionType::Complete, "Complete".to_owned(), message);
        return decision(counts, BroadcastJobPhase::Completed, Some(finish), none());
    }
    decision(counts, BroadcastJobPhase::Running, None, permits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pod: Option<&str>) -> NodeView {
        NodeView {
            name: name.into(),
            should_run: true,
            should_continue: true,
            permitted: false,
            pod: pod.map(|phase| PodReport { phase: phase.into(), ..PodReport::default() }),
        }
    }

    fn job() -> JobView {
        JobView {
            key: "ns/job".into(),
            always: true,
            failure_policy: FailurePolicyType::FailFast,
            ..JobView::default()
        }
    }

    fn names(d: &Decision) -> Vec<&str> {
        d.permits.iter().map(String::as_str).collect()
    }

    #[test]
    fn parallelism_limits_the_nodes_running_at_once() {
        let mut nodes: Vec<NodeView> = ["c", "a", "b"].iter().map(|n| node(n, None)).collect();
        let d = decide(&job(), &nodes, 1);
        assert_eq!(names(&d), ["a"], "ascending names");
        assert_eq!((d.phase.clone(), d.finish.clone()), (BroadcastJobPhase::Running, None));
        assert_eq!(d.counts, Counts { desired: 3, ..Counts::default() });
        nodes[1].permitted = true;
        nodes[1].pod = Some(PodReport { phase: "Running".into(), ..PodReport::default() });
        assert_eq!(names(&decide(&job(), &nodes, 1)), ["a"], "a holds it while it runs");
        nodes[1].pod.as_mut().unwrap().phase = "Succeeded".into();
        assert_eq!(names(&decide(&job(), &nodes, 1)), ["b"], "a finished: the next one");
        assert_eq!(names(&decide(&job(), &nodes, 5)), ["b", "c"]);
        assert_eq!(names(&decide(&job(), &nodes, 0)), Vec::<&str>::new());
    }

    #[test]
    fn lowering_parallelism_keeps_what_runs() {
        let mut nodes: Vec<NodeView> = ["a", "b", "c"].iter().map(|n| node(n, Some("Running"))).collect();
        nodes[2].pod = None;
        assert_eq!(names(&decide(&job(), &nodes, 1)), ["a", "b"], "running pods keep their permit");
    }

    #[test]
    fn completes_when_every_target_node_finished() {
        let mut nodes = vec![node("a", Some("Succeeded")), node("b", Some("Failed")), node("c", None)];
        let cont = JobView { failure_policy: FailurePolicyType::Continue, ..job() };
        let d = decide(&cont, &nodes, 10);
        assert_eq!((names(&d), d.phase.clone()), (vec!["c"], BroadcastJobPhase::Running));
        nodes[2].should_run = false;
        let d = decide(&cont, &nodes, 10);
        assert_eq!(d.phase, BroadcastJobPhase::Completed, "c is no target: the others are done");
        let (kind, reason, message) = d.finish.unwrap();
        assert_eq!((kind, reason.as_str()), (JobConditionType::Complete, "Complete"));
        assert_eq!(message, "Job completed, 1 pods succeeded, 1 pods failed");
        assert_eq!(d.counts, Counts { desired: 2, active: 0, succeeded: 1, failed: 1 });
        assert!(d.permits.is_empty());
        let never = JobView { always: false, ..cont };
        let d = decide(&never, &nodes, 10);
        assert_eq!((d.phase, d.finish), (BroadcastJobPhase::Running, None), "Never never completes");
        nodes[2].should_run = true;
        assert_eq!(names(&decide(&never, &nodes, 10)), ["c"], "a node that fits later gets a permit");
        let empty: Vec<NodeView> = vec![];
        assert_eq!(decide(&job(), &empty, 10).phase, BroadcastJobPhase::Running, "no target: not complete");
    }

    #[test]
    fn fail_fast_fails_and_revokes() {
        let mut nodes = vec![node("a", Some("Failed")), node("b", Some("Running")), node("c", None)];
        nodes[1].permitted = true;
        let d = decide(&job(), &nodes, 10);
        assert_eq!(d.phase, BroadcastJobPhase::Failed);
        assert!(d.permits.is_empty());
        let (kind, reason, message) = d.finish.clone().unwrap();
        assert_eq!((kind, reason.as_str()), (JobConditionType::Failed, "Failed"));
        assert_eq!(message, "failure policy is FailurePolicyTypeFailFast and failed pod is found");
        assert_eq!(
            d.counts,
            Counts { desired: 3, active: 0, succeeded: 0, failed: 2 },
            "the active pod goes"
        );
        let failed = JobView { phase: Some(BroadcastJobPhase::Failed), ..job() };
        let d = decide(&failed, &nodes, 10);
        assert_eq!((d.phase, d.finish), (BroadcastJobPhase::Failed, None), "failed stays failed");
        assert_eq!(d.counts.active, 1, "counted from the reports again");
    }

    #[test]
    fn restart_limit_counts_on_failure_pods() {
        let mut nodes = vec![node("a", Some("Running"))];
        nodes[0].pod = Some(PodReport { phase: "Running".into(), on_failure: true, restarts: 2 });
        let limit = |restart_limit| JobView { restart_limit, ..job() };
        assert_eq!(decide(&limit(2), &nodes, 10).phase, BroadcastJobPhase::Running);
        assert_eq!(
            decide(&limit(1), &nodes, 10).phase,
            BroadcastJobPhase::Failed,
            "more restarts than the limit"
        );
        nodes[0].pod.as_mut().unwrap().on_failure = false;
        assert_eq!(
            decide(&limit(1), &nodes, 10).phase,
            BroadcastJobPhase::Running,
            "Never: restarts do not count"
        );
    }

    #[test]
    fn pause_and_the_pause_policy() {
        let mut nodes = vec![node("a", Some("Running")), node("b", None), node("c", None)];
        nodes[0].permitted = true;
        nodes[1].permitted = true;
        let paused = JobView { paused: true, ..job() };
        let d = decide(&paused, &nodes, 10);
        assert_eq!(
            (names(&d), d.phase.clone()),
            (vec!["a", "b"], BroadcastJobPhase::Paused),
            "no new permit"
        );
        let resumed = JobView { phase: Some(BroadcastJobPhase::Paused), ..job() };
        let d = decide(&resumed, &nodes, 10);
        assert_eq!((names(&d), d.phase.clone()), (vec!["a", "b", "c"], BroadcastJobPhase::Running));
        nodes[0].pod.as_mut().unwrap().phase = "Failed".into();
        let pause = JobView { failure_policy: FailurePolicyType::Pause, ..job() };
        let d = decide(&pause, &nodes, 10);
        assert_eq!(
            (names(&d), d.phase.clone(), d.finish.clone()),
            (vec!["b"], BroadcastJobPhase::Paused, None)
        );
    }

    #[test]
    fn deadline_fails_always_jobs_only() {
        let nodes = vec![node("a", Some("Running"))];
        let late = JobView { past_deadline: true, ..job() };
        let d = decide(&late, &nodes, 10);
        assert_eq!(d.phase, BroadcastJobPhase::Failed);
        assert_eq!(d.finish.unwrap().2, "Job ns/job was active longer than specified deadline");
        let never = JobView { always: false, ..late };
        assert_eq!(decide(&never, &nodes, 10).phase, BroadcastJobPhase::Running);
    }

    #[test]
    fn nodes_that_no_longer_fit_leave_the_targets() {
        let mut nodes = vec![node("a", Some("Running")), node("b", Some("Succeeded"))];
        nodes[0].should_continue = false;
        nodes[0].permitted = true;
        let d = decide(&job(), &nodes, 10);
        assert!(d.permits.is_empty(), "its pod goes");
        assert_eq!((d.counts.desired, d.counts.active, d.phase), (1, 1, BroadcastJobPhase::Completed));
    }
}
