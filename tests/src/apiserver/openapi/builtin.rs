//! The OpenAPI schemas of the built-in kinds the server serves, generated once from
//! k8s-openapi's types (their `JsonSchema` implementations carry kube-apiserver's
//! definition names and descriptions), with `x-kubernetes-group-version-kind` on each
//! kind, as kube-apiserver publishes them.

use std::sync::OnceLock;

use k8s_openapi::{
    api::{
        admissionregistration::v1 as admission, apps::v1 as apps, autoscaling::v1 as autoscaling,
        batch::v1 as batch, coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
        storage::v1 as storage,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext,
    apimachinery::pkg::apis::meta::v1 as meta,
};
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

/// One kind and the name of its schema among the definitions.
#[derive(Debug, Clone)]
pub struct Kind {
    /// API group (empty for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Its definition name (`io.k8s.api.core.v1.Pod`).
    pub definition: String,
}

/// Every built-in schema definition, by name, and the kinds among them.
#[derive(Debug)]
pub struct Catalog {
    /// Definition name → OpenAPI v3 schema (`$ref`s point at `#/components/schemas/`).
    pub definitions: Map<String, Value>,
    /// The kinds.
    pub kinds: Vec<Kind>,
}

impl Catalog {
    /// The definition of `group/version` `kind`.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.group == group && k.version == version && k.kind == kind)
    }
}

fn kind<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
) -> Kind {
    generator.subschema_for::<T>();
    Kind { group, version, kind, definition: T::schema_name().into_owned() }
}

/// The catalog, built on first use.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(build)
}

fn build() -> Catalog {
    let mut g = SchemaSettings::openapi3().into_generator();
    let g = &mut g;
    let kinds = vec![
        kind::<core::Pod>(g, "", "v1", "Pod"),
        kind::<core::Node>(g, "", "v1", "Node"),
        kind::<core::Namespace>(g, "", "v1", "Namespace"),
        kind::<core::Service>(g, "", "v1", "Service"),
        kind::<core::ConfigMap>(g, "", "v1", "ConfigMap"),
        kind::<core::Secret>(g, "", "v1", "Secret"),
        kind::<core::Event>(g, "", "v1", "Event"),
        kind::<core::PersistentVolumeClaim>(g, "", "v1", "PersistentVolumeClaim"),
        kind::<core::PersistentVolume>(g, "", "v1", "PersistentVolume"),
        kind::<core::ServiceAccount>(g, "", "v1", "ServiceAccount"),
        kind::<core::Endpoints>(g, "", "v1", "Endpoints"),
        kind::<core::Binding>(g, "", "v1", "Binding"),
        kind::<apps::Deployment>(g, "apps", "v1", "Deployment"),
        kind::<apps::StatefulSet>(g, "apps", "v1", "StatefulSet"),
        kind::<apps::DaemonSet>(g, "apps", "v1", "DaemonSet"),
        kind::<apps::ReplicaSet>(g, "apps", "v1", "ReplicaSet"),
        kind::<apps::ControllerRevision>(g, "apps", "v1", "ControllerRevision"),
        kind::<batch::Job>(g, "batch", "v1", "Job"),
        kind::<batch::CronJob>(g, "batch", "v1", "CronJob"),
        kind::<coordination::Lease>(g, "coordination.k8s.io", "v1", "Lease"),
        kind::<policy::PodDisruptionBudget>(g, "policy", "v1", "PodDisruptionBudget"),
        kind::<policy::Eviction>(g, "policy", "v1", "Eviction"),
        kind::<autoscaling::Scale>(g, "autoscaling", "v1", "Scale"),
        kind::<admission::MutatingWebhookConfiguration>(
            g,
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
        ),
        kind::<admission::ValidatingWebhookConfiguration>(
            g,
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        ),
        kind::<apiext::CustomResourceDefinition>(g, "apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        kind::<events::Event>(g, "events.k8s.io", "v1", "Event"),
        kind::<rbac::Role>(g, "rbac.authorization.k8s.io", "v1", "Role"),
        kind::<rbac::RoleBinding>(g, "rbac.authorization.k8s.io", "v1", "RoleBinding"),
        kind::<rbac::ClusterRole>(g, "rbac.authorization.k8s.io", "v1", "ClusterRole"),
        kind::<rbac::ClusterRoleBinding>(g, "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        kind::<discovery::EndpointSlice>(g, "discovery.k8s.io", "v1", "EndpointSlice"),
        kind::<scheduling::PriorityClass>(g, "scheduling.k8s.io", "v1", "PriorityClass"),
        kind::<storage::StorageClass>(g, "storage.k8s.io", "v1", "StorageClass"),
        kind::<meta::Status>(g, "", "v1", "Status"),
        kind::<meta::DeleteOptions>(g, "", "v1", "DeleteOptions"),
    ];
    g.subschema_for::<meta::ListMeta>();
    let mut definitions = g.take_definitions(true);
    for k in &kinds {
        if let Some(Value::Object(d)) = definitions.get_mut(&k.definition) {
            // k8s-openapi requires `metadata` (it is not an Option in Rust); the
            // published schemas do not.
            if let Some(Value::Array(req)) = d.get_mut("required") {
                req.retain(|r| r != "metadata");
                if req.is_empty() {
                    d.remove("required");
                }
            }
            let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
            match d.get_mut("x-kubernetes-group-version-kind") {
                Some(Value::Array(list)) => list.push(gvk),
                _ => {
                    d.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
                }
            }
        }
    }
    Catalog { definitions, kinds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_their_gvk_and_refs_resolve() {
        let c = catalog();
        let pod = c.kind("", "v1", "Pod").unwrap();
        assert_eq!(pod.definition, "io.k8s.api.core.v1.Pod");
        let d = &c.definitions[&pod.definition];
        assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert!(d.get("required").is_none(), "metadata is not required");
        assert_eq!(
            d["properties"]["spec"]["$ref"].as_str().or(d["properties"]["spec"]["allOf"][0]["$ref"].as_str()),
            Some("#/components/schemas/io.k8s.api.core.v1.PodSpec")
        );
        // Every reference names a definition of the catalog.
        let text = serde_json::to_string(&c.definitions).unwrap();
        for r in text.split("\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(c.definitions.contains_key(name), "dangling $ref {name}");
        }
    }
}
