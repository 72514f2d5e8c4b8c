//! Expectations, as Kubernetes' controllers keep them: after a reconcile creates or
//! deletes objects, the watch that will show them may lag; until it has shown them
//! (or a timeout passed), the controller must not act on the stale view, or it would
//! create or delete twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long unobserved expectations are trusted (Kubernetes: 5 minutes).
pub const TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Pending {
    adds: i64,
    dels: i64,
    at: Instant,
}

/// Pending creations and deletions per controller key (the owner object).
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> R) -> R {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `key` is about to create `adds` and delete `dels` objects.
    pub fn expect(&self, key: &str, adds: i64, dels: i64) {
        self.with(|m| {
            let p = m.entry(key.to_owned()).or_insert(Pending { adds: 0, dels: 0, at: Instant::now() });
            p.adds += adds;
            p.dels += dels;
            p.at = Instant::now();
        });
    }

    /// The watch showed one of `key`'s creations.
    pub fn created(&self, key: &str) {
        self.with(|m| {
            if let Some(p) = m.get_mut(key) {
                p.adds -= 1;
            }
        });
    }

    /// The watch showed one of `key`'s deletions.
    pub fn deleted(&self, key: &str) {
        self.with(|m| {
            if let Some(p) = m.get_mut(key) {
                p.dels -= 1;
            }
        });
    }

    /// Whether `key`'s view is current: nothing pending, all observed, or expired.
    pub fn satisfied(&self, key: &str) -> bool {
        self.with(|m| match m.get(key) {
            None => true,
            Some(p) if (p.adds <= 0 && p.dels <= 0) || p.at.elapsed() > TTL => {
                m.remove(key);
                true
            }
            Some(_) => false,
        })
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
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn observed_or_expired() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/job"));
        e.expect("ns/job", 2, 1);
        assert!(!e.satisfied("ns/job"));
        e.created("ns/job");
        e.deleted("ns/job");
        assert!(!e.satisfied("ns/job"), "one creation still unseen");
        e.created("ns/job");
        assert!(e.satisfied("ns/job"));
        e.expect("ns/other", 1, 0);
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        assert!(e.satisfied("ns/other"), "a watch that never shows it does not block for ever");
        e.expect("ns/gone", 1, 0);
        e.forget("ns/gone");
        assert!(e.satisfied("ns/gone"));
    }
}
