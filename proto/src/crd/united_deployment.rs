//! UnitedDeployment (`apps.kruise.io/v1alpha1`, namespaced, short name `ud`): one
//! workload template spread over subsets (zones, node pools), a workload per
//! subset. OpenKruise v1.9.0 serves v1alpha1 only.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{DeploymentSpec, StatefulSetSpec},
        core::v1::{NodeSelectorTerm, Toleration},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, Time},
        util::intstr::IntOrString,
    },
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{clone_set::CloneSetSpec, common::Schemaless};

use super::strings::open_enum;

/// The template, the subsets, and how the subsets are updated.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "UnitedDeployment",
    plural = "uniteddeployments",
    singular = "uniteddeployment",
    shortname = "ud",
    namespaced,
    status = "UnitedDeploymentStatus",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.labelSelector"}"#,
    printcolumn = r#"{"name":"DESIRED","type":"integer","jsonPath":".spec.replicas","description":"Pods wanted over all subsets."}"#,
    printcolumn = r#"{"name":"CURRENT","type":"integer","jsonPath":".status.replicas","description":"Pods there are."}"#,
    printcolumn = r#"{"name":"UPDATED","type":"integer","jsonPath":".status.updatedReplicas","description":"Pods on the current revision."}"#,
    printcolumn = r#"{"name":"READY","type":"integer","jsonPath":".status.readyReplicas","description":"Pods ready."}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UnitedDeploymentSpec {
    /// Pods wanted over all subsets (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The pods the UnitedDeployment owns; must match the template's labels.
    pub selector: LabelSelector,
    /// The workload each subset gets: exactly one of the four templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SubsetTemplate>,
    /// The subsets, and how pods are spread over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
    /// How the subsets' workloads are updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UnitedDeploymentUpdateStrategy>,
    /// Revisions kept (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
}

/// The workload of a subset; exactly one is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubsetTemplate {
    /// An `apps/v1` StatefulSet per subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful_set_template: Option<StatefulSetTemplateSpec>,
    /// An Advanced StatefulSet (`apps.kruise.io`) per subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_stateful_set_template: Option<AdvancedStatefulSetTemplateSpec>,
    /// A CloneSet per subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_set_template: Option<CloneSetTemplateSpec>,
    /// An `apps/v1` Deployment per subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_template: Option<DeploymentTemplateSpec>,
}

/// A StatefulSet template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetTemplateSpec {
    /// Labels and annotations of the subsets' StatefulSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::crd::core_schema::CoreSchema<ObjectMeta>>")]
    pub metadata: Option<ObjectMeta>,
    /// The StatefulSet's spec (replicas and partition come from the UnitedDeployment).
    #[schemars(with = "crate::crd::core_schema::CoreSchema<StatefulSetSpec>")]
    pub spec: StatefulSetSpec,
}

/// An Advanced StatefulSet template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedStatefulSetTemplateSpec {
    /// Labels and annotations of the subsets' Advanced StatefulSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::crd::core_schema::CoreSchema<ObjectMeta>>")]
    pub metadata: Option<ObjectMeta>,
    /// The Advanced StatefulSet's v1beta1 spec (replicas and partition come from
    /// the UnitedDeployment).
    pub spec: crate::crd::stateful_set::v1beta1::StatefulSetSpec,
}

/// A CloneSet template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetTemplateSpec {
    /// Labels and annotations of the subsets' CloneSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::crd::core_schema::CoreSchema<ObjectMeta>>")]
    pub metadata: Option<ObjectMeta>,
    /// The CloneSet's (v1alpha1) spec (replicas and partition come from the UnitedDeployment).
    pub spec: CloneSetSpec,
}

/// A Deployment template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentTemplateSpec {
    /// Labels and annotations of the subsets' Deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::crd::core_schema::CoreSchema<ObjectMeta>>")]
    pub metadata: Option<ObjectMeta>,
    /// The Deployment's spec (replicas come from the UnitedDeployment).
    #[schemars(with = "crate::crd::core_schema::CoreSchema<DeploymentSpec>")]
    pub spec: DeploymentSpec,
}

/// The subsets, and how pods are scheduled over them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// The subsets; names are unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsets: Option<Vec<Subset>>,
    /// Fixed (default) or Adaptive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_strategy: Option<UnitedDeploymentScheduleStrategy>,
}

/// One subset: where its pods go and how many.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Unique among the subsets; part of the workload's name.
    pub name: String,
    /// The nodes the subset's pods go to (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector_term: Option<NodeSelectorTerm>,
    /// Tolerations added to the subset's pods (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Pods in this subset: int, or integer percent of spec.replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<IntOrString>,
    /// Fewest pods in this subset (min/max mode; not with replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<IntOrString>,
    /// Most pods in this subset (min/max mode; unset means no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<IntOrString>,
    /// A strategic merge patch applied to the subset's workload template; wins over
    /// the other fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Schemaless<serde_json::Value>>,
}

/// How pods are scheduled over the subsets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitedDeploymentScheduleStrategy {
    /// Fixed (default) or Adaptive.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<UnitedDeploymentScheduleStrategyType>,
    /// Settings of Adaptive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveUnitedDeploymentStrategy>,
}

open_enum! {
    /// See [`UnitedDeploymentScheduleStrategy`].
    pub enum UnitedDeploymentScheduleStrategyType(closed_or_empty) {
        /// Move pods that cannot be scheduled in a subset to the next subset.
        Adaptive = "Adaptive",
        /// Keep each subset's pods in it, scheduled or not.
        #[default]
        Fixed = "Fixed",
    }
}

/// Settings of the Adaptive schedule strategy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdaptiveUnitedDeploymentStrategy {
    /// Seconds a pod may stay pending before it is moved to another subset (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_critical_seconds: Option<i32>,
    /// Seconds a subset stays marked unschedulable after a pod was moved out (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable_duration: Option<i32>,
    /// Keep the pending pods in place while their replacements start elsewhere
    /// (needs a CloneSet or Deployment template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_unschedulable_pods: Option<bool>,
}

/// How the subsets' workloads are updated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitedDeploymentUpdateStrategy {
    /// Manual, the only type.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<UnitedDeploymentUpdateStrategyType>,
    /// The partition of each subset (default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_update: Option<ManualUpdate>,
}

open_enum! {
    /// See [`UnitedDeploymentUpdateStrategy`].
    pub enum UnitedDeploymentUpdateStrategyType(free) {
        /// Each subset's workload gets the partition set for it.
        #[default]
        Manual = "Manual",
    }
}

/// Partitions per subset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualUpdate {
    /// Subset name to the number of its pods kept on the old revision (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<BTreeMap<String, i32>>,
}

/// What the UnitedDeployment observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitedDeploymentStatus {
    /// The generation this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods there are.
    pub replicas: i32,
    /// Pending pods kept in place while replacements start elsewhere (Adaptive with reserve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_pods: Option<i32>,
    /// Pods on the current revision.
    pub updated_replicas: i32,
    /// Pods on the current revision and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ready_replicas: Option<i32>,
    /// Bumped on a revision-name hash collision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// The revision of the template.
    pub current_revision: String,
    /// Subset name to its pods wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset_replicas: Option<BTreeMap<String, i32>>,
    /// Per subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset_statuses: Option<Vec<UnitedDeploymentSubsetStatus>>,
    /// SubsetProvisioned, SubsetUpdated, SubsetFailure and UnitedDeploymentUpdated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<UnitedDeploymentCondition>>,
    /// Where the update is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    /// The selector as a string, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

/// One subset's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitedDeploymentSubsetStatus {
    /// The subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its pods wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Its pods ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Its partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Its reserved pending pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_pods: Option<i32>,
    /// Schedulable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<UnitedDeploymentSubsetCondition>>,
}

/// One condition of a subset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitedDeploymentSubsetCondition {
    /// Schedulable.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why, in one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One condition of a UnitedDeployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitedDeploymentCondition {
    /// SubsetProvisioned, SubsetUpdated, SubsetFailure or UnitedDeploymentUpdated.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// True, False or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why, in one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where the update is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStatus {
    /// The revision the subsets are updated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_revision: Option<String>,
    /// Subset name to the partition applied to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_partitions: Option<BTreeMap<String, i32>>,
}
