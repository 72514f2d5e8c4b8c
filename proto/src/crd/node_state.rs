//! NodeState (`stevedore.dev/v1alpha1`, cluster-scoped, one per node, named after
//! it): the controller's per-node intent in `spec`, the agent's per-node report in
//! `status`. Small on purpose: every agent watches its own, and the controller
//! watches them all.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::LifecycleHook;

/// What the controller permits on this node.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stevedore.dev",
    version = "v1alpha1",
    kind = "NodeState",
    plural = "nodestates",
    singular = "nodestate",
    status = "NodeStateStatus",
    printcolumn = r#"{"name":"DAEMONSETS","type":"integer","jsonPath":".status.daemonSetCount"}"#,
    printcolumn = r#"{"name":"PROXY","type":"string","jsonPath":".status.proxy.state"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeStateSpec {
    /// Advanced DaemonSets whose pods on this node may move to a revision, by
    /// `<namespace>/<name>` (a map, so that each set's permit is written by a merge
    /// patch of its own key, never by a read-modify-write of the others').
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub daemon_sets: BTreeMap<String, DaemonSetPermit>,
    /// BroadcastJobs that may run a pod on this node, by `<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broadcast_jobs: BTreeMap<String, BroadcastJobPermit>,
}

/// A workload, by namespace, name and uid (a recreated workload is another one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The key of a workload in [`NodeStateSpec`]'s maps: `<namespace>/<name>`.
pub fn workload_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// What one DaemonSet asks of this node: everything the agent needs to run the set's
/// pod here without watching the set (whose every status write would reach every
/// agent). The controller writes an entry for each node the set targets once the node
/// has, or may create, a pod of it; the pod templates come from the set's
/// ControllerRevisions, which never change.
///
/// Not `waiting`: the node may create its pod at `revision`, or move an older one
/// there. `waiting`: `revision` is the set's update revision, which the node may not
/// move to yet (it keeps the pod it has, creates none, and pre-downloads the
/// revision's images). No entry: the node creates and updates nothing for the set,
/// and deletes a pod of it that the set no longer targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetPermit {
    /// The set's uid (a permit for a deleted and recreated set is void).
    pub uid: String,
    /// The revision (the set's `controller-revision-hash`) the node's pod may run, or
    /// will run once permitted.
    pub revision: String,
    /// The node may not move to `revision` yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
    /// The rolling update surges (`maxSurge` above 0): the new pod starts beside the
    /// old one, which goes once the new one is available.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub surge: bool,
    /// The set's `rollingUpdateType` is `InPlaceIfPossible`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
    /// The set's `minReadySeconds`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_ready_seconds: i32,
    /// The set's `lifecycle.preDelete` hook: a pod it holds is moved to
    /// `PreparingDelete` instead of deleted, and deleted once the hook lets go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_delete: Option<LifecycleHook>,
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// Permission for one BroadcastJob to run its pod on this node: the node may create
/// the job's pod if it has none (never a second one after the first finished). The
/// permit is withdrawn when the node has finished, the job has finished or failed;
/// without it the agent deletes the job's pod here if it still runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastJobPermit {
    /// The job's uid.
    pub uid: String,
}

/// What the agent reports about this node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStateStatus {
    /// The spec generation this report answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the agent last wrote this report; it writes at least once per heartbeat
    /// interval, so an older one means the agent is silent and its report stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_time: Option<Time>,
    /// How many DaemonSets have a pod here (a printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_set_count: Option<i32>,
    /// Per DaemonSet: its pod on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub daemon_sets: Vec<DaemonSetNodeStatus>,
    /// Per BroadcastJob: its run on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broadcast_jobs: Vec<BroadcastJobNodeStatus>,
    /// The CRI proxy on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyStatus>,
}

/// One DaemonSet's pod on this node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetNodeStatus {
    /// The DaemonSet.
    #[serde(flatten)]
    pub workload: WorkloadRef,
    /// The pod's name, if it has one here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The revision the pod runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Whether the pod is ready.
    #[serde(default)]
    pub ready: bool,
    /// Whether it has been ready for the set's `minReadySeconds`.
    #[serde(default)]
    pub available: bool,
    /// Whether the pod was last updated in place (no recreation).
    #[serde(default)]
    pub updated_in_place: bool,
}

/// One BroadcastJob's run on this node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastJobNodeStatus {
    /// The BroadcastJob.
    #[serde(flatten)]
    pub workload: WorkloadRef,
    /// The pod's phase: Pending (also before the pod exists), Running, Succeeded or
    /// Failed.
    pub phase: String,
    /// Why the agent does not run the pod (an invalid template, a failed create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The pod's name, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's `restartPolicy` is `OnFailure`: its container restarts count
    /// against the job's `failurePolicy.restartLimit`.
    #[serde(default)]
    pub on_failure: bool,
    /// The pod's container restarts (init containers included).
    #[serde(default)]
    pub restarts: i32,
}

/// The CRI proxy's health on this node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    /// `Ready`, `Unreachable` (the agent cannot reach it) or `RuntimeDown` (it runs,
    /// the runtime behind it does not answer).
    pub state: String,
    /// The runtime's name and version, as CRI `Version` reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// When the agent last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<Time>,
}
