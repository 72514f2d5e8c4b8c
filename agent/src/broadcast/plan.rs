//! What the agent does for one BroadcastJob on its node, as OpenKruise's controller
//! does per node, with the controller's permit in place of its parallelism and
//! failure handling. Pure: the caller gives the job's pods here, the permit and the
//! placement, and acts.
//!
//! - A job that no longer targets the node (not even for a running pod), or whose
//!   permit is gone (the node has finished, the job has finished or failed): its pods
//!   that still run go; finished pods stay, as OpenKruise leaves them (a pod
//!   restarted past the job's `restartLimit` counts as finished: it failed).
//! - More than one live pod: the oldest stays, the others that still run go.
//! - A permit, a node the template fits, a valid template and no pod at all: one is
//!   created. A pod that finished (succeeded or failed) is never followed by another,
//!   as OpenKruise never replaces a finished pod; a terminating one is waited for.

use k8s_openapi::jiff::Timestamp;

/// One of the job's pods on the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// Being deleted.
    pub terminating: bool,
    /// Phase Succeeded or Failed, or restarted past the job's restart limit.
    pub finished: bool,
    /// When it was created.
    pub created: Option<Timestamp>,
}

/// What the agent knows of the job and the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// A new pod fits on this node.
    pub should_run: bool,
    /// A pod already here may stay.
    pub should_continue: bool,
    /// The node holds a permit for this job (its uid).
    pub permitted: bool,
    /// The template can be run (restartPolicy `Never` or `OnFailure`).
    pub valid: bool,
    /// A pod this agent created is not in its watch yet.
    pub creating: bool,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create the job's pod.
    Create,
    /// Delete a pod (name, uid), for the reason given.
    Delete(String, String, &'static str),
}

/// The steps for one job on this node; `pods` are the job's pods here, in any order.
pub fn decide(input: &Input, pods: &[PodView]) -> Vec<Step> {
    let mut live: Vec<&PodView> = pods.iter().filter(|p| !p.terminating).collect();
    live.sort_by_key(|p| (p.created, p.name.clone()));
    let delete = |p: &PodView, why| Step::Delete(p.name.clone(), p.uid.clone(), why);
    let why = if !input.should_continue {
        Some("the job no longer targets this node")
    } else if !input.permitted {
        Some("the job's permit was withdrawn")
    } else {
        None
    };
    if let Some(why) = why {
        return live.iter().filter(|p| !p.finished).map(|p| delete(p, why)).collect();
    }
    if pods.is_empty() {
        return if input.should_run && input.valid && !input.creating { vec![Step::Create] } else { vec![] };
    }
    live.iter().skip(1).filter(|p| !p.finished).map(|p| delete(p, "more than one pod on the node")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, finished: bool, secs: i64) -> PodView {
        PodView {
            name: name.into(),
            uid: format!("u-{name}"),
            terminating: false,
            finished,
            created: Some(Timestamp::from_second(secs).unwrap()),
        }
    }

    fn input() -> Input {
        Input { should_run: true, should_continue: true, permitted: true, valid: true, creating: false }
    }

    #[test]
    fn creates_once_with_a_permit() {
        assert_eq!(decide(&input(), &[]), [Step::Create]);
        assert!(decide(&Input { permitted: false, ..input() }, &[]).is_empty());
        assert!(decide(&Input { should_run: false, ..input() }, &[]).is_empty(), "the node does not fit");
        assert!(decide(&Input { valid: false, ..input() }, &[]).is_empty(), "restartPolicy Always");
        assert!(decide(&Input { creating: true, ..input() }, &[]).is_empty(), "one pod at a time");
        assert!(decide(&input(), &[pod("a", false, 1)]).is_empty(), "it runs");
        assert!(decide(&input(), &[pod("a", true, 1)]).is_empty(), "a finished pod is never replaced");
        let mut going = pod("a", false, 1);
        going.terminating = true;
        assert!(decide(&input(), &[going]).is_empty(), "a terminating pod is waited for");
    }

    #[test]
    fn a_withdrawn_permit_stops_running_pods_only() {
        let pods = [pod("a", false, 1), pod("b", true, 2)];
        let steps = decide(&Input { permitted: false, ..input() }, &pods);
        assert_eq!(steps, [Step::Delete("a".into(), "u-a".into(), "the job's permit was withdrawn")]);
        let steps = decide(&Input { should_continue: false, ..input() }, &pods);
        assert_eq!(steps, [Step::Delete("a".into(), "u-a".into(), "the job no longer targets this node")]);
    }

    #[test]
    fn extra_pods_go() {
        let pods = [pod("b", false, 2), pod("a", false, 1), pod("c", true, 3)];
        assert_eq!(
            decide(&input(), &pods),
            [Step::Delete("b".into(), "u-b".into(), "more than one pod on the node")]
        );
    }
}
