//! AdvancedCronJob (`apps.kruise.io`, namespaced, short name `acj`): create a Job,
//! a BroadcastJob or (v1beta1 only) an ImageListPullJob on a cron schedule.
//!
//! v1.9.0 serves `v1alpha1` and `v1beta1` and stores `v1beta1`. The versions share
//! every field but the template: v1beta1's adds `imageListPullJobTemplate`
//! ([`v1beta1::CronJobTemplate`]).

use k8s_openapi::{
    api::{batch::v1::JobTemplateSpec, core::v1::ObjectReference},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::strings::open_enum;

/// Emits one version's `AdvancedCronJobSpec` (and so its `AdvancedCronJob`), with
/// that version's template type.
macro_rules! advanced_cron_job_spec {
    ($version:tt, $template:ty) => {
        /// The schedule, and what to create on it.
        #[derive(kube::CustomResource, Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = $version,
            kind = "AdvancedCronJob",
            plural = "advancedcronjobs",
            singular = "advancedcronjob",
            shortname = "acj",
            namespaced,
            status = "AdvancedCronJobStatus",
            printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule","description":"The schedule of advanced cron job."}"#,
            printcolumn = r#"{"name":"Type","type":"string","jsonPath":".status.type","description":"Type of cron job."}"#,
            printcolumn = r#"{"name":"LastScheduleTime","type":"date","jsonPath":".status.lastScheduleTime","description":"The last time at which job was scheduled."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp","description":"CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC."}"#
        )]
        #[serde(rename_all = "camelCase")]
        pub struct AdvancedCronJobSpec {
            /// When to run: a five-field cron expression.
            pub schedule: String,
            /// The IANA time zone the schedule is read in; unset means the
            /// controller's local zone.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub time_zone: Option<String>,
            /// Seconds after a scheduled time within which a missed run may still
            /// start; later, it is skipped.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub starting_deadline_seconds: Option<i64>,
            /// What to do when a run is due while an earlier one is active;
            /// defaults to `Allow` (to `Replace` with an ImageListPullJob template).
            #[serde(default, deserialize_with = "crate::crd::strings::empty_as_none", skip_serializing_if = "Option::is_none")]
            pub concurrency_policy: Option<ConcurrencyPolicy>,
            /// Stop scheduling (default false).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub paused: Option<bool>,
            /// Finished successful children to keep (default 3).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub successful_jobs_history_limit: Option<i32>,
            /// Finished failed children to keep (default 1).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub failed_jobs_history_limit: Option<i32>,
            /// What each run creates: exactly one of the templates.
            pub template: $template,
        }
    };
}

/// `apps.kruise.io/v1alpha1` (served; the version most manifests use).
pub mod v1alpha1 {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{AdvancedCronJobStatus, ConcurrencyPolicy, JobTemplateSpec, ObjectTemplate};
    use crate::crd::broadcast_job::v1alpha1::BroadcastJobSpec;

    advanced_cron_job_spec!("v1alpha1", CronJobTemplate);

    /// What each run creates: a Job or a BroadcastJob.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct CronJobTemplate {
        /// A `batch/v1` Job.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<crate::crd::core_schema::CoreSchema<JobTemplateSpec>>")]
        pub job_template: Option<JobTemplateSpec>,
        /// A BroadcastJob.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub broadcast_job_template: Option<ObjectTemplate<BroadcastJobSpec>>,
    }
}

/// `apps.kruise.io/v1beta1` (served and stored).
pub mod v1beta1 {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{AdvancedCronJobStatus, ConcurrencyPolicy, JobTemplateSpec, ObjectTemplate};
    use crate::crd::broadcast_job::v1beta1::BroadcastJobSpec;
    use crate::crd::image_list_pull_job::v1beta1::ImageListPullJobSpec;

    advanced_cron_job_spec!("v1beta1", CronJobTemplate);

    /// What each run creates: a Job, a BroadcastJob or an ImageListPullJob.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct CronJobTemplate {
        /// A `batch/v1` Job.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<crate::crd::core_schema::CoreSchema<JobTemplateSpec>>")]
        pub job_template: Option<JobTemplateSpec>,
        /// A BroadcastJob.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub broadcast_job_template: Option<ObjectTemplate<BroadcastJobSpec>>,
        /// An ImageListPullJob (then `concurrencyPolicy` must be `Replace` or
        /// `Forbid`, and its completion policy `Always` without a TTL). Such an
        /// object cannot be converted to v1alpha1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub image_list_pull_job_template: Option<ObjectTemplate<ImageListPullJobSpec>>,
    }
}

/// The metadata and spec of an object each run creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectTemplate<S> {
    /// Labels and annotations copied to the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::crd::core_schema::CoreSchema<ObjectMeta>>")]
    pub metadata: Option<ObjectMeta>,
    /// The object's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<S>,
}

open_enum! {
    /// What to do when a run is due while an earlier one is still active.
    pub enum ConcurrencyPolicy(closed) {
        /// Run alongside it.
        #[default]
        Allow = "Allow",
        /// Skip the run.
        Forbid = "Forbid",
        /// Delete the active children, then run.
        Replace = "Replace",
    }
}

open_enum! {
    /// The kind of children an AdvancedCronJob creates.
    pub enum TemplateKind(free) {
        /// `batch/v1` Jobs.
        #[default]
        Job = "Job",
        /// BroadcastJobs.
        BroadcastJob = "BroadcastJob",
        /// ImageListPullJobs (v1beta1 only).
        ImageListPullJob = "ImageListPullJob",
    }
}

/// What the cron job has running, and when it last ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedCronJobStatus {
    /// The kind of its template.
    // a free string in the CRD, as in OpenKruise's: status is written by the
    // controllers only, and an enum there would refuse a newer controller's value
    #[schemars(with = "Option<String>")]
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<TemplateKind>,
    /// Its children that are still active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Vec<ObjectReference>>,
    /// When a run was last started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::v1beta1::AdvancedCronJob;

    /// The templates the example (a BroadcastJob) does not use survive a trip too.
    #[test]
    fn job_and_image_list_pull_job_templates_round_trip() {
        for text in [
            r#"
apiVersion: apps.kruise.io/v1beta1
kind: AdvancedCronJob
metadata: {name: prewarm, namespace: ops}
spec:
  schedule: "0 * * * *"
  concurrencyPolicy: Replace
  template:
    imageListPullJobTemplate:
      metadata: {labels: {app: prewarm}}
      spec:
        images: [registry.example.com/shop/web:1.8, registry.example.com/shop/api:3.2]
        selector:
          names: [node-a, node-b]
          matchExpressions: [{key: pool, operator: In, values: [web]}]
        parallelism: 2
        pullPolicy: {timeoutSeconds: 300, backoffLimit: 2}
        pullSecrets: [registry-creds]
        sandboxConfig: {labels: {purpose: prewarm}, annotations: {note: hourly}}
        imagePullPolicy: Always
        completionPolicy: {type: Always, activeDeadlineSeconds: 1200}
"#,
            r#"
apiVersion: apps.kruise.io/v1beta1
kind: AdvancedCronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "*/15 * * * *"
  template:
    jobTemplate:
      metadata: {labels: {app: report}}
      spec:
        backoffLimit: 2
        template:
          spec:
            restartPolicy: OnFailure
            containers:
            - {name: report, image: "registry.example.com/shop/report:0.9", args: [--since=15m]}
"#,
        ] {
            let original: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
            let acj: AdvancedCronJob = serde_yaml::from_value(original.clone()).unwrap();
            assert_eq!(serde_yaml::to_value(&acj).unwrap(), original);
        }
    }
}
