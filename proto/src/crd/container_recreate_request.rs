//! ContainerRecreateRequest (`apps.kruise.io/v1alpha1`, namespaced, short name `crr`):
//! recreate some containers of a running pod in place.

use k8s_openapi::{
    api::core::v1::{ContainerPort, LifecycleHandler},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::strings::open_enum;

/// What to recreate, and how.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kruise.io",
    version = "v1alpha1",
    kind = "ContainerRecreateRequest",
    plural = "containerrecreaterequests",
    singular = "containerrecreaterequest",
    shortname = "crr",
    namespaced,
    status = "ContainerRecreateRequestStatus",
    printcolumn = r#"{"name":"PHASE","type":"string","jsonPath":".status.phase","description":"Phase of this ContainerRecreateRequest."}"#,
    printcolumn = r#"{"name":"POD","type":"string","jsonPath":".spec.podName","description":"Pod name of this ContainerRecreateRequest."}"#,
    printcolumn = r#"{"name":"NODE","type":"string","jsonPath":".metadata.labels.crr\\.apps\\.kruise\\.io/node-name","description":"Node of the pod of this ContainerRecreateRequest."}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecreateRequestSpec {
    /// The pod whose containers are recreated.
    pub pod_name: String,
    /// The containers to recreate, in order.
    pub containers: Vec<ContainerRecreateRequestContainer>,
    /// How to recreate them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<ContainerRecreateRequestStrategy>,
    /// Seconds after creation after which the request fails if not finished (>= 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after completion after which the request is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// One container to recreate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecreateRequestContainer {
    /// The container's name in the pod.
    pub name: String,
    /// The container's preStop hook, filled in by the webhook (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<ProbeHandler>,
    /// The container's ports, filled in by the webhook when preStop is httpGet (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ContainerPort>>,
    /// The container as it was when the request was made (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_context: Option<ContainerRecreateRequestContainerContext>,
}

/// A preStop hook: exec, httpGet or tcpSocket (the core `LifecycleHandler` without
/// `sleep`, as OpenKruise keeps it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeHandler {
    /// Run a command in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<k8s_openapi::api::core::v1::ExecAction>,
    /// Send an HTTP GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<k8s_openapi::api::core::v1::HTTPGetAction>,
    /// Open a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<k8s_openapi::api::core::v1::TCPSocketAction>,
}

impl From<LifecycleHandler> for ProbeHandler {
    fn from(h: LifecycleHandler) -> Self {
        Self { exec: h.exec, http_get: h.http_get, tcp_socket: h.tcp_socket }
    }
}

/// The container's identity when the request was made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecreateRequestContainerContext {
    /// The runtime's container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The container's restart count.
    pub restart_count: i32,
}

/// How to recreate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecreateRequestStrategy {
    /// `Fail` (default) stops at the first failed container; `Ignore` goes on.
    #[serde(
        default,
        deserialize_with = "crate::crd::strings::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_policy: Option<FailurePolicy>,
    /// Recreate one container after the previous one is started again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_recreate: Option<bool>,
    /// Recreate even when the container is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_recreate: Option<bool>,
    /// Grace for stopping; defaults to the pod's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Mark the pod not ready this long before recreating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unready_grace_period_seconds: Option<i64>,
    /// A recreated container counts as done once it has run this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_started_seconds: Option<i32>,
}

open_enum! {
    /// What a failed container does to the request.
    pub enum FailurePolicy(free) {
        /// The request fails.
        #[default]
        Fail = "Fail",
        /// The request goes on with the next container.
        Ignore = "Ignore",
    }
}

/// Where the request is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecreateRequestStatus {
    /// Pending, Recreating or Completed.
    // a free string in the CRD, as in OpenKruise's: status is written by the
    // controllers only, and an enum there would refuse a newer controller's value
    #[schemars(with = "String")]
    pub phase: ContainerRecreateRequestPhase,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Why it is where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_recreate_states: Option<Vec<ContainerRecreateRequestContainerRecreateState>>,
}

/// The request's phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ContainerRecreateRequestPhase {
    /// Not started.
    #[default]
    Pending,
    /// Containers are being recreated.
    Recreating,
    /// Done (each container says whether it succeeded).
    Completed,
}

/// One container's progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecreateRequestContainerRecreateState {
    /// The container.
    pub name: String,
    /// Pending, Recreating, Succeeded or Failed.
    // a free string in the CRD, as in OpenKruise's: status is written by the
    // controllers only, and an enum there would refuse a newer controller's value
    #[schemars(with = "String")]
    pub phase: ContainerRecreatePhase,
    /// Why it is where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether it has been stopped already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_killed: Option<bool>,
}

/// One container's phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ContainerRecreatePhase {
    /// Not started.
    #[default]
    Pending,
    /// Being recreated.
    Recreating,
    /// Recreated and started.
    Succeeded,
    /// Could not be recreated.
    Failed,
}

/// One container of the pod as the controller copies it into the annotation
/// `crr.apps.kruise.io/sync-container-statuses` while the request is Recreating, for
/// the node agent to read from the request: only containers running since the
/// request was made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecreateRequestSyncContainerStatus {
    /// The container.
    pub name: String,
    /// Whether it passes its readiness probe.
    pub ready: bool,
    /// Its restart count.
    pub restart_count: i32,
    /// The runtime's container id (`containerd://…`).
    #[serde(rename = "containerID", default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
}
