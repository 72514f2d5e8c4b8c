//! The controller's webhook server, which every kind reuses: HTTPS, AdmissionReview
//! v1 (mutating and validating) and ConversionReview v1 endpoints, handlers per kind
//! registered in one [`Registry`]. Every replica serves webhooks. A handler that
//! panics or overruns its time answers with an error; the server carries on.

mod by_version;
pub mod cluster;
pub mod server;
pub mod tls;

pub use by_version::ByVersion;
pub use cluster::Cluster;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use k8s_openapi::api::admissionregistration::v1::{MatchCondition, RuleWithOperations};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse},
};

/// The path of the conversion endpoint (the CRDs' `conversion.webhook` points here).
pub const CONVERT_PATH: &str = "/convert";

/// Whether a handler may change the object or only judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Defaulting: answers with a JSON patch.
    Mutate,
    /// Validation: allows or denies.
    Validate,
}

/// The endpoint path OpenKruise uses for a kind: `/mutate-apps-kruise-io-v1alpha1-cloneset`.
/// An empty `version` gives the path of a kind whose one endpoint serves all its
/// versions (`/validate-apps-kruise-io-statefulset`); register a [`ByVersion`] there.
pub fn admission_path(op: Operation, group: &str, version: &str, kind: &str) -> String {
    let op = match op {
        Operation::Mutate => "mutate",
        Operation::Validate => "validate",
    };
    let group = group.replace('.', "-");
    let group = if group.is_empty() { "core".to_owned() } else { group };
    let kind = kind.to_lowercase();
    if version.is_empty() {
        format!("/{op}-{group}-{kind}")
    } else {
        format!("/{op}-{group}-{version}-{kind}")
    }
}

/// Judges or defaults one kind. Runs on a blocking thread, so a slow handler cannot
/// stall the server; it must not block forever (the server stops waiting at its
/// timeout and answers with an error).
pub trait Admit: Send + Sync + 'static {
    /// The answer to one request (use `AdmissionResponse::from(req)` and `.deny(..)`
    /// or `.with_patch(..)`).
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse;
}

/// Reads an admission request's object as its type `K`.
/// A field the type cannot read is named by its path: `spec.replicas: invalid type
/// ...`.
///
/// The status is read leniently: a status the type cannot read (`status: {}` as
/// `kubectl get -o yaml` writes it, without the counts the type requires) is left
/// out. No webhook judges the status: kube-apiserver drops it from a create and puts
/// the stored one back on an update, after the mutating webhooks ran.
pub(crate) fn typed<K: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Result<K, String> {
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    match decode(value.clone()) {
        Err((path, _)) if path == "status" || path.starts_with("status.") || path.starts_with("status[") => {
            let mut value = value;
            if let Some(map) = value.as_object_mut() {
                map.remove("status");
            }
            decode(value).map_err(|(_, message)| message)
        }
        result => result.map_err(|(_, message)| message),
    }
}

/// `value` as a `K`, or the path of the field it could not read and the message.
fn decode<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<K, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." { inner.to_string() } else { format!("{path}: {inner}") };
        (path, message)
    })
}

/// A refusal of `req` with HTTP `code` and `message`, as OpenKruise's handlers
/// answer (`admission.Errored(code, err)`); kube-apiserver prefixes the message with
/// the webhook's name and answers the client with the code. 403 carries the reason
/// `Forbidden`, as `admission.Denied` does.
pub fn refused(
    req: &AdmissionRequest<DynamicObject>,
    code: u16,
    message: impl Into<String>,
) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req).deny(message.into());
    resp.result.code = code;
    if code == 403 {
        resp.result.reason = "Forbidden".into();
    }
    resp
}

/// Converts one kind's objects between its versions.
pub trait Convert: Send + Sync + 'static {
    /// Converts `object` to `desired_api_version` (`group/version`), or says why it
    /// cannot be expressed there.
    fn convert(
        &self,
        object: serde_json::Value,
        desired_api_version: &str,
    ) -> Result<serde_json::Value, String>;
}

/// One admission endpoint: what it handles and where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// The endpoint's path.
    pub path: String,
    /// The API group it handles (`""` for core).
    pub group: String,
    /// The version.
    pub version: String,
    /// The kind.
    pub kind: String,
    /// Defaulting or validation.
    pub op: Operation,
}

/// A validating endpoint that is not one kind's: it judges writes to several
/// resources, and its webhook carries its own name, rules and match conditions
/// (the node agents' guard, [`crate::node_guard`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    /// The endpoint's path.
    pub path: String,
    /// The webhook's name in the ValidatingWebhookConfiguration.
    pub name: String,
    /// The resources and operations the API server sends it.
    pub rules: Vec<RuleWithOperations>,
    /// CEL conditions on the request, all of which must hold for the API server to
    /// call it (`matchConditions`).
    pub match_conditions: Vec<MatchCondition>,
}

/// Handlers by endpoint and by kind, and the [`Cluster`] handlers read from.
pub struct Registry {
    admission: HashMap<String, (Route, Arc<dyn Admit>)>,
    guards: BTreeMap<String, (Guard, Arc<dyn Admit>)>,
    conversion: HashMap<(String, String), Arc<dyn Convert>>,
    cluster: Arc<dyn Cluster>,
}

impl Default for Registry {
    /// A registry whose handlers cannot read the cluster ([`cluster::NoCluster`]).
    fn default() -> Self {
        Self::new(Arc::new(cluster::NoCluster))
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("admission", &self.admission.keys().collect::<Vec<_>>())
            .field("guards", &self.guards.keys().collect::<Vec<_>>())
            .field("conversion", &self.conversion.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry whose handlers read from `cluster`.
    pub fn new(cluster: Arc<dyn Cluster>) -> Self {
        Self { admission: HashMap::new(), guards: BTreeMap::new(), conversion: HashMap::new(), cluster }
    }

    /// What handlers registered here read the cluster through.
    pub fn cluster(&self) -> Arc<dyn Cluster> {
        self.cluster.clone()
    }

    /// Registers `handler` for `op` on `group/version, kind`; returns its path.
    ///
    /// # Panics
    /// When the path already has a handler: two handlers for one endpoint is a bug.
    pub fn admission(
        &mut self,
        op: Operation,
        group: &str,
        version: &str,
        kind: &str,
        handler: Arc<dyn Admit>,
    ) -> String {
        let path = admission_path(op, group, version, kind);
        let route = Route {
            path: path.clone(),
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            op,
        };
        assert!(!self.guards.contains_key(&path), "two webhook handlers registered for {path}");
        let previous = self.admission.insert(path.clone(), (route, handler));
        assert!(previous.is_none(), "two webhook handlers registered for {path}");
        path
    }

    /// Registers `handler` as the validating endpoint `guard` describes.
    ///
    /// # Panics
    /// When its path already has a handler.
    pub fn guard(&mut self, guard: Guard, handler: Arc<dyn Admit>) {
        let path = guard.path.clone();
        assert!(!self.admission.contains_key(&path), "two webhook handlers registered for {path}");
        let previous = self.guards.insert(path.clone(), (guard, handler));
        assert!(previous.is_none(), "two webhook handlers registered for {path}");
    }

    /// Every guard endpoint, in path order.
    pub fn guards(&self) -> Vec<Guard> {
        self.guards.values().map(|(guard, _)| guard.clone()).collect()
    }

    /// Registers the converter of `group`'s `kind`.
    ///
    /// # Panics
    /// When the kind already has one.
    pub fn conversion(&mut self, group: &str, kind: &str, handler: Arc<dyn Convert>) {
        let previous = self.conversion.insert((group.to_owned(), kind.to_owned()), handler);
        assert!(previous.is_none(), "two converters registered for {group}/{kind}");
    }

    /// The admission handler at `path` (a kind's or a guard's).
    pub fn admission_handler(&self, path: &str) -> Option<Arc<dyn Admit>> {
        let kind = self.admission.get(path).map(|(_, handler)| handler);
        kind.or_else(|| self.guards.get(path).map(|(_, handler)| handler)).cloned()
    }

    /// Every kind's admission endpoint, in path order ([`Registry::guards`] lists the
    /// others).
    pub fn routes(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = self.admission.values().map(|(route, _)| route.clone()).collect();
        routes.sort();
        routes
    }

    /// The kinds with a converter, as `(group, kind)`, sorted.
    pub fn converted_kinds(&self) -> Vec<(String, String)> {
        let mut kinds: Vec<_> = self.conversion.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    /// The converter of `group`'s `kind`.
    pub fn converter(&self, group: &str, kind: &str) -> Option<Arc<dyn Convert>> {
        self.conversion.get(&(group.to_owned(), kind.to_owned())).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_openkruise() {
        assert_eq!(
            admission_path(Operation::Mutate, "apps.kruise.io", "v1alpha1", "CloneSet"),
            "/mutate-apps-kruise-io-v1alpha1-cloneset"
        );
        assert_eq!(admission_path(Operation::Validate, "", "v1", "Pod"), "/validate-core-v1-pod");
        assert_eq!(
            admission_path(Operation::Validate, "apps.kruise.io", "", "StatefulSet"),
            "/validate-apps-kruise-io-statefulset"
        );
        assert_eq!(
            admission_path(Operation::Validate, "apps.kruise.io", "", "SidecarSet"),
            "/validate-apps-kruise-io-sidecarset"
        );
    }

    #[test]
    fn a_status_the_type_cannot_read_is_left_out() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "web"},
            "spec": {"selector": {}, "template": {}}, "status": {}
        }))
        .unwrap();
        let cs = typed::<stevedore_proto::crd::clone_set::CloneSet>(&obj).unwrap();
        assert_eq!(cs.status, None);
        let mut good = serde_json::to_value(&obj).unwrap();
        good["status"] = serde_json::json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                                            "updatedReplicas": 1, "updatedReadyReplicas": 1});
        let obj: DynamicObject = serde_json::from_value(good).unwrap();
        let cs = typed::<stevedore_proto::crd::clone_set::CloneSet>(&obj).unwrap();
        assert_eq!(cs.status.map(|s| s.replicas), Some(1), "a status it can read is kept");
    }

    #[test]
    fn a_field_the_type_cannot_read_is_named_by_its_path() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "web"},
            "spec": {"selector": {}, "template": {}, "replicas": "three"}
        }))
        .unwrap();
        let err = typed::<stevedore_proto::crd::clone_set::CloneSet>(&obj).unwrap_err();
        assert!(err.starts_with("spec.replicas: invalid type: string \"three\""), "{err}");
    }
}
