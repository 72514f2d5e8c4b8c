//! SidecarSet (`apps.kruise.io`, cluster-scoped): sidecar containers injected into
//! the pods it selects at creation, and updated in place in running pods. Served as
//! `v1alpha1` and `v1beta1` (stored).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Container, LocalObjectReference, ObjectFieldSelector, Volume},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{UpdatePriorityStrategy, UpdateScatterTerm};

use super::strings::open_enum;

/// Emits a version's spec struct: the fields both versions share, then the given ones.
macro_rules! sidecar_set_spec {
    ($(#[$attr:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$attr])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The pods to inject into (must not be empty).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub selector: Option<LabelSelector>,
            /// The namespaces to inject into (default: all).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub namespace_selector: Option<LabelSelector>,
            /// Init containers to inject, by name in ascending order, into new pods only.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub init_containers: Option<Vec<SidecarContainer>>,
            /// Sidecar containers to inject.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub containers: Option<Vec<SidecarContainer>>,
            /// Volumes the sidecars mount.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(with = "Option<Vec<crate::crd::core_schema::CoreSchema<Volume>>>")]
            pub volumes: Option<Vec<Volume>>,
            /// How injected sidecars in running pods move to a new revision.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub update_strategy: Option<SidecarSetUpdateStrategy>,
            /// Which revision new pods get.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub injection_strategy: Option<SidecarSetInjectionStrategy>,
            /// Pull secrets added to the pods.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
            /// How many old revisions to keep (default 10).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub revision_history_limit: Option<i32>,
            /// Annotations written onto the pods.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub patch_pod_metadata: Option<Vec<SidecarSetPatchPodMetadata>>,
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
        LabelSelector, LocalObjectReference, SidecarContainer, SidecarSetInjectionStrategy,
        SidecarSetPatchPodMetadata, SidecarSetStatus, SidecarSetUpdateStrategy, Volume,
    };

    sidecar_set_spec! {
        /// The sidecars, and where and how they are injected.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = "v1alpha1",
            kind = "SidecarSet",
            plural = "sidecarsets",
            singular = "sidecarset",
            status = "SidecarSetStatus",
            printcolumn = r#"{"name":"MATCHED","type":"integer","jsonPath":".status.matchedPods","description":"The number of pods matched."}"#,
            printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedPods","description":"The number of pods matched and updated."}"#,
            printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyPods","description":"The number of pods matched and ready."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
        )]
        pub struct SidecarSetSpec {
            /// The only namespace to inject into (deprecated; v1beta1 uses namespaceSelector).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub namespace: Option<String>,
        }
    }
}

/// The served and stored `v1beta1`.
pub mod v1beta1 {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{
        LabelSelector, LocalObjectReference, SidecarContainer, SidecarSetInjectionStrategy,
        SidecarSetPatchPodMetadata, SidecarSetStatus, SidecarSetUpdateStrategy, Volume,
    };

    sidecar_set_spec! {
        /// The sidecars, and where and how they are injected.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = "v1beta1",
            kind = "SidecarSet",
            plural = "sidecarsets",
            singular = "sidecarset",
            status = "SidecarSetStatus",
            printcolumn = r#"{"name":"MATCHED","type":"integer","jsonPath":".status.matchedPods","description":"The number of pods matched."}"#,
            printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedPods","description":"The number of pods matched and updated."}"#,
            printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyPods","description":"The number of pods matched and ready."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
        )]
        pub struct SidecarSetSpec {
            /// A version of the set's own choosing, carried into its revisions (the
            /// v1alpha1 label `apps.kruise.io/sidecarset-custom-version`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub custom_version: Option<String>,
        }
    }
}

/// A sidecar: a core container plus how it is injected and updated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarContainer {
    /// The container itself.
    #[serde(flatten)]
    #[schemars(with = "crate::crd::core_schema::CoreSchema<Container>")]
    pub container: Container,
    /// `BeforeAppContainer` (default for containers) or `AfterAppContainer` (default
    /// for init containers).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_inject_policy: Option<PodInjectPolicy>,
    /// Cold or hot upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_strategy: Option<SidecarContainerUpgradeStrategy>,
    /// Whether it mounts the app containers' volumes (default disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_volume_policy: Option<ShareVolumePolicy>,
    /// Whether it gets the app containers' volume devices (default disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_volume_device_policy: Option<ShareVolumePolicy>,
    /// Env vars copied from app containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_env: Option<Vec<TransferEnvVar>>,
    /// Resources computed from the app containers' (never with `resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_policy: Option<ResourcesPolicy>,
}

open_enum! {
    /// Where a sidecar goes among the pod's containers: `BeforeAppContainer` (default for
    /// containers) or `AfterAppContainer` (default for init containers).
    pub enum PodInjectPolicy(free) {
        /// Before the app containers.
        #[default]
        BeforeAppContainer = "BeforeAppContainer",
        /// After the app containers.
        AfterAppContainer = "AfterAppContainer",
    }
}

/// How a sidecar is upgraded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarContainerUpgradeStrategy {
    /// `ColdUpgrade` (default) or `HotUpgrade` (immutable).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub upgrade_type: Option<SidecarContainerUpgradeType>,
    /// For hot upgrade: the image of the idle twin container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_upgrade_empty_image: Option<String>,
}

open_enum! {
    /// How a sidecar is upgraded: `ColdUpgrade` (default) or `HotUpgrade` (immutable).
    pub enum SidecarContainerUpgradeType(free) {
        /// Restart the container with the new image.
        #[default]
        ColdUpgrade = "ColdUpgrade",
        /// Start the new one in a twin container, then stop the old one.
        HotUpgrade = "HotUpgrade",
    }
}

/// Whether a sidecar shares the app containers' volumes (or devices).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareVolumePolicy {
    /// `enabled` or `disabled` (default).
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<ShareVolumePolicyType>,
}

open_enum! {
    /// Whether volumes (or devices) are shared: `enabled` or `disabled` (default).
    pub enum ShareVolumePolicyType(free) {
        /// Share.
        Enabled = "enabled",
        /// Do not share.
        #[default]
        Disabled = "disabled",
    }
}

/// An env var copied into a sidecar from an app container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferEnvVar {
    /// The app container to copy from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container_name: Option<String>,
    /// Where to read the app container's name from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container_name_from: Option<SourceContainerNameSource>,
    /// The env var to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_name: Option<String>,
    /// Several env vars to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_names: Option<Vec<String>>,
}

/// Where an app container's name is read from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceContainerNameSource {
    /// A pod field: `metadata.name`, or `metadata.labels['k']` / `metadata.annotations['k']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
}

/// A sidecar's resources computed from the app containers' resources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesPolicy {
    /// Whether the variables are the sum or the max over the target containers.
    pub target_containers_mode: TargetContainersMode,
    /// The app containers whose resources count (default `.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ".*"))]
    pub target_containers_name_regex: Option<String>,
    /// The expressions.
    pub resources_expr: ResourcesExpr,
}

open_enum! {
    /// Whether the variables are the `sum` or the `max` over the target containers.
    pub enum TargetContainersMode(closed) {
        /// Add the target containers' resources.
        #[default]
        Sum = "sum",
        /// Take the largest.
        Max = "max",
    }
}

/// Expressions for a sidecar's limits and requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesExpr {
    /// Limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceExpr>,
    /// Requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceExpr>,
}

/// Expressions over the variables `cpu` and `memory`, with `+ - * /`, `max()` and `min()`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceExpr {
    /// The CPU expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// The memory expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// How sidecars in running pods move to a new revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetUpdateStrategy {
    /// `RollingUpdate` (default) or `NotUpdate`.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<SidecarSetUpdateStrategyType>,
    /// Stop updating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Only these pods are updated (and, since 1.8, injected at this revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// How many matched pods stay at the old revision (rounded up; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<IntOrString>,
    /// How many matched pods may be unavailable (rounded up; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Which pods go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_strategy: Option<UpdatePriorityStrategy>,
    /// Labels to spread updated pods over (a value of `*` means every value seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scatter_strategy: Option<Vec<UpdateScatterTerm>>,
}

open_enum! {
    /// Whether running pods' sidecars are updated: `RollingUpdate` (default) or `NotUpdate`.
    pub enum SidecarSetUpdateStrategyType(free) {
        /// Running pods keep their sidecars.
        NotUpdate = "NotUpdate",
        /// Running pods' sidecars are updated in place.
        #[default]
        RollingUpdate = "RollingUpdate",
    }
}

/// Which revision new pods are injected with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetInjectionStrategy {
    /// Stop injecting into new pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// A fixed revision to inject instead of the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<SidecarSetInjectRevision>,
}

/// A revision of the set, by custom version or by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetInjectRevision {
    /// The revision with this custom version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_version: Option<String>,
    /// The ControllerRevision with this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// `Always` (default): every new pod gets it; `Partial`: only pods outside the
    /// update selector or partition.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = "Always"))]
    pub policy: Option<SidecarSetInjectRevisionPolicy>,
}

open_enum! {
    /// Which new pods get the fixed revision: `Always` (default, every new pod) or
    /// `Partial` (only pods the update strategy's selector or partition does not reach).
    pub enum SidecarSetInjectRevisionPolicy(closed) {
        /// Every new pod.
        #[default]
        Always = "Always",
        /// Pods the update strategy does not reach.
        Partial = "Partial",
    }
}

/// Annotations written onto the pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetPatchPodMetadata {
    /// The annotations (keys must be whitelisted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `Retain` (default), `Overwrite` or `MergePatchJson`.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub patch_policy: Option<SidecarSetPatchPolicyType>,
}

open_enum! {
    /// What happens when the pod already has the annotation: `Retain` (default),
    /// `Overwrite` or `MergePatchJson`.
    pub enum SidecarSetPatchPolicyType(free) {
        /// Keep the pod's value.
        #[default]
        Retain = "Retain",
        /// Replace it.
        Overwrite = "Overwrite",
        /// Merge both as JSON objects.
        MergePatchJson = "MergePatchJson",
    }
}

/// Where the matched pods are (the same in both versions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetStatus {
    /// The generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods the set selects.
    pub matched_pods: i32,
    /// Of those, the pods with the latest sidecars.
    pub updated_pods: i32,
    /// Of those, the ready pods.
    pub ready_pods: i32,
    /// Pods with the latest sidecars that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ready_pods: Option<i32>,
    /// The latest revision's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<String>,
    /// Bumped when a revision name collides, to make a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}
