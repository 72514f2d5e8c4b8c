//! Types several kinds share (OpenKruise's `appspub` and friends).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::strings::open_enum;

/// Hooks that hold a pod at points of its life until other controllers let go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Before a pod is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_delete: Option<LifecycleHook>,
    /// Before a pod is updated in place, and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update: Option<LifecycleHook>,
    /// After a pod is created and ready, before it counts as normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_normal: Option<LifecycleHook>,
}

/// A hook: a pod is held while any of these labels or finalizers is on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    /// Labels (and values) that hold the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_handler: Option<BTreeMap<String, String>>,
    /// Finalizers that hold the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers_handler: Option<Vec<String>>,
    /// Mark the pod not ready while held (preDelete and inPlaceUpdate only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_pod_not_ready: Option<bool>,
}

/// In-place update settings (the v1alpha1 form).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateStrategy {
    /// Seconds between marking the pod not ready and updating it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i32>,
}

/// The order in which pods are updated: by label value, or by weighted selectors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityStrategy {
    /// Pods sorted by the integer in the value of each key, in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_priority: Option<Vec<UpdatePriorityOrderTerm>>,
    /// Pods scored by the weights of the selectors they match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_priority: Option<Vec<UpdatePriorityWeightTerm>>,
}

/// Order by the value of a label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityOrderTerm {
    /// The label key.
    pub ordered_key: String,
}

/// A weight for the pods a selector matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityWeightTerm {
    /// 0 to 100.
    pub weight: i32,
    /// The pods it applies to.
    pub match_selector: LabelSelector,
}

/// One label to spread updated pods over: pods with it are updated evenly across
/// the update, not all first or all last.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateScatterTerm {
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

/// When a job-like object is complete.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletionPolicy {
    /// `Always` (default): completes when every target is done; `Never`: keeps running.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<CompletionPolicyType>,
    /// Seconds after start after which it is terminated (`Always` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after finishing after which it is deleted (`Always` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
}

open_enum! {
    /// See [`CompletionPolicy`].
    pub enum CompletionPolicyType(free) {
        /// Complete when done.
        #[default]
        Always = "Always",
        /// Never complete.
        Never = "Never",
    }
}

/// A field whose schema is left open (`x-kubernetes-preserve-unknown-fields`), as
/// OpenKruise leaves pod templates, claim templates and patches: the API server
/// neither validates nor prunes it, and the CRD stays small. The value keeps its
/// Rust type for the controllers; serde sees straight through the wrapper.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Schemaless<T>(pub T);

impl<T> JsonSchema for Schemaless<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Schemaless".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

impl<T> std::ops::Deref for Schemaless<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Schemaless<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Schemaless<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}
