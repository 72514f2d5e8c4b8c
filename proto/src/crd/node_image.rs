//! NodeImage (`apps.kruise.io`, cluster-scoped, named after its node; v1alpha1 and
//! v1beta1 served, v1beta1 stored): the images a node's daemon is to pull, and how
//! the pulls went. ImagePullJobs write the spec; the daemon writes the status. Its
//! labels mirror the node's.
//!
//! The versions differ only in the pull secrets of an image: v1beta1 adds `mode`.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ObjectReference, apimachinery::pkg::apis::meta::v1::Time};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use super::strings::open_enum;

pub use super::image_pull_job::{ImagePullPolicy, SandboxConfig};

/// One tag (or digest) of an image to pull.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagSpec {
    /// The tag, or the digest if the image is pulled by digest.
    pub tag: String,
    /// When the tag was (last) asked for; set by the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Timeout, retries, deadline and lifetime of the pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<ImageTagPullPolicy>,
    /// The objects (ImagePullJobs) that want this tag; a tag without owners is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = atomic_items)]
    pub owner_references: Option<Vec<ObjectReference>>,
    /// Bumped each time the tag is asked for again, so that it is pulled again; the
    /// status says which version was pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// `Always` or `IfNotPresent` (default).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_pull_policy: Option<ImagePullPolicy>,
}

/// Marks the items of an array schema `x-kubernetes-map-type: atomic`, as OpenKruise
/// has object references.
fn atomic_items(schema: &mut Schema) {
    if let Some(items) = schema.get_mut("items").and_then(|i| i.as_object_mut()) {
        items.insert("x-kubernetes-map-type".into(), "atomic".into());
    }
}

/// How one tag is pulled, and how long it stays on the node's list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagPullPolicy {
    /// Seconds a pull may take. Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// Retries before the pull counts as failed. Defaults to 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// Seconds after the pull finished after which the tag is removed from the list;
    /// unset keeps it, 0 removes it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Seconds after the pull started after which it is stopped; unset never stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
}

/// How the pulls on the node went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeImageStatus {
    /// Pulls wanted: usually the number of images in the spec.
    pub desired: i32,
    /// Pulls that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Pulls that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Pulls under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulling: Option<i32>,
    /// Pulls not started yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<i32>,
    /// Per image (keyed like the spec), the pulls of its tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_statuses: Option<BTreeMap<String, ImageStatus>>,
    /// How the node's first round of pulls ended (for systems that wait for a new
    /// node's images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sync_status: Option<SyncStatus>,
}

/// The pulls of one image's tags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    /// One per tag.
    pub tags: Vec<ImageTagStatus>,
}

/// The pull of one tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagStatus {
    /// The tag (or digest).
    pub tag: String,
    /// Waiting, Pulling, Succeeded or Failed.
    // a free string in the CRD, as in OpenKruise's: status is written by the
    // controllers only, and an enum there would refuse a newer controller's value
    #[schemars(with = "String")]
    pub phase: ImagePullPhase,
    /// Percent done, 0 to 100; it may go back when a pull is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<i32>,
    /// When the daemon started the pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the pull finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The spec's tag version this pull was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The pulled image's id.
    #[serde(default, rename = "imageID", skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Why the pull is where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

open_enum! {
    /// Where a pull is.
    pub enum ImagePullPhase(free) {
        /// Not started.
        #[default]
        Waiting = "Waiting",
        /// Started, not finished.
        Pulling = "Pulling",
        /// Pulled.
        Succeeded = "Succeeded",
        /// Could not be pulled.
        Failed = "Failed",
    }
}

/// How a round of pulls on the node ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_at: Option<Time>,
    /// Succeeded or Failed.
    // a free string in the CRD, as in OpenKruise's: status is written by the
    // controllers only, and an enum there would refuse a newer controller's value
    #[schemars(with = "Option<String>")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SyncStatusPhase>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

open_enum! {
    /// See [`SyncStatus`].
    pub enum SyncStatusPhase(free) {
        /// Every pull succeeded.
        #[default]
        Succeeded = "Succeeded",
        /// Some pull failed.
        Failed = "Failed",
    }
}

/// Emits a version's `ImageSpec` and `NodeImageSpec` (and so its `NodeImage`) around
/// the version's own `ReferenceObject`.
macro_rules! node_image_version {
    ($version:literal) => {
        use std::collections::BTreeMap;

        use kube::CustomResource;
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::{ImageTagSpec, NodeImageStatus, SandboxConfig};

        /// The images the node is to pull.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = $version,
            kind = "NodeImage",
            plural = "nodeimages",
            singular = "nodeimage",
            status = "NodeImageStatus",
            printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".status.desired","description":"Images on this node's list."}"#,
            printcolumn = r#"{"name":"PULLING","type":"integer","jsonPath":".status.pulling","description":"Pulls under way."}"#,
            printcolumn = r#"{"name":"SUCCEED","type":"integer","jsonPath":".status.succeeded","description":"Pulls that succeeded."}"#,
            printcolumn = r#"{"name":"FAILED","type":"integer","jsonPath":".status.failed","description":"Pulls that failed."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
        )]
        #[serde(rename_all = "camelCase")]
        pub struct NodeImageSpec {
            /// Keyed by the image's name without tag or digest (e.g.
            /// `docker.io/library/nginx`); at most 256.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub images: Option<BTreeMap<String, ImageSpec>>,
        }

        /// One image: its tags, and the secrets and sandbox config to pull them with.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct ImageSpec {
            /// Secrets to pull with (copied into the daemon's namespace).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub pull_secrets: Option<Vec<ReferenceObject>>,
            /// The tags to pull (unique).
            pub tags: Vec<ImageTagSpec>,
            /// Metadata passed to the runtime's PullImage as the sandbox config.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub sandbox_config: Option<SandboxConfig>,
        }
    };
}

/// `apps.kruise.io/v1alpha1` NodeImage (served; the form most manifests use).
pub mod v1alpha1 {
    node_image_version!("v1alpha1");

    /// A secret, by namespace and name.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ReferenceObject {
        /// The secret's namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        /// The secret's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
    }
}

/// `apps.kruise.io/v1beta1` NodeImage (the stored version): v1alpha1 plus the pull
/// secrets' `mode`.
pub mod v1beta1 {
    use crate::crd::strings::open_enum;

    node_image_version!("v1beta1");

    /// A secret, by namespace and name, and how it was synchronised.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ReferenceObject {
        /// The secret's namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        /// The secret's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// `batch`: the secret is synchronised once for every job that uses it and is
        /// cleaned up with the image; unset: the old per-job copy.
        #[serde(
            default,
            deserialize_with = "crate::crd::strings::empty_as_none",
            skip_serializing_if = "Option::is_none"
        )]
        pub mode: Option<ReferenceObjectMode>,
    }

    open_enum! {
        /// See [`ReferenceObject::mode`].
        pub enum ReferenceObjectMode(free) {
                /// Synchronised once, removed with the image.
                #[default]
            Batch = "batch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::v1beta1;

    #[test]
    fn v1beta1_pull_secrets_carry_the_mode() {
        let spec: v1beta1::NodeImageSpec = serde_json::from_value(serde_json::json!({
            "images": {"docker.io/library/nginx": {
                "pullSecrets": [{"namespace": "shop", "name": "reg", "mode": "batch"}],
                "tags": [{"tag": "1.27"}]
            }}
        }))
        .unwrap();
        let image = &spec.images.as_ref().unwrap()["docker.io/library/nginx"];
        let secret = &image.pull_secrets.as_ref().unwrap()[0];
        assert_eq!(secret.mode, Some(v1beta1::ReferenceObjectMode::Batch));
        assert_eq!(serde_json::to_value(secret).unwrap()["mode"], "batch");
    }
}
