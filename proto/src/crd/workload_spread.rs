//! WorkloadSpread (`apps.kruise.io/v1alpha1`, namespaced, short name `ws`): spreads
//! the pods of an existing workload over subsets (zones, node pools), each with its
//! own scheduling constraints, patch and maximum. OpenKruise v1.9.0 serves v1alpha1
//! only.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{NodeSelectorTerm, PreferredSchedulingTerm, Toleration},
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, Time},
        util::intstr::IntOrString,
    },
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Schemaless;

use super::strings::open_enum;

/// The workload to spread, and the subsets to spread it over.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "WorkloadSpread",
    plural = "workloadspreads",
    singular = "workloadspread",
    shortname = "ws",
    namespaced,
    status = "WorkloadSpreadStatus",
    printcolumn = r#"{"name":"WorkloadName","type":"string","jsonPath":".spec.targetRef.name"}"#,
    printcolumn = r#"{"name":"WorkloadKind","type":"string","jsonPath":".spec.targetRef.kind"}"#,
    printcolumn = r#"{"name":"Adaptive","type":"boolean","jsonPath":".spec.scheduleStrategy.type[?(@ == \"Adaptive\")]","description":"Whether pods that cannot be scheduled move to the next subset."}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpreadSpec {
    /// The workload whose pods are spread (immutable; one WorkloadSpread per workload).
    #[serde(rename = "targetRef")]
    pub target_reference: TargetReference,
    /// Which of the workload's pods count, and where its replicas are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_filter: Option<TargetFilter>,
    /// The subsets, in order of preference; at least one, names unique.
    pub subsets: Vec<WorkloadSpreadSubset>,
    /// Fixed (default) or Adaptive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_strategy: Option<WorkloadSpreadScheduleStrategy>,
}

/// A workload, by kind and name in the WorkloadSpread's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetReference {
    /// Its API group and version, e.g. `apps/v1`.
    pub api_version: String,
    /// Its kind: Deployment, ReplicaSet, Job, CloneSet, StatefulSet, or a whitelisted one.
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// Which of the workload's pods the WorkloadSpread manages.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetFilter {
    /// Only the pods this selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Paths in the workload whose integers sum to the replicas that count
    /// (instead of its spec.replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_path_list: Option<Vec<String>>,
}

/// One subset: where its pods go, what they get, and how many.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpreadSubset {
    /// Unique among the subsets.
    pub name: String,
    /// Nodes the subset's pods must run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_node_selector_term: Option<NodeSelectorTerm>,
    /// Nodes the subset's pods prefer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_node_selector_terms: Option<Vec<PreferredSchedulingTerm>>,
    /// Tolerations added to the subset's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Most pods in the subset: int, or percent of the workload's replicas
    /// (all subsets use the same kind); unset means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<IntOrString>,
    /// A strategic merge patch applied to the subset's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Schemaless<serde_json::Value>>,
}

/// How pods are scheduled over the subsets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpreadScheduleStrategy {
    /// Fixed (default) or Adaptive.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<WorkloadSpreadScheduleStrategyType>,
    /// Settings of Adaptive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveWorkloadSpreadStrategy>,
}

open_enum! {
    /// See [`WorkloadSpreadScheduleStrategy`].
    pub enum WorkloadSpreadScheduleStrategyType(closed_or_empty) {
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
pub struct AdaptiveWorkloadSpreadStrategy {
    /// Do not simulate scheduling to choose a subset for a new pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_simulation_schedule: Option<bool>,
    /// Seconds a pod may stay pending before its subset is marked unschedulable and
    /// the pod rescheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_critical_seconds: Option<i32>,
}

/// What the WorkloadSpread observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpreadStatus {
    /// The generation this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Per subset, over all the workload's revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset_statuses: Option<Vec<WorkloadSpreadSubsetStatus>>,
    /// Per revision of the workload, per subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioned_subset_statuses: Option<BTreeMap<String, Vec<WorkloadSpreadSubsetStatus>>>,
}

/// One subset's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpreadSubsetStatus {
    /// The subset.
    pub name: String,
    /// Pods the subset may still take: maxReplicas minus its pods; -1 when unlimited.
    pub missing_replicas: i32,
    /// Pods in the subset.
    pub replicas: i32,
    /// Schedulable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<WorkloadSpreadSubsetCondition>>,
    /// Pods admitted to the subset but not yet seen, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating_pods: Option<BTreeMap<String, Time>>,
    /// Pods leaving the subset but not yet gone, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_pods: Option<BTreeMap<String, Time>>,
}

/// One condition of a subset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpreadSubsetCondition {
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
