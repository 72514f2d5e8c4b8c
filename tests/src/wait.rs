//! Waiting for a condition in the simulated cluster, polled, with a deadline.

use std::time::{Duration, Instant};

use anyhow::bail;

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it yields `Some`, for up to `within`; fails naming `what`.
///
/// # Errors
/// `check` failed, or `within` passed first.
pub async fn until<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > within {
            bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
