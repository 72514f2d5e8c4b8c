//! Per-object exponential backoff for failed reconciles, as client-go's item rate
//! limiter: the first retry after `base`, each further one twice as late, capped at
//! `max`; a success forgets the object.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failure counts by object key.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Default for Backoff {
    /// 5 ms doubling to 16 min 40 s: client-go's default controller rate limiter.
    fn default() -> Self {
        Self::new(Duration::from_millis(5), Duration::from_secs(1000))
    }
}

impl Backoff {
    /// Retries after `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, failures: Mutex::default() }
    }

    /// Records a failure of `key`; returns how long to wait before retrying it.
    pub fn failed(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(key.to_owned()).or_insert(0);
        let delay = self.base.saturating_mul(1u32.checked_shl(*n).unwrap_or(u32::MAX)).min(self.max);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets `key`'s failures (it reconciled).
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// How many times `key` failed in a row.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let delays: Vec<u128> = (0..5).map(|_| b.failed("ns/a").as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        assert_eq!(b.failed("ns/b").as_millis(), 10, "objects back off independently");
        b.succeeded("ns/a");
        assert_eq!((b.failures("ns/a"), b.failed("ns/a").as_millis()), (0, 10));
        let big = Backoff::default();
        for _ in 0..100 {
            big.failed("x");
        }
        assert_eq!(big.failed("x"), Duration::from_secs(1000));
    }
}
