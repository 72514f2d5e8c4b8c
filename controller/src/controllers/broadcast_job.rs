//! BroadcastJob (`apps.kruise.io`, stored as `v1beta1`), the node-local way: the
//! controller never creates, deletes or watches the job's pods. Each node's agent
//! runs its own node's pod; the controller tells each node, in its
//! `NodeState.spec.broadcastJobs`, whether it may run the job's pod now, and adds the
//! agents' reports (`NodeState.status.broadcastJobs`) up into the job's status.
//!
//! Each pass over a job:
//! 1. a job finished under completion policy `Always` (a `Complete` or `Failed`
//!    condition) only loses its permits, and is deleted (background propagation, so
//!    its pods go too) `ttlSecondsAfterFinished` after its completion time;
//! 2. **placement**: which nodes the job targets, by `proto::placement::broadcast_job`,
//!    the function each agent runs for its own node;
//! 3. **decision** ([`plan`]): counts, phase, a finishing condition, and which nodes
//!    hold a permit, under `parallelism`, `paused`, the failure policy, the deadline
//!    and the completion policy; each changed permit is one merge patch of that job's
//!    key in the node's `NodeState`;
//! 4. **status**: `startTime` at the first pass, the counts and phase, the condition
//!    and `completionTime` when the job finishes. A node whose agent is silent (its
//!    report older than the silence limit) counts as having no pod.

pub mod plan;

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString},
    jiff::Timestamp,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{controller::Action, reflector::ObjectRef},
};
use serde_json::json;
use stevedore_proto::{
    crd::{
        broadcast_job::{
            BroadcastJobStatus, FailurePolicyType, JobCondition, JobConditionType, v1beta1::BroadcastJob,
        },
        common::CompletionPolicyType,
        node_state::workload_key,
    },
    intstr::{self, Percent, Rounding},
    placement,
};
use tracing::{debug, info, instrument};

use super::node_states;

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The spec cannot be acted on.
    #[error("{0}")]
    Spec(String),
    /// A permit could not be written.
    #[error(transparent)]
    Write(#[from] node_states::WriteError),
}

/// What passes share: the nodes, their NodeStates and the API.
pub type Ctx = node_states::Fleet;

/// Whether the job runs under completion policy `Always` (the default).
fn always(job: &BroadcastJob) -> bool {
    job.spec.completion_policy.type_.as_ref().is_none_or(|t| *t == CompletionPolicyType::Always)
}

/// Whether the job has finished for good (OpenKruise's `IsJobFinished`): completion
/// policy `Always` and a true `Complete` or `Failed` condition.
pub fn finished(job: &BroadcastJob) -> bool {
    always(job)
        && job.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(c.type_, JobConditionType::Complete | JobConditionType::Failed) && c.status == "True"
            })
        })
}

/// `parallelism` against `desired` nodes: an int, or a percentage rounded up; unset:
/// no limit.
pub fn parallelism(job: &BroadcastJob, desired: i64) -> Result<i64, Error> {
    let v = job.spec.parallelism.clone().unwrap_or(IntOrString::Int(i32::MAX));
    intstr::scaled(&v, Percent::Integer, desired, Rounding::Up)
        .map_err(|e| Error::Spec(format!("spec.parallelism: {e}")))
}

/// The time left from `since` until `seconds` after it (zero once past).
fn left(since: Timestamp, seconds: i64, now: Timestamp) -> Duration {
    let due = since + Duration::from_secs(u64::try_from(seconds.max(0)).unwrap_or(0));
    Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// One pass over a job.
///
/// # Errors
/// The API refuses a request, or the spec cannot be acted on.
#[instrument(skip_all, fields(broadcastjob = %ObjectRef::from_obj(&*job)))]
pub async fn reconcile(job: Arc<BroadcastJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.listed().await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().ok_or_else(|| Error::Spec("the job has no uid yet".into()))?;
    if let Some(wait) = ctx.passes.wait(&uid) {
        return Ok(Action::requeue(wait));
    }
    let key = workload_key(&ns, &name);
    let jobs: Api<BroadcastJob> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Timestamp::now();
    let old = job.status.clone().unwrap_or_default();

    if finished(&job) {
        write_permits(&ctx, &key, &uid, &Default::default()).await?;
        let ttl = job.spec.completion_policy.ttl_seconds_after_finished;
        if let (Some(ttl), Some(done)) = (ttl, old.completion_time.as_ref()) {
            let wait = left(done.0, i64::from(ttl), now);
            if !wait.is_zero() {
                return Ok(Action::requeue(wait));
            }
            info!(ttl_seconds_after_finished = ttl, "deleting the finished job");
            match jobs.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(Action::await_change());
    }

    let start = old.start_time.as_ref().map_or(now, |t| t.0);
    let deadline = job.spec.completion_policy.active_deadline_seconds.filter(|_| always(&job));
    let policy = job.spec.failure_policy.clone().unwrap_or_default();
    let view = plan::JobView {
        key: key.clone(),
        always: always(&job),
        paused: job.spec.paused.unwrap_or(false),
        failure_policy: policy.type_.unwrap_or(FailurePolicyType::FailFast),
        restart_limit: policy.restart_limit.unwrap_or(0),
        phase: old.phase.clone(),
        past_deadline: deadline.is_some_and(|d| left(start, d, now).is_zero()),
    };
    let mut freshness = node_states::Freshness::new(ctx.agent_silence, &ctx.heartbeats);
    let mut nodes = Vec::new();
    for node in ctx.nodes.state() {
        let node_name = node.name_any();
        let place = placement::broadcast_job(&node, &job.spec.template);
        let state = ctx.states.get(&ObjectRef::new(&node_name));
        let report = freshness
            .report(state.as_deref())
            .and_then(|st| st.broadcast_jobs.iter().find(|b| b.workload.uid == uid && b.pod.is_some()));
        let permitted =
            state.as_ref().and_then(|s| s.spec.broadcast_jobs.get(&key)).is_some_and(|p| p.uid == uid);
        nodes.push(plan::NodeView {
            name: node_name,
            should_run: place.should_run,
            should_continue: place.should_continue_running,
            permitted,
            pod: report.map(|r| plan::PodReport {
                phase: r.phase.clone(),
                on_failure: r.on_failure,
                restarts: r.restarts,
            }),
        });
    }
    let desired = plan::counts(&nodes, view.restart_limit).desired;
    let decision = plan::decide(&view, &nodes, parallelism(&job, i64::from(desired))?);
    write_permits(&ctx, &key, &uid, &decision.permits).await?;

    let mut st = BroadcastJobStatus {
        conditions: old.conditions.clone(),
        start_time: Some(Time(start)),
        completion_time: old.completion_time.clone(),
        active: decision.counts.active,
        succeeded: decision.counts.succeeded,
        failed: decision.counts.failed,
        desired: decision.counts.desired,
        phase: Some(decision.phase.clone()),
    };
    if let Some((type_, reason, message)) = decision.finish {
        info!(condition = %type_, %message, "the job finished");
        st.conditions.get_or_insert_with(Vec::new).push(JobCondition {
            type_,
            status: "True".into(),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
            reason: Some(reason),
            message: Some(message),
        });
        st.completion_time = Some(Time(now));
    }
    if st != old {
        jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": st}))).await?;
    }
    // the next pass: a report going stale, or the deadline (a finished job's status
    // write brings the pass that keeps its TTL)
    let mut next = freshness.next();
    let mut soon = |d: Duration| next = Some(next.map_or(d, |n| n.min(d)));
    if let Some(d) = deadline.filter(|_| st.completion_time.is_none()) {
        soon(left(start, d, now).max(Duration::from_millis(100)));
    }
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}

/// Writes the job's permits: `want` hold one, every other NodeState loses it.
async fn write_permits(
    ctx: &Ctx,
    key: &str,
    uid: &str,
    want: &std::collections::BTreeSet<String>,
) -> Result<(), Error> {
    let mut writes = Vec::new();
    for state in ctx.states.state() {
        let node = state.name_any();
        let body = match (state.spec.broadcast_jobs.get(key), want.contains(&node)) {
            (Some(p), true) if p.uid == uid => continue,
            (_, true) => json!({"spec": {"broadcastJobs": {key: {"uid": uid}}}}),
            (Some(_), false) => json!({"spec": {"broadcastJobs": {key: null}}}),
            (None, false) => continue,
        };
        writes.push((node, body));
    }
    if !writes.is_empty() {
        debug!(writes = writes.len(), permits = want.len(), "writing permits");
    }
    Ok(ctx.writer.write(writes).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_scales_and_defaults() {
        let mut job = BroadcastJob::new("j", Default::default());
        assert_eq!(parallelism(&job, 3).unwrap(), i64::from(i32::MAX));
        job.spec.parallelism = Some(IntOrString::String("50%".into()));
        assert_eq!(parallelism(&job, 3).unwrap(), 2, "rounded up");
        job.spec.parallelism = Some(IntOrString::Int(1));
        assert_eq!(parallelism(&job, 3).unwrap(), 1);
        job.spec.parallelism = Some(IntOrString::String("x".into()));
        assert!(parallelism(&job, 3).unwrap_err().to_string().contains("spec.parallelism"));
    }

    #[test]
    fn finished_needs_always_and_a_true_condition() {
        let mut job = BroadcastJob::new("j", Default::default());
        assert!(!finished(&job));
        job.status = Some(BroadcastJobStatus {
            conditions: Some(vec![JobCondition {
                type_: JobConditionType::Failed,
                status: "True".into(),
                ..JobCondition::default()
            }]),
            ..BroadcastJobStatus::default()
        });
        assert!(finished(&job));
        job.spec.completion_policy.type_ = Some(CompletionPolicyType::Never);
        assert!(!finished(&job), "a Never job is never finished");
    }

    #[test]
    fn time_left() {
        let t = Timestamp::from_second(1000).unwrap();
        assert_eq!(left(t, 10, Timestamp::from_second(1004).unwrap()), Duration::from_secs(6));
        assert_eq!(left(t, 10, Timestamp::from_second(1010).unwrap()), Duration::ZERO);
        assert_eq!(left(t, 10, Timestamp::from_second(2000).unwrap()), Duration::ZERO);
    }
}
