//! AdvancedCronJob. v1beta1 adds `spec.template.imageListPullJobTemplate`; an
//! object with one cannot be converted to v1alpha1, and the conversion says so, as
//! OpenKruise v1.9.0's does. Every other field is copied.

use stevedore_proto::crd::advanced_cron_job::{v1alpha1 as a1, v1beta1 as b1};

use super::{Refusal, StepError, Versions, copied};

/// The AdvancedCronJob's versions.
#[derive(Debug)]
pub struct AdvancedCronJob;

impl Versions for AdvancedCronJob {
    type Alpha = a1::AdvancedCronJob;
    type Beta = b1::AdvancedCronJob;

    fn to_beta(alpha: a1::AdvancedCronJob) -> Result<b1::AdvancedCronJob, StepError> {
        Ok(b1::AdvancedCronJob { metadata: alpha.metadata, spec: copied(alpha.spec)?, status: alpha.status })
    }

    fn to_alpha(beta: b1::AdvancedCronJob) -> Result<a1::AdvancedCronJob, StepError> {
        if beta.spec.template.image_list_pull_job_template.is_some() {
            return Err(Refusal {
                field: "spec.template.imageListPullJobTemplate",
                reason: "is not supported in v1alpha1 (only v1beta1 cron jobs can create ImageListPullJobs)",
            }
            .into());
        }
        Ok(a1::AdvancedCronJob { metadata: beta.metadata, spec: copied(beta.spec)?, status: beta.status })
    }
}
