//! Expectations, as Kubernetes' controllers keep them: after a reconcile creates or
//! deletes children, the watch that will show them may lag; until it has shown them
//! (or [`TTL`] passed), the controller must not act on its stale view, or it would
//! create or delete twice (delete a child it just made, because the store still shows
//! the one it replaced).
//!
//! Each expectation names the child (by name, not uid: a child about to be created has
//! none yet). The reconcile records it just before the call ([`Expectations::expect_create`],
//! [`Expectations::expect_delete`]), takes it back when the call did not happen
//! ([`Expectations::cancel`]), and marks what its watch's store shows at the start of
//! every pass ([`Expectations::observe`]): a create is observed once the child is in
//! the store, a delete once it is gone from it or terminating. The watch of the
//! children (kube-runtime's `owns`) triggers those passes. A child must not be created
//! under the name of one whose deletion is still pending (the reconcile waits for the
//! delete to be observed first), so "in the store" always means the new child.
//!
//! Users: ImageListPullJob (its ImagePullJobs). ImagePullJob does not need these: it
//! creates and deletes nothing, it patches NodeImages, and its own check (the
//! resourceVersions it wrote against those its NodeImage watch shows, `Ctx::written`
//! in `controllers::image_pull_job`) already keeps it off a stale view.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use tokio::time::Instant;

/// How long unobserved expectations are trusted (Kubernetes: 5 minutes).
pub const TTL: Duration = Duration::from_secs(300);

/// What the watch's store shows of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not in the store.
    Absent,
    /// In the store with a deletion timestamp.
    Terminating,
    /// In the store, not being deleted.
    Live,
}

#[derive(Debug)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    /// When the last expectation was recorded; all expire [`TTL`] after it.
    at: Instant,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.deletes.is_empty()
    }
}

/// Pending creations and deletions of children, by name, per controller key (the
/// owner object).
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> R) -> R {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn entry<'a>(m: &'a mut HashMap<String, Pending>, key: &str) -> &'a mut Pending {
        let p = m.entry(key.to_owned()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            at: Instant::now(),
        });
        p.at = Instant::now();
        p
    }

    /// `key` is about to create the child `name`.
    pub fn expect_create(&self, key: &str, name: &str) {
        self.with(|m| Self::entry(m, key).creates.insert(name.to_owned()));
    }

    /// `key` is about to delete the child `name`.
    pub fn expect_delete(&self, key: &str, name: &str) {
        self.with(|m| Self::entry(m, key).deletes.insert(name.to_owned()));
    }

    /// The create or delete of `name` expected for `key` did not happen (the call
    /// failed): nothing to wait for.
    pub fn cancel(&self, key: &str, name: &str) {
        self.with(|m| {
            if let Some(p) = m.get_mut(key) {
                p.creates.remove(name);
                p.deletes.remove(name);
                if p.is_empty() {
                    m.remove(key);
                }
            }
        });
    }

    /// Marks what the store shows of `key`'s children (`seen` by name): a pending
    /// create is observed once the child is in the store, a pending delete once it is
    /// absent or terminating.
    pub fn observe(&self, key: &str, seen: impl Fn(&str) -> Seen) {
        self.with(|m| {
            if let Some(p) = m.get_mut(key) {
                p.creates.retain(|name| seen(name) == Seen::Absent);
                p.deletes.retain(|name| seen(name) == Seen::Live);
                if p.is_empty() {
                    m.remove(key);
                }
            }
        });
    }

    /// Whether `key`'s view is current: nothing pending (all observed), or what is
    /// pending is older than [`TTL`] (a watch that never shows it does not block for
    /// ever). Expired expectations are dropped.
    pub fn satisfied(&self, key: &str) -> bool {
        self.with(|m| match m.get(key) {
            None => true,
            Some(p) if p.is_empty() || p.at.elapsed() > TTL => {
                m.remove(key);
                true
            }
            Some(_) => false,
        })
    }

    /// Whether the delete of `key`'s child `name` is expected and not yet observed.
    pub fn deleting(&self, key: &str, name: &str) -> bool {
        self.with(|m| m.get(key).is_some_and(|p| p.deletes.contains(name)))
    }

    /// How long until `key`'s pending expectations expire (zero when none are).
    pub fn expires_in(&self, key: &str) -> Duration {
        self.with(|m| m.get(key).map_or(Duration::ZERO, |p| TTL.saturating_sub(p.at.elapsed())))
    }

    /// Forgets `key` (it was deleted).
    pub fn forget(&self, key: &str) {
        self.with(|m| {
            m.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A store's view: name → what it shows.
    fn view(entries: &[(&str, Seen)]) -> impl Fn(&str) -> Seen {
        let map: BTreeMap<String, Seen> = entries.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect();
        move |name| map.get(name).copied().unwrap_or(Seen::Absent)
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn creates_are_observed_when_the_store_shows_them() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/list"));
        e.expect_create("ns/list", "a");
        e.expect_create("ns/list", "b");
        assert!(!e.satisfied("ns/list"));
        e.observe("ns/list", view(&[]));
        assert!(!e.satisfied("ns/list"), "the store shows neither yet");
        e.observe("ns/list", view(&[("a", Seen::Live)]));
        assert!(!e.satisfied("ns/list"), "b is still unseen");
        // a child already being deleted was created all the same
        e.observe("ns/list", view(&[("a", Seen::Live), ("b", Seen::Terminating)]));
        assert!(e.satisfied("ns/list"));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn deletes_are_observed_when_the_store_loses_them_or_shows_them_terminating() {
        let e = Expectations::default();
        e.expect_delete("ns/list", "a");
        e.expect_delete("ns/list", "b");
        // the delete call has returned, but the watch still shows both
        e.observe("ns/list", view(&[("a", Seen::Live), ("b", Seen::Live)]));
        assert!(!e.satisfied("ns/list"));
        assert!(e.deleting("ns/list", "a"));
        e.observe("ns/list", view(&[("a", Seen::Terminating), ("b", Seen::Live)]));
        assert!(!e.deleting("ns/list", "a"));
        assert!(!e.satisfied("ns/list"), "b still shown live");
        e.observe("ns/list", view(&[]));
        assert!(e.satisfied("ns/list"));
        assert!(!e.deleting("ns/list", "b"));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn expectations_are_per_owner_and_cancelled_when_the_call_failed() {
        let e = Expectations::default();
        e.expect_create("ns/one", "x");
        e.expect_delete("ns/two", "x");
        e.observe("ns/one", view(&[("x", Seen::Live)]));
        assert!(e.satisfied("ns/one"));
        assert!(!e.satisfied("ns/two"), "another owner's view of the same name is its own");
        e.cancel("ns/two", "x");
        assert!(e.satisfied("ns/two"));
        e.expect_create("ns/gone", "y");
        e.forget("ns/gone");
        assert!(e.satisfied("ns/gone"));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn unobserved_expectations_expire_after_the_ttl_counted_from_the_last() {
        let e = Expectations::default();
        e.expect_create("ns/list", "a");
        tokio::time::advance(TTL - Duration::from_secs(10)).await;
        assert_eq!(e.expires_in("ns/list"), Duration::from_secs(10));
        e.expect_delete("ns/list", "b");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(!e.satisfied("ns/list"), "the newer expectation renewed the wait");
        tokio::time::advance(TTL).await;
        assert!(e.satisfied("ns/list"), "a watch that never shows them does not block for ever");
        assert!(!e.deleting("ns/list", "b"), "expired expectations are dropped");
        assert_eq!(e.expires_in("ns/list"), Duration::ZERO);
    }
}
