//! Every label, annotation and finalizer key Stevedore reads or writes, in one place.

/// ContainerRecreateRequest: the uid of the pod whose containers are recreated.
pub const CRR_POD_UID: &str = "crr.apps.kruise.io/pod-uid";
/// ContainerRecreateRequest: the node the pod runs on (the agent selects on it).
pub const CRR_NODE_NAME: &str = "crr.apps.kruise.io/node-name";
/// ContainerRecreateRequest: `"true"` while the request is not finished.
pub const CRR_ACTIVE: &str = "crr.apps.kruise.io/active";
/// ContainerRecreateRequest: when the pod was marked not ready before recreation
/// (annotation, RFC 3339), and the finalizer that holds the request until the pod's
/// not-ready key is released.
pub const CRR_UNREADY_ACQUIRED: &str = "crr.apps.kruise.io/unready-acquired";
/// ContainerRecreateRequest: container statuses the controller syncs for the agent.
pub const CRR_SYNC_CONTAINER_STATUSES: &str = "crr.apps.kruise.io/sync-container-statuses";

/// BroadcastJob pods: the job's name (set by the job's controller, refused in the
/// template).
pub const BROADCAST_JOB_NAME: &str = "broadcastjob-name";
/// BroadcastJob pods: the job's uid (set by the job's controller, refused in the
/// template).
pub const BROADCAST_JOB_CONTROLLER_UID: &str = "broadcastjob-controller-uid";

/// On the pods a node agent creates for an Advanced DaemonSet or a BroadcastJob:
/// always `"true"`. The controller's watch of pods selects `!stevedore.dev/node-local`,
/// so that the pods the node agents run never reach it (the node-local design's
/// point: the controller coordinates them through NodeStates).
pub const NODE_LOCAL: &str = "stevedore.dev/node-local";

/// Node agents' heartbeat Leases (in the agents' namespace): always `"true"`; the
/// node is the Lease's `spec.holderIdentity`.
pub const AGENT_HEARTBEAT: &str = "stevedore.dev/agent-heartbeat";

/// A node agent's heartbeat Lease is named this followed by its node.
pub const AGENT_LEASE_PREFIX: &str = "agent-";

/// The name of the heartbeat Lease of `node`'s agent.
pub fn agent_lease(node: &str) -> String {
    format!("{AGENT_LEASE_PREFIX}{node}")
}

/// Webhook certificate Secret: when the serving certificate became valid (RFC 3339).
pub const CERT_NOT_BEFORE: &str = "stevedore.dev/cert-not-before";
/// Webhook certificate Secret: when the serving certificate expires (RFC 3339).
pub const CERT_NOT_AFTER: &str = "stevedore.dev/cert-not-after";
/// Webhook certificate Secret: when the signing CA expires (RFC 3339).
pub const CA_NOT_AFTER: &str = "stevedore.dev/ca-not-after";
/// Webhook certificate Secret: when the next CA (published ahead of its use)
/// expires.
pub const NEXT_CA_NOT_AFTER: &str = "stevedore.dev/next-ca-not-after";
/// Webhook certificate Secret: when the retired CA (still trusted) expires.
pub const RETIRED_CA_NOT_AFTER: &str = "stevedore.dev/retired-ca-not-after";
/// Webhook certificate Secret: the DNS names the serving certificate is for,
/// comma-separated.
pub const CERT_DNS_NAMES: &str = "stevedore.dev/cert-dns-names";

/// The finalizer that keeps an ImagePullJob (and other protected objects) from being
/// deleted before its owner lets go.
pub const DELETION_PROTECTION_FINALIZER: &str = "apps.kruise.io/deletion-protection";
/// Advanced DaemonSet v1alpha1: `"true"` asks for progressive pod creation, which is
/// v1beta1's `scaleStrategy.partitionedScaling`.
pub const PROGRESSIVE_CREATE_POD: &str = "daemonset.kruise.io/progressive-create-pod";
/// SidecarSet v1alpha1: the custom version, v1beta1's `spec.customVersion`.
pub const SIDECARSET_CUSTOM_VERSION: &str = "apps.kruise.io/sidecarset-custom-version";
/// The label the API server puts on every Namespace: its name.
pub const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
/// Who manages an object (the controller, on its certificate Secret).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Pod condition (and readiness gate) whose message lists, as JSON
/// `[{userAgent, key}]`, what holds the pod not ready; False while it is not empty.
pub const KRUISE_POD_READY: &str = "KruisePodReady";

/// CloneSet pods and PVCs: the instance id (5 lowercase alphanumerics) the pod's name
/// and its claims' names end with.
pub const CLONESET_INSTANCE_ID: &str = "apps.kruise.io/cloneset-instance-id";
/// A pod to delete (CloneSet, Advanced StatefulSet): any value; the workload deletes
/// it and, if it still wants the replica, creates another.
pub const SPECIFIED_DELETE: &str = "apps.kruise.io/specified-delete";
/// A workload pod's lifecycle state (`PreparingNormal`, `Normal`, `PreparingUpdate`,
/// `Updating`, `Updated`, `PreparingDelete`).
pub const LIFECYCLE_STATE: &str = "lifecycle.apps.kruise.io/state";
/// When the lifecycle state last changed (annotation, RFC 3339).
pub const LIFECYCLE_TIMESTAMP: &str = "lifecycle.apps.kruise.io/timestamp";
/// The revision a workload pod belongs to.
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
/// A CloneSet pod's revision short hash.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Pod annotation (an int32 in decimal) that makes a pod cheaper or dearer to delete
/// when a workload scales in: lower cost goes first.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
