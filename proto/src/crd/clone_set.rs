//! CloneSet (`apps.kruise.io/v1alpha1`, namespaced, short name `clone`): a set of
//! interchangeable pods with in-place update, partitions, surge, selective scale-in
//! and lifecycle hooks. OpenKruise v1.9.0 serves v1alpha1 only.

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, Time},
        util::intstr::IntOrString,
    },
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    common::{InPlaceUpdateStrategy, Lifecycle, UpdatePriorityStrategy, UpdateScatterTerm},
    stateful_set::PersistentVolumeClaimTemplate,
};

use super::strings::open_enum;

/// The pods a CloneSet keeps, and how it scales and updates them.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "CloneSet",
    plural = "clonesets",
    singular = "cloneset",
    shortname = "clone",
    namespaced,
    status = "CloneSetStatus",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.labelSelector"}"#,
    printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".spec.replicas","description":"Pods wanted."}"#,
    printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedReplicas","description":"Pods on the update revision."}"#,
    printcolumn = r#"{"name":"UPDATED_READY","type":"integer","jsonPath":".status.updatedReadyReplicas","description":"Pods on the update revision and ready."}"#,
    printcolumn = r#"{"name":"UPDATED_AVAILABLE","type":"integer","jsonPath":".status.updatedAvailableReplicas","description":"Pods on the update revision and available."}"#,
    printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyReplicas","description":"Pods ready."}"#,
    printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.replicas","description":"Pods there are."}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"CONTAINERS","type":"string","jsonPath":".spec.template.spec.containers[*].name","description":"The pods' containers.","priority":1}"#,
    printcolumn = r#"{"name":"IMAGES","type":"string","jsonPath":".spec.template.spec.containers[*].image","description":"The pods' images.","priority":1}"#,
    printcolumn = r#"{"name":"SELECTOR","type":"string","jsonPath":".status.labelSelector","description":"The pods' selector.","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetSpec {
    /// Pods wanted (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The pods the CloneSet owns; must match the template's labels.
    pub selector: LabelSelector,
    /// The pods to create.
    #[schemars(with = "crate::crd::core_schema::CoreSchema<PodTemplateSpec>")]
    pub template: PodTemplateSpec,
    /// Claims each pod gets one of (the claim is deleted with its pod, unless reused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "Option<Vec<crate::crd::core_schema::CoreSchema<k8s_openapi::api::core::v1::PersistentVolumeClaim>>>"
    )]
    pub volume_claim_templates: Option<Vec<PersistentVolumeClaimTemplate>>,
    /// How to scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_strategy: Option<CloneSetScaleStrategy>,
    /// How to update pods when the template changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<CloneSetUpdateStrategy>,
    /// Revisions kept (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Seconds a new pod must be ready, no container crashing, to count as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Hooks holding pods before deletion, around in-place updates and before they count as normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Seconds an update may make no progress before Progressing turns False;
    /// unset or 2147483647 turns the check off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
}

/// How to scale.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetScaleStrategy {
    /// Pods to delete, named; the replicas are not lowered for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_to_delete: Option<Vec<String>>,
    /// Most pods unavailable while scaling up (int, or percent of replicas rounded up);
    /// unset means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Do not reuse the claims of a deleted pod for a new one (default false).
    #[serde(default, rename = "disablePVCReuse", skip_serializing_if = "Option::is_none")]
    pub disable_pvc_reuse: Option<bool>,
}

/// How to update pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetUpdateStrategy {
    /// ReCreate (default), InPlaceIfPossible or InPlaceOnly.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<CloneSetUpdateStrategyType>,
    /// Pods kept on the old revision (int, or percent of replicas rounded up; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<IntOrString>,
    /// Most pods unavailable during the update (default 20%; rounded up when
    /// maxSurge is 0, down otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Most pods above replicas during the update (rounded up; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Stop updating (scaling goes on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The order of updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_strategy: Option<UpdatePriorityStrategy>,
    /// Labels whose pods are spread evenly over the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scatter_strategy: Option<Vec<UpdateScatterTerm>>,
    /// In-place update settings (defaults to `{}` for the InPlace types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update_strategy: Option<InPlaceUpdateStrategy>,
}

open_enum! {
    /// How a pod moves to a new revision.
    pub enum CloneSetUpdateStrategyType(free) {
        /// Delete the pod and create a new one.
        #[default]
        ReCreate = "ReCreate",
        /// Update in place when only images (or labels and annotations) change, else recreate.
        InPlaceIfPossible = "InPlaceIfPossible",
        /// Update in place only; the template may change only images.
        InPlaceOnly = "InPlaceOnly",
        /// Update only pods that are deleted by hand (v1beta1's; v1alpha1's webhook rejects it).
        OnDelete = "OnDelete",
    }
}

/// What the CloneSet observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetStatus {
    /// The generation this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods there are.
    pub replicas: i32,
    /// Pods ready.
    pub ready_replicas: i32,
    /// Pods available (ready for minReadySeconds).
    pub available_replicas: i32,
    /// Pods on the update revision.
    pub updated_replicas: i32,
    /// Pods on the update revision and ready.
    pub updated_ready_replicas: i32,
    /// Pods on the update revision and available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_available_replicas: Option<i32>,
    /// Pods the update should reach: replicas minus partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_updated_replicas: Option<i32>,
    /// The revision pods are updated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// The revision of the pods not updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Bumped on a revision-name hash collision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// The selector as a string, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// FailedScale, FailedUpdate and Progressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<CloneSetCondition>>,
}

/// One condition of a CloneSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetCondition {
    /// FailedScale, FailedUpdate or Progressing.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// When it was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why, in one word (for Progressing: CloneSetAvailable, CloneSetPaused,
    /// ProgressPartitionAvailable, CloneSetUpdated or ProgressDeadlineExceeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
