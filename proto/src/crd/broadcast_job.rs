//! BroadcastJob (`apps.kruise.io`, namespaced, short name `bcj`): run a pod to
//! completion on every eligible node.
//!
//! v1.9.0 serves `v1alpha1` and `v1beta1` with the same fields and stores
//! `v1beta1`; [`v1alpha1::BroadcastJob`] and [`v1beta1::BroadcastJob`] differ only
//! in their version.

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::CompletionPolicy;

pub use super::common::Schemaless;
use super::strings::open_enum;

/// Emits one version's `BroadcastJobSpec` (and so its `BroadcastJob`): the
/// versions share every field.
macro_rules! broadcast_job_spec {
    ($version:tt) => {
        /// The pod to run on every eligible node, and when the job is done.
        #[derive(kube::CustomResource, Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = $version,
            kind = "BroadcastJob",
            plural = "broadcastjobs",
            singular = "broadcastjob",
            shortname = "bcj",
            namespaced,
            status = "BroadcastJobStatus",
            printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desired","description":"The desired number of pods. This is typically equal to the number of nodes satisfied to run pods."}"#,
            printcolumn = r#"{"name":"Active","type":"integer","jsonPath":".status.active","description":"The number of actively running pods."}"#,
            printcolumn = r#"{"name":"Succeeded","type":"integer","jsonPath":".status.succeeded","description":"The number of pods which reached phase Succeeded."}"#,
            printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.failed","description":"The number of pods which reached phase Failed."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp","description":"CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC."}"#
        )]
        #[serde(rename_all = "camelCase")]
        pub struct BroadcastJobSpec {
            /// The most pods running at once: an int, or a percentage of the desired
            /// nodes rounded up; unset means no limit (2147483647).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub parallelism: Option<IntOrString>,
            /// The pod run on each node (restartPolicy `Never` or `OnFailure`).
            #[schemars(with = "crate::crd::core_schema::CoreSchema<PodTemplateSpec>")]
            pub template: PodTemplateSpec,
            /// When the job is complete (always serialized; type defaults to `Always`).
            #[serde(default)]
            pub completion_policy: CompletionPolicy,
            /// Stop creating pods.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub paused: Option<bool>,
            /// What a failed pod does to the job.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub failure_policy: Option<FailurePolicy>,
        }
    };
}

/// `apps.kruise.io/v1alpha1` (served; the version most manifests use).
pub mod v1alpha1 {
    use super::{BroadcastJobStatus, CompletionPolicy, FailurePolicy, IntOrString, PodTemplateSpec};

    broadcast_job_spec!("v1alpha1");
}

/// `apps.kruise.io/v1beta1` (served and stored).
pub mod v1beta1 {
    use super::{BroadcastJobStatus, CompletionPolicy, FailurePolicy, IntOrString, PodTemplateSpec};

    broadcast_job_spec!("v1beta1");
}

/// What a failed pod does to the job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailurePolicy {
    /// `FailFast` (default), `Continue` or `Pause`.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<FailurePolicyType>,
    /// Restarts of a pod's containers (under `OnFailure`) after which the pod counts
    /// as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_limit: Option<i32>,
}

/// Whether a pod not yet Succeeded or Failed has failed for its job anyway
/// (OpenKruise's `isPodFailed`): its `restartPolicy` is `OnFailure` (`on_failure`)
/// and its containers restarted more than `restart_limit` times in all. The
/// controller counts such a pod as failed; the agent leaves it be, as a finished one.
pub fn restarts_exceeded(on_failure: bool, restarts: i32, restart_limit: i32) -> bool {
    on_failure && restarts > restart_limit
}

open_enum! {
    /// See [`FailurePolicy`].
    pub enum FailurePolicyType(free) {
        /// Ignore the failed pod; the job goes on.
        Continue = "Continue",
        /// The job fails.
        #[default]
        FailFast = "FailFast",
        /// The job is paused (`spec.paused` set).
        Pause = "Pause",
    }
}

/// Where the job is. The counts are always serialized.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastJobStatus {
    /// Complete or Failed, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<JobCondition>>,
    /// When the controller first saw the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Pods running now.
    #[serde(default)]
    pub active: i32,
    /// Pods that succeeded.
    #[serde(default)]
    pub succeeded: i32,
    /// Pods that failed.
    #[serde(default)]
    pub failed: i32,
    /// Pods wanted: the number of eligible nodes.
    #[serde(default)]
    pub desired: i32,
    /// running, paused, completed or failed.
    // a free string in the CRD, as in OpenKruise's: status is written by the
    // controllers only, and an enum there would refuse a newer controller's value
    #[schemars(with = "Option<String>")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BroadcastJobPhase>,
}

open_enum! {
    /// The job's phase.
    pub enum BroadcastJobPhase(free) {
        /// Pods are being run.
        #[default]
        Running = "running",
        /// Paused by `spec.paused`.
        Paused = "paused",
        /// Every desired node has a finished pod.
        Completed = "completed",
        /// Failed (a failed pod under FailFast, or past the deadline).
        Failed = "failed",
    }
}

/// A condition of a finished job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    /// Complete or Failed.
    // a free string in the CRD, as in OpenKruise's: status is written by the
    // controllers only, and an enum there would refuse a newer controller's value
    #[schemars(with = "String")]
    #[serde(rename = "type")]
    pub type_: JobConditionType,
    /// True, False or Unknown.
    pub status: String,
    /// When the condition was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why, in one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

open_enum! {
    /// See [`JobCondition`].
    pub enum JobConditionType(free) {
        /// Every desired node has a finished pod.
        #[default]
        Complete = "Complete",
        /// The job failed.
        Failed = "Failed",
    }
}
