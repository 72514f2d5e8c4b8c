//! PodUnavailableBudget (`policy.kruise.io/v1alpha1`, namespaced, short name `pub`):
//! a disruption budget that also guards in-place updates, and that can name its
//! pods through a workload (`targetRef`) instead of a selector.
//!
//! v1alpha1 takes the protected operations and the total-replicas override from
//! the annotations [`PROTECT_OPERATIONS_ANNOTATION`] and
//! [`PROTECT_TOTAL_REPLICAS_ANNOTATION`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{
    apis::meta::v1::{LabelSelector, Time},
    util::intstr::IntOrString,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation on a budget: the operations it guards, comma-separated among
/// `DELETE`, `UPDATE`, `EVICT` and `RESIZE`; unset means `DELETE,UPDATE,EVICT`.
pub const PROTECT_OPERATIONS_ANNOTATION: &str = "kruise.io/pub-protect-operations";
/// Annotation on a budget: the number of replicas to count from, overriding the
/// workload's.
pub const PROTECT_TOTAL_REPLICAS_ANNOTATION: &str = "pub.kruise.io/protect-total-replicas";

/// Which pods are guarded, and how many of them may be unavailable.
///
/// Exactly one of `selector` and `targetRef`, and exactly one of `maxUnavailable`
/// and `minAvailable` (checked by the validating webhook).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.kruise.io",
    version = "v1alpha1",
    kind = "PodUnavailableBudget",
    plural = "podunavailablebudgets",
    singular = "podunavailablebudget",
    shortname = "pub",
    namespaced,
    status = "PodUnavailableBudgetStatus",
    printcolumn = r#"{"name":"Allowed","type":"integer","jsonPath":".status.unavailableAllowed","description":"UnavailableAllowed number of pod unavailable that are currently allowed"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","jsonPath":".status.currentAvailable","description":"CurrentAvailable current number of available pods"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desiredAvailable","description":"DesiredAvailable minimum desired number of available pods"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","jsonPath":".status.totalReplicas","description":"TotalReplicas total number of pods counted by this budget"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PodUnavailableBudgetSpec {
    /// The pods guarded, by label (non-empty; immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub selector: Option<LabelSelector>,
    /// The pods guarded, as those of a workload (immutable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetReference>,
    /// How many (an int, or an integer percentage of the expected replicas,
    /// rounded up) may be unavailable at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// How many (an int, or an integer percentage of the expected replicas,
    /// rounded up) must stay available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
}

/// A workload in the budget's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetReference {
    /// Its API version, e.g. `apps.kruise.io/v1alpha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Its kind, e.g. `CloneSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the budget currently allows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodUnavailableBudgetStatus {
    /// The generation this status was computed for; the numbers hold only when it
    /// equals the object's generation.
    #[serde(default)]
    pub observed_generation: i64,
    /// Pods the webhook let be deleted or evicted, and when; the controller has not
    /// seen them go yet. Entries expire after 20 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disrupted_pods: Option<BTreeMap<String, Time>>,
    /// Pods the webhook let be updated, and when; the controller has not seen them
    /// unavailable yet. Entries expire after 10 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_pods: Option<BTreeMap<String, Time>>,
    /// How many more pods may become unavailable now: current − desired, at least 0.
    pub unavailable_allowed: i32,
    /// Guarded pods that are available now.
    pub current_available: i32,
    /// The least number of available pods the budget keeps.
    pub desired_available: i32,
    /// The number of pods counted by the budget (the expected replicas).
    pub total_replicas: i32,
}
