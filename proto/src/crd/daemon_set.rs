//! Advanced DaemonSet (`apps.kruise.io`, kind `DaemonSet`, namespaced, short names
//! `daemon` and `ads`): a DaemonSet with in-place update, surge, partition and a node
//! selector for the rolling update. Served as `v1alpha1` and `v1beta1` (stored).

use k8s_openapi::{
    api::{apps::v1::DaemonSetCondition, core::v1::PodTemplateSpec},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Lifecycle;

use super::strings::open_enum;

/// Emits a version's spec struct: the fields both versions share, then the given ones.
macro_rules! daemon_set_spec {
    ($(#[$attr:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$attr])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The pods it owns; must select the template's labels.
            pub selector: LabelSelector,
            /// The pod run on every eligible node.
            #[schemars(with = "crate::crd::core_schema::CoreSchema<PodTemplateSpec>")]
            pub template: PodTemplateSpec,
            /// How pods move to a new revision.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub update_strategy: Option<DaemonSetUpdateStrategy>,
            /// Seconds a new pod must be ready to count as available (default 0).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub min_ready_seconds: Option<i32>,
            /// How many pods may be created at once (default 250).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub burst_replicas: Option<IntOrString>,
            /// How many old revisions to keep (default 10).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub revision_history_limit: Option<i32>,
            /// Hooks that hold pods; only `preDelete` is allowed.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub lifecycle: Option<Lifecycle>,
            $($extra)*
        }
    };
}

/// Emits a version's status struct: the fields both versions share, then the given ones.
macro_rules! daemon_set_status {
    ($(#[$attr:meta])* pub struct $name:ident { $($extra:tt)* }) => {
        $(#[$attr])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Nodes running at least one daemon pod that should.
            pub current_number_scheduled: i32,
            /// Nodes running a daemon pod that should not.
            pub number_misscheduled: i32,
            /// Nodes that should run a daemon pod.
            pub desired_number_scheduled: i32,
            /// Nodes whose daemon pod is ready.
            pub number_ready: i32,
            /// The generation last acted on.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub observed_generation: Option<i64>,
            /// Nodes running an updated daemon pod.
            pub updated_number_scheduled: i32,
            /// Nodes whose daemon pod is available.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub number_available: Option<i32>,
            /// Nodes that should run an available daemon pod and do not.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub number_unavailable: Option<i32>,
            /// Bumped when a revision name collides, to make a new one.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub collision_count: Option<i32>,
            /// The apps/v1 DaemonSet conditions.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub conditions: Option<Vec<DaemonSetCondition>>,
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
        DaemonSetCondition, DaemonSetUpdateStrategy, IntOrString, LabelSelector, Lifecycle, PodTemplateSpec,
    };

    daemon_set_spec! {
        /// The desired daemon pods. The annotation
        /// `daemonset.kruise.io/progressive-create-pod: "true"` creates pods only up to
        /// the partition.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = "v1alpha1",
            kind = "DaemonSet",
            plural = "daemonsets",
            singular = "daemonset",
            shortname = "daemon",
            shortname = "ads",
            namespaced,
            status = "DaemonSetStatus",
            printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".status.desiredNumberScheduled","description":"The desired number of pods."}"#,
            printcolumn = r#"{"name":"CURRENT","type":"integer","jsonPath":".status.currentNumberScheduled","description":"The current number of pods."}"#,
            printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.numberReady","description":"The ready number of pods."}"#,
            printcolumn = r#"{"name":"UP-TO-DATE","type":"integer","jsonPath":".status.updatedNumberScheduled","description":"The updated number of pods."}"#,
            printcolumn = r#"{"name":"AVAILABLE","type":"integer","jsonPath":".status.numberAvailable","description":"The available number of pods."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
            printcolumn = r#"{"name":"CONTAINERS","type":"string","jsonPath":".spec.template.spec.containers[*].name","priority":1,"description":"The containers of currently advanced daemonset."}"#,
            printcolumn = r#"{"name":"IMAGES","type":"string","jsonPath":".spec.template.spec.containers[*].image","priority":1,"description":"The images of currently advanced daemonset."}"#
        )]
        pub struct DaemonSetSpec {}
    }

    daemon_set_status! {
        /// Where the daemon pods are.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        pub struct DaemonSetStatus {
            /// The revision pods are moving to (`updateRevision` in v1beta1).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub daemon_set_hash: Option<String>,
        }
    }
}

/// The served and stored `v1beta1`.
pub mod v1beta1 {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::{
        DaemonSetCondition, DaemonSetScaleStrategy, DaemonSetUpdateStrategy, IntOrString, LabelSelector,
        Lifecycle, PodTemplateSpec,
    };

    daemon_set_spec! {
        /// The desired daemon pods.
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "apps.kruise.io",
            version = "v1beta1",
            kind = "DaemonSet",
            plural = "daemonsets",
            singular = "daemonset",
            shortname = "daemon",
            shortname = "ads",
            namespaced,
            status = "DaemonSetStatus",
            printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".status.desiredNumberScheduled","description":"The desired number of pods."}"#,
            printcolumn = r#"{"name":"CURRENT","type":"integer","jsonPath":".status.currentNumberScheduled","description":"The current number of pods."}"#,
            printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.numberReady","description":"The ready number of pods."}"#,
            printcolumn = r#"{"name":"UP-TO-DATE","type":"integer","jsonPath":".status.updatedNumberScheduled","description":"The updated number of pods."}"#,
            printcolumn = r#"{"name":"AVAILABLE","type":"integer","jsonPath":".status.numberAvailable","description":"The available number of pods."}"#,
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
            printcolumn = r#"{"name":"CONTAINERS","type":"string","jsonPath":".spec.template.spec.containers[*].name","priority":1,"description":"The containers of currently advanced daemonset."}"#,
            printcolumn = r#"{"name":"IMAGES","type":"string","jsonPath":".spec.template.spec.containers[*].image","priority":1,"description":"The images of currently advanced daemonset."}"#
        )]
        pub struct DaemonSetSpec {
            /// How pods are created.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scale_strategy: Option<DaemonSetScaleStrategy>,
        }
    }

    daemon_set_status! {
        /// Where the daemon pods are.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        pub struct DaemonSetStatus {
            /// The revision pods are moving to.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub update_revision: Option<String>,
        }
    }
}

/// How daemon pods move to a new revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetUpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete`.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<DaemonSetUpdateStrategyType>,
    /// The rolling update's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDaemonSet>,
}

open_enum! {
    /// How daemon pods move to a new revision: `RollingUpdate` (default) or `OnDelete`.
    pub enum DaemonSetUpdateStrategyType(free) {
        /// The controller replaces old pods.
        #[default]
        RollingUpdate = "RollingUpdate",
        /// Old pods are replaced only when deleted by someone else.
        OnDelete = "OnDelete",
    }
}

/// A rolling update's settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDaemonSet {
    /// `Standard` (default), `InPlaceIfPossible`, or the deprecated `Surging`.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "rollingUpdateType",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<RollingUpdateType>,
    /// Nodes whose pod may be unavailable during the update (default 1 when neither
    /// this nor maxSurge is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Nodes that may run an extra, new pod during the update (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Only nodes with these labels are updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// How many pods stay at the old revision (of desiredNumberScheduled, rounded down; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<IntOrString>,
    /// Stop updating pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

open_enum! {
    /// How a daemon pod is updated: `Standard` (default), `InPlaceIfPossible`, or the deprecated `Surging`.
    pub enum RollingUpdateType(free) {
        /// Delete the old pod, then create the new one (or surge first when maxSurge is set).
        #[default]
        Standard = "Standard",
        /// Update in place when only images (or metadata) changed, else as Standard.
        InPlaceIfPossible = "InPlaceIfPossible",
        /// Deprecated: Standard with maxSurge 1 and maxUnavailable 0.
        Surging = "Surging",
    }
}

/// How daemon pods are created.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetScaleStrategy {
    /// Create pods on new nodes only up to the partition (the v1alpha1 annotation
    /// `daemonset.kruise.io/progressive-create-pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned_scaling: Option<bool>,
}
