//! The pure part of the ImagePullJob controller: how a job's image sits in a
//! NodeImage (the tag entry it owns), what each node's pull looks like to the job,
//! which nodes start next under `parallelism`, and the job's status.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::{
    api::core::v1::ObjectReference,
    apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString},
    jiff::{SignedDuration, Timestamp},
};
use stevedore_proto::crd::{
    common::CompletionPolicyType,
    image_pull_job::{ImagePullJobStatus, SandboxConfig},
    node_image::{
        ImagePullPhase, ImageTagPullPolicy, ImageTagSpec,
        v1beta1::{NodeImage, ReferenceObject},
    },
};

/// What of a job the plan needs.
#[derive(Debug, Clone)]
pub struct Job {
    /// `namespace/name`.
    pub key: String,
    /// The job's reference, as NodeImage tags record their owners.
    pub owner: ObjectReference,
    /// The NodeImage image key (the familiar name).
    pub image: String,
    /// The NodeImage tag (tag, `latest` or digest).
    pub tag: String,
    /// The tag entry's pull policy.
    pub pull_policy: ImageTagPullPolicy,
    /// `Always` or `IfNotPresent`.
    pub image_pull_policy: Option<stevedore_proto::crd::image_pull_job::ImagePullPolicy>,
    /// Given to the runtime with the pull.
    pub sandbox_config: Option<SandboxConfig>,
    /// Nodes pulling at once.
    pub parallelism: usize,
    /// `Always` (completes) or `Never`.
    pub never: bool,
    /// Seconds from the start after which unfinished nodes count as failed.
    pub active_deadline: Option<Duration>,
    /// How long a node may not report a pull before it counts as failed.
    pub response_timeout: Duration,
}

/// Grace added to the lifetime of an `Always` job's tag on the nodes (OpenKruise's
/// `--default-ttlseconds-for-always-nodeimage`).
pub const ALWAYS_TTL_GRACE: i32 = 300;
/// Lifetime of a `Never` job's tag: it is pulled again about daily.
pub const NEVER_TTL: i32 = 24 * 3600;

/// The tag entry's pull policy for a job: its timeout and retries, a lifetime after
/// the pull finished, and (for `Never` jobs) a deadline, as OpenKruise derives them.
pub fn tag_pull_policy(
    timeout: i32,
    backoff: i32,
    policy: &stevedore_proto::crd::common::CompletionPolicy,
) -> ImageTagPullPolicy {
    let never = matches!(policy.type_, Some(CompletionPolicyType::Never));
    let ttl = if never {
        NEVER_TTL
    } else {
        let base = policy
            .ttl_seconds_after_finished
            .or(policy.active_deadline_seconds.and_then(|d| i32::try_from(d).ok()))
            .unwrap_or(timeout.saturating_mul(backoff.max(1)));
        base.saturating_add(ALWAYS_TTL_GRACE)
    };
    ImageTagPullPolicy {
        timeout_seconds: Some(timeout),
        backoff_limit: Some(backoff),
        ttl_seconds_after_finished: Some(ttl),
        active_deadline_seconds: if never {
            Some(i64::from(timeout.max(1800)))
        } else {
            policy.active_deadline_seconds
        },
    }
}

/// `parallelism` as a count of nodes (unset: 1; a string holds an integer).
pub fn parallelism(p: Option<&IntOrString>) -> usize {
    match p {
        None => 1,
        Some(IntOrString::Int(i)) => usize::try_from(*i).unwrap_or(0),
        Some(IntOrString::String(s)) => s.trim().parse().unwrap_or(1),
    }
}

/// One node's pull, as the job sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeState {
    /// The job's tag is not on the node's list yet.
    NotSynced,
    /// Listed, not finished; percent done.
    Pulling(i32),
    /// Pulled.
    Succeeded,
    /// Failed, why.
    Failed(String),
}

fn owns(tag: &ImageTagSpec, owner: &ObjectReference) -> bool {
    tag.owner_references.iter().flatten().any(|o| o.uid == owner.uid)
}

/// How `job`'s pull on `ni` stands.
pub fn node_state(ni: &NodeImage, job: &Job, now: Timestamp) -> NodeState {
    let spec = ni.spec.images.as_ref().and_then(|i| i.get(&job.image));
    let Some(tag) =
        spec.and_then(|s| s.tags.iter().find(|t| t.tag == job.tag)).filter(|t| owns(t, &job.owner))
    else {
        return NodeState::NotSynced;
    };
    let version = tag.version.unwrap_or(0);
    let status = ni
        .status
        .as_ref()
        .and_then(|s| s.image_statuses.as_ref())
        .and_then(|m| m.get(&job.image))
        .and_then(|s| s.tags.iter().find(|t| t.tag == job.tag))
        .filter(|s| s.version.unwrap_or(0) == version);
    match status {
        Some(s) => match s.phase {
            ImagePullPhase::Succeeded => NodeState::Succeeded,
            ImagePullPhase::Failed => {
                NodeState::Failed(s.message.clone().unwrap_or_else(|| "pull failed".into()))
            }
            // a phase this controller does not name (a newer agent's) is not an end
            ImagePullPhase::Pulling | ImagePullPhase::Waiting | ImagePullPhase::Other(_) => {
                NodeState::Pulling(s.progress.unwrap_or(0).clamp(0, 100))
            }
        },
        None => {
            let asked = tag.created_at.as_ref().map_or(now, |t| t.0);
            let silent = now.duration_since(asked);
            if silent > SignedDuration::try_from(job.response_timeout).unwrap_or(SignedDuration::MAX) {
                NodeState::Failed(format!("the node has not reported the pull for {}s", silent.as_secs()))
            } else {
                NodeState::Pulling(0)
            }
        }
    }
}

/// The last status version a node reported for `job`'s tag.
fn reported_version(ni: &NodeImage, job: &Job) -> Option<(i64, ImagePullPhase)> {
    let s = ni.status.as_ref()?.image_statuses.as_ref()?.get(&job.image)?;
    s.tags.iter().find(|t| t.tag == job.tag).map(|t| (t.version.unwrap_or(0), t.phase.clone()))
}

/// Puts `job`'s tag on `ni`'s list, owned by the job (another job's entry for the same
/// tag is shared: pulled again only if its last pull failed), with the job's pull
/// secrets and sandbox config. Returns whether anything changed.
pub fn add_owner(ni: &mut NodeImage, job: &Job, secrets: &[ReferenceObject], now: Timestamp) -> bool {
    let reported = reported_version(ni, job);
    let images = ni.spec.images.get_or_insert_default();
    let image = images.entry(job.image.clone()).or_default();
    let mut changed = false;
    let secrets_list = image.pull_secrets.get_or_insert_default();
    for s in secrets {
        if !secrets_list.iter().any(|x| x.namespace == s.namespace && x.name == s.name) {
            secrets_list.push(s.clone());
            changed = true;
        }
    }
    if image.pull_secrets.as_ref().is_some_and(Vec::is_empty) {
        image.pull_secrets = None;
    }
    if job.sandbox_config.is_some() && image.sandbox_config != job.sandbox_config {
        image.sandbox_config = job.sandbox_config.clone();
        changed = true;
    }
    match image.tags.iter_mut().find(|t| t.tag == job.tag) {
        Some(tag) if owns(tag, &job.owner) => {}
        Some(tag) => {
            tag.owner_references.get_or_insert_default().push(job.owner.clone());
            let version = tag.version.unwrap_or(0);
            if reported == Some((version, ImagePullPhase::Failed)) {
                tag.version = Some(version + 1);
                tag.created_at = Some(Time(now));
            }
            changed = true;
        }
        None => {
            image.tags.push(ImageTagSpec {
                tag: job.tag.clone(),
                created_at: Some(Time(now)),
                pull_policy: Some(job.pull_policy.clone()),
                owner_references: Some(vec![job.owner.clone()]),
                version: Some(reported.map_or(0, |(v, _)| v + 1)),
                image_pull_policy: job.image_pull_policy.clone(),
            });
            image.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
            changed = true;
        }
    }
    changed
}

/// Takes `uid`'s ownership off every tag of `ni`; tags left without owners go, and
/// images left without tags. Returns whether anything changed.
pub fn remove_owner(ni: &mut NodeImage, uid: &str) -> bool {
    let Some(images) = ni.spec.images.as_mut() else { return false };
    let mut changed = false;
    for image in images.values_mut() {
        image.tags.retain_mut(|t| {
            let Some(owners) = t.owner_references.as_mut() else { return true };
            let before = owners.len();
            owners.retain(|o| o.uid.as_deref() != Some(uid));
            if owners.len() != before {
                changed = true;
                return !owners.is_empty();
            }
            true
        });
    }
    images.retain(|_, i| !i.tags.is_empty());
    changed
}

/// The nodes to put the job's tag on now: not synced ones, by name, as many as
/// `parallelism` leaves room for.
pub fn to_start(states: &BTreeMap<String, NodeState>, parallelism: usize) -> Vec<String> {
    let active = states.values().filter(|s| matches!(s, NodeState::Pulling(_))).count();
    let room = parallelism.saturating_sub(active);
    states.iter().filter(|(_, s)| **s == NodeState::NotSynced).take(room).map(|(n, _)| n.clone()).collect()
}

/// The job's status from its nodes' pulls.
pub fn status(
    prev: &ImagePullJobStatus,
    states: &BTreeMap<String, NodeState>,
    job: &Job,
    now: Timestamp,
) -> ImagePullJobStatus {
    let mut s =
        ImagePullJobStatus { start_time: prev.start_time.clone().or(Some(Time(now))), ..prev.clone() };
    let desired = states.len();
    let (mut succeeded, mut failed, mut active, mut done_pct) = (0, 0, 0, 0i64);
    let mut failed_nodes = Vec::new();
    for (node, st) in states {
        match st {
            NodeState::Succeeded => {
                succeeded += 1;
                done_pct += 100;
            }
            NodeState::Failed(_) => {
                failed += 1;
                done_pct += 100;
                failed_nodes.push(node.clone());
            }
            NodeState::Pulling(p) => {
                active += 1;
                done_pct += i64::from(*p);
            }
            NodeState::NotSynced => {}
        }
    }
    let started = s.start_time.as_ref().map_or(now, |t| t.0);
    let expired = !job.never
        && job.active_deadline.is_some_and(|d| {
            now.duration_since(started) >= SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
        });
    let as_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    s.desired = as_i32(desired);
    if expired && succeeded + failed < desired {
        for (node, st) in states {
            if matches!(st, NodeState::Pulling(_) | NodeState::NotSynced) {
                failed_nodes.push(node.clone());
            }
        }
        failed_nodes.sort();
        s.succeeded = Some(as_i32(succeeded));
        s.failed = Some(as_i32(desired - succeeded));
        s.active = Some(0);
        s.failed_nodes = Some(failed_nodes);
        s.completion_time = Some(Time(now));
        s.message = Some("job exceeds activeDeadlineSeconds".into());
        return s;
    }
    s.succeeded = Some(as_i32(succeeded));
    s.failed = Some(as_i32(failed));
    s.active = Some(as_i32(active));
    s.failed_nodes = (!failed_nodes.is_empty()).then_some(failed_nodes);
    if !job.never && succeeded + failed == desired {
        s.completion_time = Some(Time(now));
        s.message = Some("job has completed".into());
    } else if desired == 0 {
        s.message = Some("job is running, no progress".into());
    } else {
        let pct = done_pct as f64 / desired as f64;
        s.message = Some(format!("job is running, progress {pct:.1}%"));
    }
    s
}

#[cfg(test)]
mod tests;
