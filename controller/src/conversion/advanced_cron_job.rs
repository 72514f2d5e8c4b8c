//! AdvancedCronJob. v1beta1 adds `spec.template.imageListPullJobTemplate`; an
//! object with one cannot be converted to v1alpha1, and the conversion says so, as
//! OpenKruise v1.9.0's does. The BroadcastJob template is copied field by field
//! between the versions' BroadcastJob specs; every other field is copied.

use stevedore_proto::crd::{
    advanced_cron_job::{ObjectTemplate, v1alpha1 as a1, v1beta1 as b1},
    broadcast_job,
};

use super::{Refusal, Versions};

/// The AdvancedCronJob's versions.
#[derive(Debug)]
pub struct AdvancedCronJob;

impl Versions for AdvancedCronJob {
    type Alpha = a1::AdvancedCronJob;
    type Beta = b1::AdvancedCronJob;

    fn to_beta(alpha: a1::AdvancedCronJob) -> b1::AdvancedCronJob {
        let s = alpha.spec;
        let template = b1::CronJobTemplate {
            job_template: s.template.job_template,
            broadcast_job_template: s
                .template
                .broadcast_job_template
                .map(|t| ObjectTemplate { metadata: t.metadata, spec: t.spec.map(broadcast_job_to_beta) }),
            image_list_pull_job_template: None,
        };
        let spec = b1::AdvancedCronJobSpec {
            schedule: s.schedule,
            time_zone: s.time_zone,
            starting_deadline_seconds: s.starting_deadline_seconds,
            concurrency_policy: s.concurrency_policy,
            paused: s.paused,
            successful_jobs_history_limit: s.successful_jobs_history_limit,
            failed_jobs_history_limit: s.failed_jobs_history_limit,
            template,
        };
        b1::AdvancedCronJob { metadata: alpha.metadata, spec, status: alpha.status }
    }

    fn to_alpha(beta: b1::AdvancedCronJob) -> Result<a1::AdvancedCronJob, Refusal> {
        let s = beta.spec;
        if s.template.image_list_pull_job_template.is_some() {
            return Err(Refusal {
                field: "spec.template.imageListPullJobTemplate",
                reason: "is not supported in v1alpha1 (only v1beta1 cron jobs can create ImageListPullJobs)",
            });
        }
        let template = a1::CronJobTemplate {
            job_template: s.template.job_template,
            broadcast_job_template: s
                .template
                .broadcast_job_template
                .map(|t| ObjectTemplate { metadata: t.metadata, spec: t.spec.map(broadcast_job_to_alpha) }),
        };
        let spec = a1::AdvancedCronJobSpec {
            schedule: s.schedule,
            time_zone: s.time_zone,
            starting_deadline_seconds: s.starting_deadline_seconds,
            concurrency_policy: s.concurrency_policy,
            paused: s.paused,
            successful_jobs_history_limit: s.successful_jobs_history_limit,
            failed_jobs_history_limit: s.failed_jobs_history_limit,
            template,
        };
        Ok(a1::AdvancedCronJob { metadata: beta.metadata, spec, status: beta.status })
    }
}

fn broadcast_job_to_beta(
    s: broadcast_job::v1alpha1::BroadcastJobSpec,
) -> broadcast_job::v1beta1::BroadcastJobSpec {
    broadcast_job::v1beta1::BroadcastJobSpec {
        parallelism: s.parallelism,
        template: s.template,
        completion_policy: s.completion_policy,
        paused: s.paused,
        failure_policy: s.failure_policy,
    }
}

fn broadcast_job_to_alpha(
    s: broadcast_job::v1beta1::BroadcastJobSpec,
) -> broadcast_job::v1alpha1::BroadcastJobSpec {
    broadcast_job::v1alpha1::BroadcastJobSpec {
        parallelism: s.parallelism,
        template: s.template,
        completion_policy: s.completion_policy,
        paused: s.paused,
        failure_policy: s.failure_policy,
    }
}
