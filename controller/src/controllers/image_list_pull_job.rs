//! ImageListPullJob: one ImagePullJob per image of its list, made from its template
//! (a template change replaces them, as OpenKruise does), its status summed up from
//! theirs. Children are read from the watch's store (the one that triggers reconciles
//! when a child changes), with [`Expectations`] keeping a pass off a store that has not
//! shown this controller's own creates and deletes yet.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{controller::Action, reflector::Store},
};
use serde_json::json;
use stevedore_proto::{
    crd::{
        image_list_pull_job::{FailedImageStatus, ImageListPullJobStatus, v1beta1::ImageListPullJob},
        image_pull_job::v1beta1::{ImagePullJob, ImagePullJobSpec},
    },
    hash::fnv32a,
};
use tracing::{debug, info};

use crate::runtime::{Events, Expectations, expectations::Seen};

/// Labels the children with their list job, to find them.
pub const LIST_LABEL: &str = "imagelistpulljobs.kruise.io/name";
/// The hash of the template a child was made from.
pub const TEMPLATE_HASH: &str = "controller-revision-hash";

/// What reconciles share.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// Events on the list jobs.
    pub events: Events,
    /// Every ImagePullJob, from the watch that also triggers reconciles of their
    /// owners.
    pub children: Store<ImagePullJob>,
    /// Children created or deleted but not seen in `children` yet.
    pub expectations: Expectations,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

fn template_hash(job: &ImageListPullJob) -> String {
    let text = serde_json::to_string(&job.spec.template).unwrap_or_default();
    format!("{:x}", fnv32a(text.as_bytes()))
}

/// A child's name: the list job's, with a hash of the image.
pub fn child_name(job: &str, image: &str) -> String {
    let base: String = job.chars().take(240).collect();
    format!("{base}-{:08x}", fnv32a(image.as_bytes()))
}

/// The list job's status from its children's.
pub fn status(
    prev: &ImageListPullJobStatus,
    job: &ImageListPullJob,
    children: &[ImagePullJob],
    now: Timestamp,
) -> ImageListPullJobStatus {
    let mut s = ImageListPullJobStatus {
        start_time: prev
            .start_time
            .clone()
            .or(Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now))),
        ..prev.clone()
    };
    let started: Vec<&ImagePullJob> =
        children.iter().filter(|c| c.status.as_ref().is_some_and(|s| s.start_time.is_some())).collect();
    let st = |c: &ImagePullJob| c.status.clone().unwrap_or_default();
    let active = started.iter().filter(|c| st(c).active.unwrap_or(0) > 0).count();
    let completed = started
        .iter()
        .filter(|c| {
            let s = st(c);
            s.desired == s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0)
        })
        .count();
    let succeeded = started
        .iter()
        .filter(|c| {
            let s = st(c);
            s.desired == s.succeeded.unwrap_or(0)
        })
        .count();
    let mut failed: Vec<FailedImageStatus> = started
        .iter()
        .filter(|c| st(c).failed.unwrap_or(0) > 0)
        .map(|c| FailedImageStatus {
            image_pull_job: Some(c.name_any()),
            name: Some(c.spec.image.clone()),
            message: Some(format!(
                "Please check for details which nodes failed by 'kubectl get ImagePullJob {}'.",
                c.name_any()
            )),
        })
        .collect();
    failed.sort_by(|a, b| a.image_pull_job.cmp(&b.image_pull_job));
    let n = |x: usize| i32::try_from(x).unwrap_or(i32::MAX);
    s.desired = n(job.spec.images.len());
    s.active = Some(n(active));
    s.completed = Some(n(completed));
    s.succeeded = Some(n(succeeded));
    s.failed_image_statuses = (!failed.is_empty()).then_some(failed);
    let never = matches!(
        job.spec.template.completion_policy.type_,
        Some(stevedore_proto::crd::common::CompletionPolicyType::Never)
    );
    if !never && completed == job.spec.images.len() && s.completion_time.is_none() {
        s.completion_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    }
    s
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// One pass over one list job.
///
/// # Errors
/// The API server refused a request (retried with backoff).
pub async fn reconcile(job: Arc<ImageListPullJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let key = format!("{ns}/{name}");
    let api: Api<ImageListPullJob> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<ImagePullJob> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    if job.metadata.deletion_timestamp.is_some() {
        ctx.expectations.forget(&key);
        return Ok(Action::await_change());
    }
    let prev = job.status.clone().unwrap_or_default();
    if let Some(done) = &prev.completion_time {
        let Some(ttl) = job.spec.template.completion_policy.ttl_seconds_after_finished else {
            return Ok(Action::await_change());
        };
        let left = SignedDuration::from_secs(i64::from(ttl)) - now.duration_since(done.0);
        if left.is_positive() {
            return Ok(Action::requeue(left.unsigned_abs()));
        }
        info!(job = %key, "deleting the list job: ttlSecondsAfterFinished passed");
        api.delete(&name, &DeleteParams::background()).await?;
        return Ok(Action::await_change());
    }
    let uid = job.uid();
    let owned: Vec<Arc<ImagePullJob>> = ctx
        .children
        .state()
        .into_iter()
        .filter(|c| {
            c.namespace().as_deref() == Some(ns.as_str())
                && c.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    ctx.expectations.observe(&key, |child| {
        owned.iter().find(|c| c.name_any() == child).map_or(Seen::Absent, |c| {
            if c.metadata.deletion_timestamp.is_some() { Seen::Terminating } else { Seen::Live }
        })
    });
    if !ctx.expectations.satisfied(&key) {
        // the children's watch triggers the next pass; this is only a backstop
        debug!(job = %key, "waiting for the watch to show this controller's creates and deletes");
        return Ok(Action::requeue(ctx.expectations.expires_in(&key).min(Duration::from_secs(5))));
    }
    let children: Vec<ImagePullJob> = owned
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .map(|c| c.as_ref().clone())
        .collect();
    let next = status(&prev, &job, &children, now);
    let hash = template_hash(&job);
    let by_image: BTreeMap<&str, &ImagePullJob> =
        children.iter().map(|c| (c.spec.image.as_str(), c)).collect();
    let mut creates = Vec::new();
    let mut deletes = Vec::new();
    for image in &job.spec.images {
        match by_image.get(image.as_str()) {
            None => creates.push(image.clone()),
            Some(c) if c.labels().get(TEMPLATE_HASH) != Some(&hash) => {
                deletes.push(c.name_any());
                creates.push(image.clone());
            }
            Some(_) => {}
        }
    }
    for c in &children {
        if !job.spec.images.contains(&c.spec.image) {
            deletes.push(c.name_any());
        }
    }
    let owner = job.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();
    for d in &deletes {
        ctx.expectations.expect_delete(&key, d);
        match jobs.delete(d, &DeleteParams::background()).await {
            // gone already: the store will lose it too
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                ctx.expectations.cancel(&key, d);
                return Err(e.into());
            }
        }
    }
    let mut created = 0;
    let mut deferred = false;
    for image in &creates {
        let child_name = child_name(&name, image);
        if ctx.expectations.deleting(&key, &child_name) {
            // the child it replaces is on its way out: created once the watch shows
            // that (or a store that still shows the old one would count as the new)
            deferred = true;
            continue;
        }
        let child = ImagePullJob {
            metadata: ObjectMeta {
                name: Some(child_name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(BTreeMap::from([
                    (LIST_LABEL.to_string(), name.clone()),
                    (TEMPLATE_HASH.to_string(), hash.clone()),
                ])),
                owner_references: Some(owner.clone()),
                ..ObjectMeta::default()
            },
            spec: ImagePullJobSpec { image: image.clone(), template: job.spec.template.clone() },
            status: None,
        };
        ctx.expectations.expect_create(&key, &child_name);
        match jobs.create(&PostParams::default(), &child).await {
            Ok(_) => created += 1,
            // The old child of that name is still being deleted: next pass.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                ctx.expectations.cancel(&key, &child_name);
                return Ok(Action::requeue(Duration::from_millis(500)));
            }
            Err(e) => {
                ctx.expectations.cancel(&key, &child_name);
                return Err(e.into());
            }
        }
    }
    if created > 0 {
        ctx.events
            .publish(job.as_ref(), false, "SuccessfulCreate", format!("Created {created} ImagePullJob(s)"))
            .await;
    }
    if !deletes.is_empty() {
        ctx.events
            .publish(
                job.as_ref(),
                false,
                "SuccessfulDelete",
                format!("Deleted {} ImagePullJob(s)", deletes.len()),
            )
            .await;
    }
    if Some(&next) != job.status.as_ref() {
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": next}))).await?;
    }
    if deferred {
        // the children's watch triggers the pass that creates them; a backstop
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sums_the_children() {
        let job: ImageListPullJob =
            serde_json::from_value(json!({"metadata": {"name": "l", "namespace": "s"},
            "spec": {"images": ["a", "b", "c"], "completionPolicy": {}}}))
            .unwrap();
        let child = |image: &str, st: serde_json::Value| -> ImagePullJob {
            serde_json::from_value(json!({"metadata": {"name": child_name("l", image), "namespace": "s"},
                "spec": {"image": image, "completionPolicy": {}}, "status": st}))
            .unwrap()
        };
        let kids = vec![
            child(
                "a",
                json!({"startTime": "2026-12-01T10:00:00Z", "desired": 2, "succeeded": 2, "failed": 0, "active": 0}),
            ),
            child(
                "b",
                json!({"startTime": "2026-12-01T10:00:00Z", "desired": 2, "succeeded": 1, "failed": 1, "active": 0}),
            ),
            child(
                "c",
                json!({"startTime": "2026-12-01T10:00:00Z", "desired": 2, "succeeded": 0, "failed": 0, "active": 2}),
            ),
        ];
        let now: Timestamp = "2026-12-01T10:01:00Z".parse().unwrap();
        let s = status(&ImageListPullJobStatus::default(), &job, &kids, now);
        assert_eq!((s.desired, s.active, s.completed, s.succeeded), (3, Some(1), Some(2), Some(1)));
        assert_eq!(s.failed_image_statuses.as_ref().unwrap()[0].name.as_deref(), Some("b"));
        assert!(s.completion_time.is_none());
        let done = status(&ImageListPullJobStatus::default(), &job, &kids[..2], now);
        assert!(done.completion_time.is_none(), "c has no child yet: not complete");
        assert_ne!(child_name("l", "a"), child_name("l", "b"));
    }
}
