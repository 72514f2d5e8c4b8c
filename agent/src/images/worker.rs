//! One tag's pull: wait for a slot, then up to `backoffLimit + 1` attempts, each
//! bounded by `timeoutSeconds` and all by `activeDeadlineSeconds`, 1 s doubling to
//! 30 s apart; progress and the outcome written into the tag's status as they come.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use stevedore_proto::{
    crd::node_image::{ImagePullPhase, ImageTagStatus},
    cri::{AuthConfig, PodSandboxConfig, PullImageRequest},
};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A boxed future, for the object-safe [`Runtime`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a pull needs from the node's runtime.
pub trait Runtime: Send + Sync + 'static {
    /// The image's id if the runtime has `image`.
    fn present(&self, image: String) -> BoxFuture<'_, Result<Option<String>, tonic::Status>>;
    /// Pulls, sending percent done on `progress` as it goes; returns the image id.
    fn pull(
        &self,
        req: PullImageRequest,
        progress: mpsc::Sender<u32>,
    ) -> BoxFuture<'_, Result<String, tonic::Status>>;
}

/// One tag to pull.
#[derive(Debug, Clone)]
pub struct Pull {
    /// The reference to pull (`name:tag` or `name@digest`).
    pub reference: String,
    /// The tag as the NodeImage lists it.
    pub tag: String,
    /// The spec's version of the tag.
    pub version: i64,
    /// Pull even if present.
    pub always: bool,
    /// Per attempt.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub backoff_limit: u32,
    /// For all attempts together, from the start.
    pub deadline: Option<Duration>,
    /// Credentials to try in turn (none: anonymous).
    pub auths: Vec<AuthConfig>,
    /// Passed to the runtime as the pull's sandbox config.
    pub sandbox: Option<PodSandboxConfig>,
}

/// Where a worker reports: the tag's status as it changes.
pub trait Report: Send + Sync + 'static {
    /// The tag's status changed.
    fn update(&self, status: ImageTagStatus);
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Backoff between attempts: 1 s, doubling, at most 30 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(Duration::from_secs(30))
}

/// Runs one pull to its end (or until `stop`: a spec change or a removed tag), writing
/// the tag's status into `report`. Returns the final status (`None` when stopped).
pub async fn run(
    pull: Pull,
    runtime: Arc<dyn Runtime>,
    slots: Arc<Semaphore>,
    report: Arc<dyn Report>,
    stop: CancellationToken,
) -> Option<ImageTagStatus> {
    let mut status = ImageTagStatus {
        tag: pull.tag.clone(),
        phase: ImagePullPhase::Waiting,
        progress: Some(0),
        version: Some(pull.version),
        ..ImageTagStatus::default()
    };
    report.update(status.clone());
    let _slot = tokio::select! {
        () = stop.cancelled() => return None,
        s = slots.acquire_owned() => s.ok()?,
    };
    let started = Instant::now();
    status.phase = ImagePullPhase::Pulling;
    status.start_time = Some(now());
    report.update(status.clone());
    let mut last_error = String::new();
    for attempt in 0..=pull.backoff_limit {
        let left = pull.deadline.map(|d| d.saturating_sub(started.elapsed()));
        if left.is_some_and(|l| l.is_zero()) {
            last_error = "pulling exceeds the activeDeadlineSeconds".into();
            break;
        }
        let limit = left.map_or(pull.timeout, |l| l.min(pull.timeout));
        let outcome = tokio::select! {
            () = stop.cancelled() => return None,
            r = tokio::time::timeout(limit, attempt_once(&pull, runtime.as_ref(), &mut status, report.as_ref())) => r,
        };
        match outcome {
            Ok(Ok(image_id)) => {
                status.phase = ImagePullPhase::Succeeded;
                status.progress = Some(100);
                status.image_id = Some(image_id);
                status.message = None;
                status.completion_time = Some(now());
                report.update(status.clone());
                return Some(status);
            }
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = format!("pull timed out after {}s", limit.as_secs()),
        }
        status.message = Some(format!("attempt {} of {}: {last_error}", attempt + 1, pull.backoff_limit + 1));
        report.update(status.clone());
        if attempt < pull.backoff_limit {
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(retry_delay(attempt)) => {}
            }
        }
    }
    status.phase = ImagePullPhase::Failed;
    status.message = Some(last_error);
    status.completion_time = Some(now());
    report.update(status.clone());
    Some(status)
}

/// One attempt: present already (IfNotPresent), or pulled with each credential in turn.
async fn attempt_once(
    pull: &Pull,
    runtime: &dyn Runtime,
    status: &mut ImageTagStatus,
    report: &dyn Report,
) -> Result<String, String> {
    if !pull.always
        && let Some(id) =
            runtime.present(pull.reference.clone()).await.map_err(|s| s.message().to_string())?
    {
        return Ok(id);
    }
    let auths: Vec<Option<AuthConfig>> =
        if pull.auths.is_empty() { vec![None] } else { pull.auths.iter().cloned().map(Some).collect() };
    let mut last = String::new();
    for auth in auths {
        let req = PullImageRequest {
            image: Some(stevedore_proto::cri::ImageSpec {
                image: pull.reference.clone(),
                ..Default::default()
            }),
            auth,
            sandbox_config: pull.sandbox.clone(),
        };
        let (tx, mut rx) = mpsc::channel(16);
        let pulling = runtime.pull(req, tx);
        tokio::pin!(pulling);
        let result = loop {
            tokio::select! {
                r = &mut pulling => break r,
                Some(p) = rx.recv() => {
                    let p = i32::try_from(p.min(99)).unwrap_or(0);
                    if status.progress != Some(p) {
                        status.progress = Some(p);
                        report.update(status.clone());
                    }
                }
            }
        };
        match result {
            Ok(id) => return Ok(id),
            Err(s) => last = format!("{}: {}", code_name(s.code()), s.message()),
        }
    }
    Err(last)
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::NotFound => "NotFound",
        tonic::Code::Unauthenticated => "Unauthenticated",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::Cancelled => "Cancelled",
        tonic::Code::InvalidArgument => "InvalidArgument",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests;
