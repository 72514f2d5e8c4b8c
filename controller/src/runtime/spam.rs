//! The event spam filter client-go's recorder applies (`EventSourceObjectSpamFilter`),
//! so a controller acting on thousands of pods of one workload does not write
//! thousands of Events on it: per involved object and event type, a token bucket of
//! [`BURST`] tokens refilled at one per [`REFILL`]. client-go keys by object only;
//! the type is added here so a warning is never swallowed by a burst of normal events. A 10,000-replica CloneSet created
//! in one go gets its first 25 `SuccessfulCreate` events, as under OpenKruise; the
//! rest are dropped (and counted in the log), not queued.

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;

/// Events an object may get at once.
pub const BURST: u32 = 25;
/// One more event allowed per this long.
pub const REFILL: Duration = Duration::from_secs(300);
/// Buckets kept before full ones are forgotten (a full bucket is the same as none).
const KEEP: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    /// When the bucket last gained (or started counting towards) a token.
    since: Instant,
}

/// Token buckets by key (`kind/namespace/name/uid/type`).
#[derive(Debug, Default)]
pub struct SpamFilter {
    buckets: HashMap<String, Bucket>,
    /// Events refused since the last one allowed, per key, for the log.
    dropped: HashMap<String, u64>,
}

impl SpamFilter {
    /// Takes a token for `key` at `now`: `Some(events dropped before this one)` when the
    /// event may go out, `None` when it is spam.
    pub fn allow(&mut self, key: &str, now: Instant) -> Option<u64> {
        if self.buckets.len() >= KEEP {
            self.buckets.retain(|_, b| refill(*b, now).tokens < BURST);
            let kept = &self.buckets;
            self.dropped.retain(|k, _| kept.contains_key(k));
        }
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket { tokens: BURST, since: now });
        *bucket = refill(*bucket, now);
        if bucket.tokens == 0 {
            *self.dropped.entry(key.to_owned()).or_default() += 1;
            return None;
        }
        if bucket.tokens == BURST {
            bucket.since = now;
        }
        bucket.tokens -= 1;
        Some(self.dropped.remove(key).unwrap_or(0))
    }
}

fn refill(b: Bucket, now: Instant) -> Bucket {
    if b.tokens >= BURST {
        return b;
    }
    let periods = now.saturating_duration_since(b.since).as_secs_f64() / REFILL.as_secs_f64();
    // a bucket refills by whole tokens; the remainder keeps counting from `since`
    let whole = periods.floor();
    let gained = u32::try_from(whole as u64).unwrap_or(u32::MAX);
    if gained == 0 {
        return b;
    }
    let tokens = b.tokens.saturating_add(gained).min(BURST);
    Bucket { tokens, since: b.since + REFILL.mul_f64(whole) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_per_refill() {
        let mut f = SpamFilter::default();
        let start = Instant::now();
        for i in 0..BURST {
            assert_eq!(f.allow("cs", start), Some(0), "event {i} of the burst");
        }
        assert_eq!(f.allow("cs", start), None);
        assert_eq!(f.allow("cs", start), None);
        // another object has its own bucket
        assert_eq!(f.allow("other", start), Some(0));
        tokio::time::advance(REFILL - Duration::from_secs(1)).await;
        assert_eq!(f.allow("cs", Instant::now()), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        // the refilled token, reporting the three dropped meanwhile
        assert_eq!(f.allow("cs", Instant::now()), Some(3));
        assert_eq!(f.allow("cs", Instant::now()), None);
        tokio::time::advance(REFILL * 100).await;
        for _ in 0..BURST {
            assert!(f.allow("cs", Instant::now()).is_some());
        }
        assert!(f.allow("cs", Instant::now()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_forgotten_when_many() {
        let mut f = SpamFilter::default();
        let now = Instant::now();
        for i in 0..KEEP {
            f.allow(&format!("k{i}"), now).unwrap();
        }
        // one spent key stays throttled, the others refill and are dropped
        for _ in 1..BURST {
            f.allow("k0", now).unwrap();
        }
        tokio::time::advance(REFILL).await;
        assert!(f.allow("new", Instant::now()).is_some());
        assert_eq!(f.buckets.len(), 2, "only the spent bucket and the new one are kept");
        assert!(f.buckets.contains_key("k0"));
    }
}
