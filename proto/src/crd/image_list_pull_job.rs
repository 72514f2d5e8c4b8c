//! ImageListPullJob (`apps.kruise.io`, namespaced; v1alpha1 and v1beta1 served,
//! v1beta1 stored, both the same): pull several images on a set of nodes, through one
//! ImagePullJob per image made from the same [`ImagePullJobTemplate`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::image_pull_job::ImagePullJobTemplate;

/// Where an ImageListPullJob is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageListPullJobStatus {
    /// When the controller first saw the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// ImagePullJobs wanted: the number of images.
    pub desired: i32,
    /// ImagePullJobs not yet complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// ImagePullJobs complete, whether they succeeded or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<i32>,
    /// ImagePullJobs that succeeded on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// The images whose ImagePullJob failed somewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_image_statuses: Option<Vec<FailedImageStatus>>,
}

/// An image whose ImagePullJob failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedImageStatus {
    /// The ImagePullJob's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_job: Option<String>,
    /// The image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why it failed (the ImagePullJob's message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Emits a version's `ImageListPullJobSpec` (and so its `ImageListPullJob`): the
/// versions differ only in their `version`.
macro_rules! image_list_pull_job_version {
    ($version:literal) => {
        use kube::CustomResource;
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::{ImageListPullJobStatus, ImagePullJobTemplate};

        /// The images to pull, and where and how.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = $version,
            kind = "ImageListPullJob",
            plural = "imagelistpulljobs",
            singular = "imagelistpulljob",
            namespaced,
            status = "ImageListPullJobStatus",
            printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.desired","description":"Images to pull."}"#,
            printcolumn = r#"{"name":"SUCCEEDED","type":"integer","jsonPath":".status.succeeded","description":"Images pulled on every node."}"#,
            printcolumn = r#"{"name":"COMPLETED","type":"integer","jsonPath":".status.completed","description":"Images whose ImagePullJob is complete."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
        )]
        #[serde(rename_all = "camelCase")]
        pub struct ImageListPullJobSpec {
            /// The images to pull: at most 255, no duplicates.
            pub images: Vec<String>,
            /// Where and how, for each image's ImagePullJob.
            #[serde(flatten)]
            pub template: ImagePullJobTemplate,
        }
    };
}

/// `apps.kruise.io/v1alpha1` ImageListPullJob (served; the form most manifests use).
pub mod v1alpha1 {
    image_list_pull_job_version!("v1alpha1");
}

/// `apps.kruise.io/v1beta1` ImageListPullJob (the stored version; same fields as
/// v1alpha1).
pub mod v1beta1 {
    image_list_pull_job_version!("v1beta1");
}
