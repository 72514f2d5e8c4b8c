//! What the agent does for one Advanced DaemonSet on its node, as Kubernetes'
//! DaemonSet controller decides per node (`podsShouldBeOnNode`, and the rolling
//! update's per-node step), with the controller's permit in place of its global view.
//! Pure: the caller gives the set's pods here and the placement, and acts.
//!
//! - A set that no longer targets the node (not even for a running pod): its pods go.
//! - Failed pods go (a new one replaces them), at once the first time and then only
//!   after Kubernetes' backoff ([`FailedBackoff`]); until then the failed pod stays
//!   and nothing is created beside it.
//! - No live pod, the node targeted, a permit for the update revision: one is created.
//! - A permit and an older pod: without surge the old pod goes (a new one follows);
//!   with surge a new pod starts beside it and the old one goes once the new one is
//!   available.
//! - A permit, an older pod, `InPlaceIfPossible` and a change that can be made in
//!   place (images, metadata): the pod is updated in place instead.
//! - More than one live pod otherwise: all but the oldest go.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;

/// Why a failed pod is deleted.
pub const FAILED: &str = "the pod failed";

/// Kubernetes' DaemonSet `failedPodsBackoff`, per set on this node: a failed pod is
/// deleted (and replaced) at once the first time; each later one only once the
/// backoff since the last deletion is over, 1 s doubling up to 15 min, back to 1 s
/// after twice that without a failure. A pod the kubelet keeps refusing is not
/// recreated in a hot loop.
#[derive(Debug, Default)]
pub struct FailedBackoff {
    entries: HashMap<String, (Duration, Instant)>,
}

impl FailedBackoff {
    const INITIAL: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(15 * 60);

    /// How long until a failed pod of `key` may go; `None`: now.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let (backoff, at) = self.entries.get(key)?;
        (*at + *backoff).checked_duration_since(now).filter(|left| !left.is_zero())
    }

    /// A failed pod of `key` deleted at `now`.
    pub fn deleted(&mut self, key: &str, now: Instant) {
        let next = match self.entries.get(key) {
            Some((backoff, at)) if now.saturating_duration_since(*at) <= 2 * Self::MAX => {
                (*backoff * 2).min(Self::MAX)
            }
            _ => Self::INITIAL,
        };
        self.entries.insert(key.to_owned(), (next, now));
    }

    /// Forgets keys whose backoff has long expired, and those `keep` rejects.
    pub fn prune(&mut self, now: Instant, keep: impl Fn(&str) -> bool) {
        self.entries.retain(|k, (_, at)| keep(k) && now.saturating_duration_since(*at) <= 2 * Self::MAX);
    }
}

/// One of the set's pods on the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// Its `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Being deleted.
    pub terminating: bool,
    /// Phase Failed.
    pub failed: bool,
    /// Ready for the set's `minReadySeconds`.
    pub available: bool,
    /// When it was created.
    pub created: Option<Timestamp>,
}

/// What the agent knows of the set and the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// The set places a new pod on this node.
    pub should_run: bool,
    /// A pod already here may stay.
    pub should_continue: bool,
    /// The node holds a permit for the set's update revision (and the set's status
    /// describes its current spec).
    pub permitted: bool,
    /// The update revision, when the set's status describes its current spec.
    pub hash: Option<String>,
    /// The rolling update surges (`maxSurge` > 0).
    pub surge: bool,
    /// A pod this agent created is not in its watch yet.
    pub creating: bool,
    /// The set updates in place when it can (`InPlaceIfPossible`), and the older pod
    /// here can be (only images or metadata differ from its revision).
    pub in_place: bool,
    /// A failed pod must wait out [`FailedBackoff`] before it goes.
    pub failed_backoff: bool,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create the pod at the update revision.
    Create,
    /// Delete a pod (name, uid), for the reason given.
    Delete(String, String, &'static str),
    /// Update this pod in place to the update revision.
    InPlace(String),
}

/// The steps for one set on this node; `pods` are the set's pods here, in any order.
pub fn decide(input: &Input, pods: &[PodView]) -> Vec<Step> {
    let mut live: Vec<&PodView> = pods.iter().filter(|p| !p.terminating).collect();
    live.sort_by_key(|p| (p.created, p.name.clone()));
    let delete = |p: &PodView, why| Step::Delete(p.name.clone(), p.uid.clone(), why);
    if !input.should_continue {
        return live.iter().map(|p| delete(p, "the set no longer targets this node")).collect();
    }
    let failed = live.iter().any(|p| p.failed);
    let mut steps: Vec<Step> = if input.failed_backoff {
        Vec::new()
    } else {
        live.iter().filter(|p| p.failed).map(|p| delete(p, FAILED)).collect()
    };
    live.retain(|p| !p.failed);
    // in backoff, the failed pod holds the node's place
    let create = input.should_run && input.permitted && !input.creating && !(failed && input.failed_backoff);
    if live.is_empty() {
        if create {
            steps.push(Step::Create);
        }
        return steps;
    }
    let hash = input.hash.as_deref().filter(|_| input.permitted);
    let Some(hash) = hash else {
        steps.extend(live[1..].iter().map(|p| delete(p, "more than one pod on the node")));
        return steps;
    };
    let (new, old): (Vec<&PodView>, Vec<&PodView>) =
        live.iter().partition(|p| p.revision.as_deref() == Some(hash));
    match new.first() {
        Some(n) => {
            steps.extend(new[1..].iter().map(|p| delete(p, "more than one updated pod on the node")));
            if !input.surge || n.available {
                steps.extend(old.iter().map(|p| delete(p, "replaced by the update revision")));
            }
        }
        None if input.surge => {
            if create {
                steps.push(Step::Create);
            }
            steps.extend(old[1..].iter().map(|p| delete(p, "more than one pod on the node")));
        }
        None if input.in_place && old.len() == 1 => steps.push(Step::InPlace(old[0].name.clone())),
        None => {
            steps.extend(old.iter().map(|p| delete(p, "replaced by the update revision")));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, rev: &str, secs: i64) -> PodView {
        PodView {
            name: name.into(),
            uid: format!("u-{name}"),
            revision: Some(rev.into()),
            available: true,
            created: Some(Timestamp::from_second(secs).unwrap()),
            ..PodView::default()
        }
    }

    fn input() -> Input {
        Input {
            should_run: true,
            should_continue: true,
            permitted: true,
            hash: Some("h2".into()),
            surge: false,
            creating: false,
            in_place: false,
            failed_backoff: false,
        }
    }

    fn deleted(steps: &[Step]) -> Vec<&str> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Delete(n, ..) => Some(n.as_str()),
                Step::Create | Step::InPlace(_) => None,
            })
            .collect()
    }

    #[test]
    fn creates_only_with_a_permit() {
        assert_eq!(decide(&input(), &[]), [Step::Create]);
        assert!(decide(&Input { permitted: false, ..input() }, &[]).is_empty());
        assert!(decide(&Input { creating: true, ..input() }, &[]).is_empty(), "one pod at a time");
        assert!(decide(&Input { should_run: false, ..input() }, &[]).is_empty(), "a tainted node gets none");
    }

    #[test]
    fn leaves_a_node_it_no_longer_targets() {
        let i = Input { should_run: false, should_continue: false, ..input() };
        assert_eq!(deleted(&decide(&i, &[pod("a", "h2", 1)])), ["a"]);
        let i = Input { should_run: false, ..input() };
        assert!(decide(&i, &[pod("a", "h2", 1)]).is_empty(), "NoSchedule keeps a running pod");
    }

    #[test]
    fn replaces_failed_and_extra_pods() {
        let mut failed = pod("a", "h2", 1);
        failed.failed = true;
        let replaced = [Step::Delete("a".into(), "u-a".into(), FAILED), Step::Create];
        assert_eq!(decide(&input(), &[failed.clone()]), replaced);
        let held = Input { failed_backoff: true, ..input() };
        assert!(decide(&held, &[failed]).is_empty(), "in backoff: it stays, nothing beside it");
        let both = [pod("b", "h1", 2), pod("a", "h1", 1)];
        assert_eq!(
            deleted(&decide(&Input { permitted: false, ..input() }, &both)),
            ["b"],
            "the oldest stays"
        );
    }

    #[test]
    fn failed_pods_back_off_as_kubernetes_does() {
        let mut b = FailedBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.wait("ds", t0), None, "the first failure goes at once");
        b.deleted("ds", t0);
        assert_eq!(b.wait("ds", t0), Some(Duration::from_secs(1)));
        assert_eq!(b.wait("ds", t0 + Duration::from_secs(1)), None);
        let mut at = t0 + Duration::from_secs(1);
        for want in [2, 4, 8, 16] {
            b.deleted("ds", at);
            assert_eq!(b.wait("ds", at), Some(Duration::from_secs(want)));
            at += Duration::from_secs(want);
        }
        for _ in 0..20 {
            b.deleted("ds", at);
        }
        assert_eq!(b.wait("ds", at), Some(Duration::from_secs(900)), "at most 15 min");
        let later = at + Duration::from_secs(1801);
        b.deleted("ds", later);
        assert_eq!(b.wait("ds", later), Some(Duration::from_secs(1)), "reset after 30 min without one");
        assert_eq!(b.wait("other", later), None, "per set");
        b.prune(later, |k| k != "ds");
        assert_eq!(b.wait("ds", later), None, "pruned");
    }

    #[test]
    fn standard_update_deletes_then_creates() {
        let old = [pod("a", "h1", 1)];
        assert_eq!(deleted(&decide(&input(), &old)), ["a"]);
        assert!(decide(&Input { permitted: false, ..input() }, &old).is_empty(), "no permit, no update");
        assert!(decide(&input(), &[pod("a", "h2", 1)]).is_empty(), "up to date");
        let mut going = pod("a", "h1", 1);
        going.terminating = true;
        assert_eq!(decide(&input(), &[going]), [Step::Create], "a terminating pod is not waited for");
    }

    #[test]
    fn in_place_when_it_can() {
        let i = Input { in_place: true, ..input() };
        assert_eq!(decide(&i, &[pod("a", "h1", 1)]), [Step::InPlace("a".into())]);
        assert!(decide(&Input { permitted: false, ..i.clone() }, &[pod("a", "h1", 1)]).is_empty());
        assert!(decide(&i, &[pod("a", "h2", 1)]).is_empty(), "done");
    }

    #[test]
    fn surge_starts_the_new_pod_first() {
        let s = Input { surge: true, ..input() };
        assert_eq!(decide(&s, &[pod("a", "h1", 1)]), [Step::Create]);
        let mut new = pod("b", "h2", 2);
        new.available = false;
        assert!(decide(&s, &[pod("a", "h1", 1), new.clone()]).is_empty(), "the old one waits");
        new.available = true;
        assert_eq!(deleted(&decide(&s, &[pod("a", "h1", 1), new])), ["a"]);
    }
}
