//! The node agents' guard: a validating webhook that lets a node agent write only
//! its own node's objects.
//!
//! An agent is recognised by its user name, one of two conventions:
//! - the agent DaemonSet's service account, `system:serviceaccount:<ns>:stevedore-agent`,
//!   whose pod-bound token carries the node in
//!   `userInfo.extra["authentication.kubernetes.io/node-name"]` (Kubernetes 1.30 and
//!   later). The service account without that extra (a token not bound to a pod, or
//!   an older Kubernetes) is refused every guarded write;
//! - a systemd-installed agent's own user, `stevedore:agent:<node>` (for example the
//!   common name of its client certificate).
//!
//! For an agent of node N: pods only when `spec.nodeName` is N (the new and the old
//! object on an update, the old one on a delete), NodeStates and NodeImages only the
//! one named N, ContainerRecreateRequests only when labelled
//! `crr.apps.kruise.io/node-name=N`, Leases only its heartbeat, `agent-N`. Every other
//! user passes untouched: the webhook's `matchConditions` keep their requests away on
//! a real cluster, and the handler checks the identity itself where they are not
//! evaluated.

use std::sync::Arc;

use k8s_openapi::api::{
    admissionregistration::v1::{MatchCondition, RuleWithOperations},
    authentication::v1::UserInfo,
};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation},
};
use serde_json::Value;
use stevedore_proto::keys::{self, CRR_NODE_NAME};
use tracing::info;

use crate::webhook::{Admit, Guard, Registry, refused};

/// The guard's endpoint.
pub const PATH: &str = "/validate-stevedore-dev-node-agent";
/// Its webhook's name in the ValidatingWebhookConfiguration.
pub const WEBHOOK_NAME: &str = "vnodeagent.stevedore.dev";
/// The agent DaemonSet's service account (`deploy/agent.yaml`).
pub const AGENT_SERVICE_ACCOUNT: &str = "stevedore-agent";
/// The namespace the agent runs in unless the controller is told otherwise.
pub const DEFAULT_AGENT_NAMESPACE: &str = "stevedore-system";
/// Where Kubernetes 1.30+ puts the node of a pod-bound service account token.
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";
/// The user name of a systemd-installed agent is this followed by its node.
pub const AGENT_USER_PREFIX: &str = "stevedore:agent:";

/// Who asks, as far as the guard is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// Not a node agent: not restricted here.
    Other,
    /// The agent of `node`.
    Agent {
        /// Its node.
        node: String,
    },
    /// The agents' identity without a node: every guarded write is refused.
    Nodeless {
        /// Why no node is known and what to do about it.
        why: String,
    },
}

/// Recognises agents among the users of admission requests.
#[derive(Clone, Debug)]
pub struct Identities {
    service_account: String,
}

impl Identities {
    /// Agents whose service account lives in `agent_namespace`.
    pub fn new(agent_namespace: &str) -> Self {
        Self { service_account: format!("system:serviceaccount:{agent_namespace}:{AGENT_SERVICE_ACCOUNT}") }
    }

    /// The agent service account's user name.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    /// The CEL condition that holds exactly for the users [`Identities::identify`]
    /// takes for agents (with or without a node).
    pub fn match_expression(&self) -> String {
        format!(
            "request.userInfo.username == '{}' || request.userInfo.username.startsWith('{AGENT_USER_PREFIX}')",
            self.service_account
        )
    }

    /// Who `user` is.
    pub fn identify(&self, user: &UserInfo) -> Requester {
        let username = user.username.as_deref().unwrap_or_default();
        if let Some(node) = username.strip_prefix(AGENT_USER_PREFIX) {
            return if node.is_empty() {
                Requester::Nodeless {
                    why: format!(
                        "the user name {username:?} names no node: a systemd-installed agent's user is \
                         {AGENT_USER_PREFIX}<node>"
                    ),
                }
            } else {
                Requester::Agent { node: node.to_owned() }
            };
        }
        if username != self.service_account {
            return Requester::Other;
        }
        let nodes = user.extra.as_ref().and_then(|extra| extra.get(NODE_NAME_EXTRA));
        match nodes.map(Vec::as_slice) {
            Some([node]) if !node.is_empty() => Requester::Agent { node: node.clone() },
            Some(values) if values.len() > 1 => Requester::Nodeless {
                why: format!("the token of {username} names several nodes in {NODE_NAME_EXTRA}: {values:?}"),
            },
            _ => Requester::Nodeless {
                why: format!(
                    "the token of {username} carries no {NODE_NAME_EXTRA}, so its node is unknown: the \
                     token is not bound to a pod, or Kubernetes is older than 1.30. Run the agent with \
                     its pod's projected service account token on Kubernetes 1.30 or later, or give a \
                     systemd-installed agent the user {AGENT_USER_PREFIX}<node>"
                ),
            },
        }
    }
}

/// The resources the guard judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarded {
    /// Core pods.
    Pod,
    /// `stevedore.dev` NodeStates.
    NodeState,
    /// `apps.kruise.io` NodeImages.
    NodeImage,
    /// `apps.kruise.io` ContainerRecreateRequests.
    ContainerRecreateRequest,
    /// `coordination.k8s.io` Leases (the agents' heartbeats).
    Lease,
}

impl Guarded {
    /// The guarded resource of an API group and plural, if it is one.
    pub fn of(group: &str, resource: &str) -> Option<Self> {
        match (group, resource) {
            ("", "pods") => Some(Self::Pod),
            ("stevedore.dev", "nodestates") => Some(Self::NodeState),
            ("apps.kruise.io", "nodeimages") => Some(Self::NodeImage),
            ("apps.kruise.io", "containerrecreaterequests") => Some(Self::ContainerRecreateRequest),
            ("coordination.k8s.io", "leases") => Some(Self::Lease),
            _ => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::NodeState => "nodestate",
            Self::NodeImage => "nodeimage",
            Self::ContainerRecreateRequest => "containerrecreaterequest",
            Self::Lease => "lease",
        }
    }
}

/// One write as the guard sees it.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    /// What is written.
    pub guarded: Guarded,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: &'a Operation,
    /// `status`, … or empty.
    pub sub_resource: &'a str,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The new object (CREATE, UPDATE).
    pub object: Option<&'a DynamicObject>,
    /// The stored object (UPDATE, DELETE).
    pub old_object: Option<&'a DynamicObject>,
}

impl Write<'_> {
    /// `update the status of pod default/x`.
    fn what(&self) -> String {
        let verb = match self.operation {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Connect => "connect to",
        };
        let noun = self.guarded.noun();
        let object = if self.namespace.is_empty() {
            format!("{noun} {}", self.name)
        } else {
            format!("{noun} {}/{}", self.namespace, self.name)
        };
        if self.sub_resource.is_empty() {
            format!("{verb} {object}")
        } else {
            format!("{verb} the {} of {object}", self.sub_resource)
        }
    }
}

/// The node an object is bound to (pods: `spec.nodeName`) or labelled for
/// (ContainerRecreateRequests), if any.
fn node_of(guarded: Guarded, obj: &DynamicObject) -> Option<&str> {
    let node = match guarded {
        Guarded::Pod => obj.data.pointer("/spec/nodeName").and_then(Value::as_str),
        Guarded::ContainerRecreateRequest => {
            obj.metadata.labels.as_ref().and_then(|l| l.get(CRR_NODE_NAME)).map(String::as_str)
        }
        Guarded::NodeState | Guarded::NodeImage | Guarded::Lease => obj.metadata.name.as_deref(),
    };
    node.filter(|n| !n.is_empty())
}

/// Why `obj` is not the agent's: `it is bound to node n2`, or `it would be …` for
/// the new object of an update.
fn not_ours(guarded: Guarded, obj: &DynamicObject, would: bool) -> String {
    let (is, has) = if would { ("would be", "would have") } else { ("is", "has") };
    match (guarded, node_of(guarded, obj)) {
        (Guarded::Pod, Some(node)) => format!("it {is} bound to node {node}"),
        (Guarded::Pod, None) => format!("it {is} bound to no node"),
        (Guarded::ContainerRecreateRequest, Some(node)) => {
            format!("it {is} labelled {CRR_NODE_NAME}={node}")
        }
        (Guarded::ContainerRecreateRequest, None) => format!("it {has} no {CRR_NODE_NAME} label"),
        (Guarded::NodeState | Guarded::NodeImage | Guarded::Lease, Some(node)) => {
            format!("it is node {node}'s")
        }
        (Guarded::NodeState | Guarded::NodeImage | Guarded::Lease, None) => "it has no name".to_owned(),
    }
}

/// Whether the agent of `node` may make `write`; the refusal names the node, the
/// object and the reason: `agent of node n1 may not delete pod default/x: it is
/// bound to node n2`.
///
/// # Errors
/// The refusal message.
pub fn decide(node: &str, write: &Write<'_>) -> Result<(), String> {
    let refuse = |reason: String| Err(format!("agent of node {node} may not {}: {reason}", write.what()));
    match write.guarded {
        Guarded::NodeState | Guarded::NodeImage | Guarded::Lease => {
            let name = if write.name.is_empty() {
                write.object.or(write.old_object).and_then(|o| o.metadata.name.as_deref()).unwrap_or_default()
            } else {
                write.name
            };
            let lease = write.guarded == Guarded::Lease;
            let mine = if lease { keys::agent_lease(node) } else { node.to_owned() };
            match name {
                "" => refuse("it has no name".to_owned()),
                name if name == mine => Ok(()),
                name => match (lease, name.strip_prefix(keys::AGENT_LEASE_PREFIX)) {
                    (false, _) => refuse(format!("it is node {name}'s")),
                    (true, Some(other)) => refuse(format!("it is node {other}'s heartbeat")),
                    (true, None) => refuse(format!("an agent writes only its own heartbeat Lease, {mine}")),
                },
            }
        }
        Guarded::Pod | Guarded::ContainerRecreateRequest => {
            let ours = |obj: &DynamicObject| node_of(write.guarded, obj) == Some(node);
            match write.operation {
                Operation::Create if !write.sub_resource.is_empty() => {
                    refuse("agents do not create subresources of other objects".to_owned())
                }
                Operation::Create => match write.object {
                    Some(obj) if ours(obj) => Ok(()),
                    Some(obj) => refuse(not_ours(write.guarded, obj, false)),
                    None => refuse("the request carries no object to judge".to_owned()),
                },
                Operation::Update => match (write.old_object, write.object) {
                    (Some(old), _) if !ours(old) => refuse(not_ours(write.guarded, old, false)),
                    (Some(_), Some(new)) if !ours(new) => refuse(not_ours(write.guarded, new, true)),
                    (Some(_), Some(_)) => Ok(()),
                    _ => refuse("the request lacks the old or the new object to judge".to_owned()),
                },
                Operation::Delete => match write.old_object {
                    Some(old) if ours(old) => Ok(()),
                    Some(old) => refuse(not_ours(write.guarded, old, false)),
                    None => refuse("the request carries no old object to judge".to_owned()),
                },
                Operation::Connect => refuse("agents do not connect to them".to_owned()),
            }
        }
    }
}

/// The guard's answer to one request: `Ok` for users other than agents and for
/// resources it does not guard, else [`decide`]'s.
///
/// # Errors
/// The refusal message.
pub fn judge(identities: &Identities, req: &AdmissionRequest<DynamicObject>) -> Result<(), String> {
    let requester = identities.identify(&req.user_info);
    if requester == Requester::Other {
        return Ok(());
    }
    let Some(guarded) = Guarded::of(&req.resource.group, &req.resource.resource) else {
        return Ok(());
    };
    let write = Write {
        guarded,
        operation: &req.operation,
        sub_resource: req.sub_resource.as_deref().unwrap_or_default(),
        namespace: req.namespace.as_deref().unwrap_or_default(),
        // a create with generateName may carry the name only in the object
        name: if req.name.is_empty() {
            req.object.as_ref().and_then(|o| o.metadata.name.as_deref()).unwrap_or_default()
        } else {
            &req.name
        },
        object: req.object.as_ref(),
        old_object: req.old_object.as_ref(),
    };
    match requester {
        Requester::Agent { node } => decide(&node, &write),
        Requester::Nodeless { why } => Err(format!("may not {}: {why}", write.what())),
        Requester::Other => Ok(()),
    }
}

/// The guard's admission handler.
#[derive(Clone, Debug)]
pub struct NodeGuard {
    identities: Identities,
}

impl NodeGuard {
    /// A guard of the agents whose service account lives in `agent_namespace`.
    pub fn new(agent_namespace: &str) -> Self {
        Self { identities: Identities::new(agent_namespace) }
    }
}

impl Admit for NodeGuard {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        match judge(&self.identities, req) {
            Ok(()) => AdmissionResponse::from(req),
            Err(message) => {
                info!(
                    user.name = req.user_info.username.as_deref().unwrap_or_default(),
                    object.resource = %req.resource.resource,
                    object.name = %req.name,
                    reason = %message,
                    "node agent write refused"
                );
                refused(req, 403, message)
            }
        }
    }
}

/// The webhook: pods (and their status), NodeStates, NodeImages and
/// ContainerRecreateRequests (with every subresource), on create, update and
/// delete, called only for agents (`matchConditions`), failing closed.
pub fn guard(identities: &Identities) -> Guard {
    let rule = |group: &str, resources: &[&str], scope: &str| RuleWithOperations {
        api_groups: Some(vec![group.to_owned()]),
        api_versions: Some(vec!["*".to_owned()]),
        operations: Some(["CREATE", "UPDATE", "DELETE"].map(str::to_owned).to_vec()),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        scope: Some(scope.to_owned()),
    };
    Guard {
        path: PATH.to_owned(),
        name: WEBHOOK_NAME.to_owned(),
        rules: vec![
            rule("", &["pods", "pods/status"], "Namespaced"),
            rule(
                "apps.kruise.io",
                &["containerrecreaterequests", "containerrecreaterequests/*"],
                "Namespaced",
            ),
            rule("apps.kruise.io", &["nodeimages", "nodeimages/*"], "Cluster"),
            rule("stevedore.dev", &["nodestates", "nodestates/*"], "Cluster"),
            rule("coordination.k8s.io", &["leases"], "Namespaced"),
        ],
        match_conditions: vec![MatchCondition {
            name: "node-agent".to_owned(),
            expression: identities.match_expression(),
        }],
    }
}

/// Registers the guard of the agents whose service account lives in
/// `agent_namespace`.
pub fn register(registry: &mut Registry, agent_namespace: &str) {
    let guard_handler = NodeGuard::new(agent_namespace);
    registry.guard(guard(&guard_handler.identities), Arc::new(guard_handler));
}

#[cfg(test)]
mod tests;
