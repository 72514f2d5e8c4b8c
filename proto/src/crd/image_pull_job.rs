//! ImagePullJob (`apps.kruise.io`, namespaced; v1alpha1 and v1beta1 served, v1beta1
//! stored, both the same): pull one image on a set of nodes, through their
//! NodeImages.
//!
//! The job's settings other than the image ([`ImagePullJobTemplate`]) are shared with
//! ImageListPullJob, which creates one ImagePullJob per image from them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{
    apis::meta::v1::{LabelSelector, LabelSelectorRequirement, Time},
    util::intstr::IntOrString,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::CompletionPolicy;

use super::strings::open_enum;

/// Everything about an image pull job but the image(s): which nodes, how fast, how
/// long, and when it is complete.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullJobTemplate {
    /// Names of secrets in the job's namespace to pull with (docker config secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secrets: Option<Vec<String>>,
    /// The nodes to pull on, by name or by label; unset means every node. Mutually
    /// exclusive with `podSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<ImagePullJobNodeSelector>,
    /// Pull on the nodes of the namespace's active pods this selects. Mutually
    /// exclusive with `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub pod_selector: Option<LabelSelector>,
    /// How many nodes pull at once: an integer >= 0 (percentages are rejected); 0
    /// pauses the job. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<IntOrString>,
    /// Timeout and retries of each node's pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// When the job is complete (`type` defaults to `Always`).
    pub completion_policy: CompletionPolicy,
    /// Metadata passed to the runtime's PullImage as the sandbox config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_config: Option<SandboxConfig>,
    /// `Always` or `IfNotPresent` (default).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_pull_policy: Option<ImagePullPolicy>,
}

/// Nodes, by name or by label (names and labels are mutually exclusive).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct ImagePullJobNodeSelector {
    /// These nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Nodes with all these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Nodes meeting all these requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

impl ImagePullJobNodeSelector {
    /// The label part as a core label selector (`None` when it has neither labels nor
    /// expressions).
    pub fn label_selector(&self) -> Option<LabelSelector> {
        (self.match_labels.is_some() || self.match_expressions.is_some()).then(|| LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: self.match_expressions.clone(),
        })
    }
}

/// Timeout and retries of one node's pull.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullPolicy {
    /// Seconds a pull may take. Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// Retries before the pull counts as failed. Defaults to 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
}

/// Labels and annotations of the pod sandbox config given to the runtime's PullImage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxConfig {
    /// Sandbox labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Sandbox annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

open_enum! {
    /// When the daemon pulls an image.
    pub enum ImagePullPolicy(free) {
        /// Pull even if the image is present.
        Always = "Always",
        /// Pull only if the image is missing.
        #[default]
        IfNotPresent = "IfNotPresent",
    }
}

/// Where an ImagePullJob is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePullJobStatus {
    /// When the controller first saw the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Pulls wanted: the number of nodes selected.
    pub desired: i32,
    /// Pulls under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Pulls that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Pulls that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// A summary, e.g. why the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The nodes whose pull failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_nodes: Option<Vec<String>>,
}

/// `apps.kruise.io/v1alpha1` ImagePullJob (served; the form most manifests use).
pub mod v1alpha1 {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{ImagePullJobStatus, ImagePullJobTemplate};

    /// The image to pull, and where and how.
    #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "apps.kruise.io",
        version = "v1alpha1",
        kind = "ImagePullJob",
        plural = "imagepulljobs",
        singular = "imagepulljob",
        namespaced,
        status = "ImagePullJobStatus",
        printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.desired","description":"Nodes selected by the job."}"#,
        printcolumn = r#"{"name":"ACTIVE","type":"integer","jsonPath":".status.active","description":"Pulls under way."}"#,
        printcolumn = r#"{"name":"SUCCEED","type":"integer","jsonPath":".status.succeeded","description":"Pulls that succeeded."}"#,
        printcolumn = r#"{"name":"FAILED","type":"integer","jsonPath":".status.failed","description":"Pulls that failed."}"#,
        printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
        printcolumn = r#"{"name":"MESSAGE","type":"string","jsonPath":".status.message","description":"Why the job failed, if it did."}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct ImagePullJobSpec {
        /// The image to pull.
        pub image: String,
        /// Where and how.
        #[serde(flatten)]
        pub template: ImagePullJobTemplate,
    }
}

/// `apps.kruise.io/v1beta1` ImagePullJob (the stored version; same fields as v1alpha1).
pub mod v1beta1 {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{ImagePullJobStatus, ImagePullJobTemplate};

    /// The image to pull, and where and how.
    #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "apps.kruise.io",
        version = "v1beta1",
        kind = "ImagePullJob",
        plural = "imagepulljobs",
        singular = "imagepulljob",
        namespaced,
        status = "ImagePullJobStatus",
        printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.desired","description":"Nodes selected by the job."}"#,
        printcolumn = r#"{"name":"ACTIVE","type":"integer","jsonPath":".status.active","description":"Pulls under way."}"#,
        printcolumn = r#"{"name":"SUCCEED","type":"integer","jsonPath":".status.succeeded","description":"Pulls that succeeded."}"#,
        printcolumn = r#"{"name":"FAILED","type":"integer","jsonPath":".status.failed","description":"Pulls that failed."}"#,
        printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct ImagePullJobSpec {
        /// The image to pull.
        pub image: String,
        /// Where and how.
        #[serde(flatten)]
        pub template: ImagePullJobTemplate,
    }
}
