//! Advanced StatefulSet (`apps.kruise.io`, kind `StatefulSet`, namespaced, short names
//! `sts` and `asts`): a StatefulSet with in-place update, partitioned and unordered
//! rolling update, reserved ordinals and lifecycle hooks. Served as `v1alpha1` and
//! `v1beta1` (stored); `v1alpha1` lacks some of `v1beta1`'s fields.

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSetCondition, StatefulSetOrdinals},
        core::v1::{
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PodTemplateSpec,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{InPlaceUpdateStrategy, UpdatePriorityStrategy};

use super::strings::open_enum;

/// Emits a version's spec struct: the fields both versions share, then the given ones.
macro_rules! stateful_set_spec {
    ($(#[$attr:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$attr])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The desired number of pods (default 1).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub replicas: Option<i32>,
            /// The pods it owns; must select the template's labels.
            pub selector: LabelSelector,
            /// The pod every ordinal is stamped from.
            #[schemars(with = "crate::crd::core_schema::CoreSchema<PodTemplateSpec>")]
            pub template: PodTemplateSpec,
            /// Claims each pod gets its own copy of, by name.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(with = "Option<Vec<crate::crd::core_schema::CoreSchema<k8s_openapi::api::core::v1::PersistentVolumeClaim>>>")]
            pub volume_claim_templates: Option<Vec<PersistentVolumeClaimTemplate>>,
            /// The headless service that governs the pods' network identity.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub service_name: Option<String>,
            /// `OrderedReady` (default) or `Parallel`.
            #[serde(default, deserialize_with = "crate::crd::strings::empty_as_none", skip_serializing_if = "Option::is_none")]
            pub pod_management_policy: Option<PodManagementPolicy>,
            /// How pods move to a new revision.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub update_strategy: Option<StatefulSetUpdateStrategy>,
            /// How many old revisions to keep (default 10).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub revision_history_limit: Option<i32>,
            $($extra)*
        }
    };
}

/// Emits a version's status struct: the fields both versions share, then the given ones.
macro_rules! stateful_set_status {
    ($(#[$attr:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$attr])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The generation last acted on.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub observed_generation: Option<i64>,
            /// Pods that exist.
            pub replicas: i32,
            /// Pods that are ready.
            pub ready_replicas: i32,
            /// Pods that have been ready for minReadySeconds.
            pub available_replicas: i32,
            /// Pods at the current revision.
            pub current_replicas: i32,
            /// Pods at the update revision.
            pub updated_replicas: i32,
            /// The revision of the pods before the update.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub current_revision: Option<String>,
            /// The revision pods are moving to.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub update_revision: Option<String>,
            /// Bumped when a revision name collides, to make a new one.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub collision_count: Option<i32>,
            /// The apps/v1 conditions, plus `FailedCreatePod` and `FailedUpdatePod`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub conditions: Option<Vec<StatefulSetCondition>>,
            /// The selector as a string, for the scale subresource.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub label_selector: Option<String>,
            $($extra)*
        }
    };
}

/// The served `v1alpha1`.
pub mod v1alpha1 {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{
        LabelSelector, PersistentVolumeClaimTemplate, PodManagementPolicy, PodTemplateSpec,
        StatefulSetCondition, StatefulSetUpdateStrategy,
    };

    stateful_set_spec! {
        /// The desired set of ordered pods.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = "v1alpha1",
            kind = "StatefulSet",
            plural = "statefulsets",
            singular = "statefulset",
            shortname = "sts",
            shortname = "asts",
            namespaced,
            status = "StatefulSetStatus",
            scale(
                spec_replicas_path = ".spec.replicas",
                status_replicas_path = ".status.replicas",
                label_selector_path = ".status.labelSelector"
            ),
            printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".spec.replicas","description":"The desired number of pods."}"#,
            printcolumn = r#"{"name":"CURRENT","type":"integer","jsonPath":".status.replicas","description":"The number of currently all pods."}"#,
            printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedReplicas","description":"The number of pods updated."}"#,
            printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyReplicas","description":"The number of pods ready."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
            printcolumn = r#"{"name":"CONTAINERS","type":"string","jsonPath":".spec.template.spec.containers[*].name","priority":1,"description":"The containers of currently advanced statefulset."}"#,
            printcolumn = r#"{"name":"IMAGES","type":"string","jsonPath":".spec.template.spec.containers[*].image","priority":1,"description":"The images of currently advanced statefulset."}"#
        )]
        pub struct StatefulSetSpec {}
    }

    stateful_set_status! {
        /// Where the pods are.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        pub struct StatefulSetStatus {}
    }
}

/// The served and stored `v1beta1`.
pub mod v1beta1 {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{
        IntOrString, LabelSelector, PersistentVolumeClaimRetentionPolicy, PersistentVolumeClaimTemplate,
        PodManagementPolicy, PodTemplateSpec, StatefulSetCondition, StatefulSetOrdinals,
        StatefulSetScaleStrategy, StatefulSetUpdateStrategy, VolumeClaimStatus, VolumeClaimUpdateStrategy,
    };
    use crate::crd::common::Lifecycle;

    stateful_set_spec! {
        /// The desired set of ordered pods.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = "v1beta1",
            kind = "StatefulSet",
            plural = "statefulsets",
            singular = "statefulset",
            shortname = "sts",
            shortname = "asts",
            namespaced,
            status = "StatefulSetStatus",
            scale(
                spec_replicas_path = ".spec.replicas",
                status_replicas_path = ".status.replicas",
                label_selector_path = ".status.labelSelector"
            ),
            printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".spec.replicas","description":"The desired number of pods."}"#,
            printcolumn = r#"{"name":"CURRENT","type":"integer","jsonPath":".status.replicas","description":"The number of currently all pods."}"#,
            printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedReplicas","description":"The number of pods updated."}"#,
            printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyReplicas","description":"The number of pods ready."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
            printcolumn = r#"{"name":"CONTAINERS","type":"string","jsonPath":".spec.template.spec.containers[*].name","priority":1,"description":"The containers of currently advanced statefulset."}"#,
            printcolumn = r#"{"name":"IMAGES","type":"string","jsonPath":".spec.template.spec.containers[*].image","priority":1,"description":"The images of currently advanced statefulset."}"#
        )]
        pub struct StatefulSetSpec {
            /// When claims of existing pods follow a changed volumeClaimTemplates.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub volume_claim_update_strategy: Option<VolumeClaimUpdateStrategy>,
            /// Ordinals to skip: ints, or `"a-b"` ranges (inclusive).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub reserve_ordinals: Option<Vec<IntOrString>>,
            /// Hooks that hold pods before deletion, around in-place update and before normal.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub lifecycle: Option<Lifecycle>,
            /// How pods are created when scaling up.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scale_strategy: Option<StatefulSetScaleStrategy>,
            /// What happens to claims when the set is deleted or scaled down.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub persistent_volume_claim_retention_policy: Option<PersistentVolumeClaimRetentionPolicy>,
            /// The first ordinal (default 0).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ordinals: Option<StatefulSetOrdinals>,
        }
    }

    stateful_set_status! {
        /// Where the pods are.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        pub struct StatefulSetStatus {
            /// Pods at the update revision that are ready.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub updated_ready_replicas: Option<i32>,
            /// Pods at the update revision that are available.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub updated_available_replicas: Option<i32>,
            /// Per volume claim template, how many pods have claims matching it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub volume_claims: Option<Vec<VolumeClaimStatus>>,
        }
    }
}

open_enum! {
    /// Whether pods are created and deleted one at a time: `OrderedReady` (default) or `Parallel`.
    pub enum PodManagementPolicy(free) {
        /// One at a time, in ordinal order, each waiting for the previous to be ready.
        #[default]
        OrderedReady = "OrderedReady",
        /// All at once.
        Parallel = "Parallel",
    }
}

/// How pods move to a new revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetUpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete`.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<StatefulSetUpdateStrategyType>,
    /// The rolling update's settings (defaulted to `{}` under `RollingUpdate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateStatefulSetStrategy>,
}

open_enum! {
    /// How pods move to a new revision: `RollingUpdate` (default) or `OnDelete`.
    pub enum StatefulSetUpdateStrategyType(free) {
        /// The controller replaces pods, highest ordinal first.
        #[default]
        RollingUpdate = "RollingUpdate",
        /// Pods are replaced only when deleted by someone else.
        OnDelete = "OnDelete",
    }
}

/// A rolling update's settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateStatefulSetStrategy {
    /// Pods with an ordinal below this stay at the old revision (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// How many pods may be unavailable during the update (rounded down; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// `ReCreate` (default), `InPlaceIfPossible` or `InPlaceOnly`.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_update_policy: Option<PodUpdatePolicyType>,
    /// Stop updating pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Update in priority order instead of by ordinal (Parallel only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unordered_update: Option<UnorderedUpdateStrategy>,
    /// In-place update settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update_strategy: Option<InPlaceUpdateStrategy>,
    /// Seconds an updated pod must be ready before the next one is updated (0 to 300, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
}

open_enum! {
    /// How a pod is moved to a new revision: `ReCreate` (default), `InPlaceIfPossible` or `InPlaceOnly`.
    pub enum PodUpdatePolicyType(free) {
        /// Delete it and create a new one.
        #[default]
        ReCreate = "ReCreate",
        /// Update it in place when only images (or metadata) changed, else recreate it.
        InPlaceIfPossible = "InPlaceIfPossible",
        /// Update it in place; other changes are rejected.
        InPlaceOnly = "InPlaceOnly",
    }
}

/// Update order when it is not by ordinal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnorderedUpdateStrategy {
    /// Which pods go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_strategy: Option<UpdatePriorityStrategy>,
}

/// When existing pods' claims follow a changed volumeClaimTemplates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeClaimUpdateStrategy {
    /// `OnPodRollingUpdate` or `OnDelete` (default when the AutoResizePVC gate is on).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<VolumeClaimUpdateStrategyType>,
}

open_enum! {
    /// When claims follow a changed volumeClaimTemplates: `OnPodRollingUpdate` or `OnDelete`.
    pub enum VolumeClaimUpdateStrategyType(free) {
        /// Claims are updated as their pod is rolled.
        OnPodRollingUpdate = "OnPodRollingUpdate",
        /// Claims are updated only when deleted by someone else.
        #[default]
        OnDelete = "OnDelete",
    }
}

/// How pods are created when scaling up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetScaleStrategy {
    /// How many pods may be unavailable while scaling up (Parallel only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// What happens to the claims of the set's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimRetentionPolicy {
    /// When the set is deleted (default `Retain`).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub when_deleted: Option<PersistentVolumeClaimRetentionPolicyType>,
    /// When the set is scaled down (default `Retain`).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub when_scaled: Option<PersistentVolumeClaimRetentionPolicyType>,
}

open_enum! {
    /// What happens to a claim: `Retain` (default) or `Delete`.
    pub enum PersistentVolumeClaimRetentionPolicyType(free) {
        /// Keep the claims.
        #[default]
        Retain = "Retain",
        /// Delete the claims.
        Delete = "Delete",
    }
}

/// How many pods have claims compatible with one volume claim template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeClaimStatus {
    /// The template's name.
    pub volume_claim_name: String,
    /// Pods whose claim matches the template.
    pub compatible_replicas: i32,
    /// Of those, the ready ones.
    pub compatible_ready_replicas: i32,
}

/// A volume claim template: a PersistentVolumeClaim as Go writes one inside a
/// workload, with `apiVersion` and `kind` only when the manifest gave them
/// (k8s-openapi's `PersistentVolumeClaim` always writes them). Described in the CRD
/// as a PersistentVolumeClaim ([`CoreSchema`](crate::crd::core_schema::CoreSchema)).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimTemplate {
    /// `v1` when the manifest names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `PersistentVolumeClaim` when the manifest names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The claim's metadata; its name is what volume mounts refer to.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The claim's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PersistentVolumeClaimSpec>,
    /// A claim's status (meaningless in a template, kept for fidelity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PersistentVolumeClaimStatus>,
}

impl From<PersistentVolumeClaimTemplate> for PersistentVolumeClaim {
    fn from(t: PersistentVolumeClaimTemplate) -> Self {
        Self { metadata: t.metadata, spec: t.spec, status: t.status }
    }
}

impl From<PersistentVolumeClaim> for PersistentVolumeClaimTemplate {
    fn from(c: PersistentVolumeClaim) -> Self {
        Self { api_version: None, kind: None, metadata: c.metadata, spec: c.spec, status: c.status }
    }
}
