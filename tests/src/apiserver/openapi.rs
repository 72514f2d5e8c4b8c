//! `/openapi/v3` as kube-apiserver serves it: an index of one OpenAPI 3.0 document per
//! group/version (`api/v1`, `apis/apps/v1`, `apis/apps.kruise.io/v1alpha1`, ...), each
//! with the paths of its resources (their operations carry
//! `x-kubernetes-group-version-kind` and the `dryRun`, `fieldManager`,
//! `fieldValidation` and `force` parameters, which is how kubectl learns that the
//! server validates fields itself) and the schemas of its kinds, built-in ones from
//! k8s-openapi ([`builtin`]) and custom ones from their CRD version's
//! `openAPIV3Schema`. The documents change when CRDs do; the index's `hash` says so.

pub mod builtin;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher as _;

use serde_json::{Map, Value, json};

use super::{
    Status,
    resources::{Registry, ResourceInfo},
};

const REF_PREFIX: &str = "#/components/schemas/";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The document path of a group/version: `api/v1` or `apis/{group}/{version}`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// The definition name kube-apiserver gives a custom kind: the group reversed, then
/// version and kind (`io.kruise.apps.v1alpha1.CloneSet`).
pub fn custom_definition(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The CRD objects a document needs: name → CRD JSON (read under the store's lock,
/// documents are built outside it).
pub type Crds = BTreeMap<String, Value>;

/// Every group/version the registry serves, with its document's hash.
pub fn v3_index(registry: &Registry, crds: &Crds) -> Value {
    let mut gvs: BTreeSet<(String, String)> = BTreeSet::new();
    for r in registry.all() {
        gvs.insert((r.group.clone(), r.version.clone()));
    }
    let mut paths = Map::new();
    for (g, v) in gvs {
        let Ok(doc) = v3_document(registry, crds, &g, &v) else { continue };
        let path = gv_path(&g, &v);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

fn hash(doc: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&serde_json::to_vec(doc).unwrap_or_default());
    format!("{:016X}", h.finish())
}

/// The document of one group/version.
///
/// # Errors
/// 404 when nothing is served there.
pub fn v3_document(registry: &Registry, crds: &Crds, group: &str, version: &str) -> Result<Value, Status> {
    let served: Vec<&ResourceInfo> =
        registry.all().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return Err(Status::new(404, "NotFound", "the server could not find the requested resource"));
    }
    let catalog = builtin::catalog();
    let mut schemas = Map::new();
    let mut wanted: Vec<String> = Vec::new();
    let mut paths = Map::new();
    for r in &served {
        let definition = match r.crd.as_deref().and_then(|c| crds.get(c)) {
            Some(crd) => {
                let name = custom_definition(&r.group, &r.version, &r.kind);
                let schema = crd_version_schema(crd, &r.version);
                schemas.insert(name.clone(), custom_kind(schema, r));
                schemas.insert(format!("{name}List"), custom_list(&name, r));
                wanted.extend([OBJECT_META.to_string(), LIST_META.to_string()]);
                name
            }
            None => match catalog.kind(&r.group, &r.version, &r.kind) {
                Some(k) => {
                    wanted.push(k.definition.clone());
                    k.definition.clone()
                }
                None => continue,
            },
        };
        add_paths(&mut paths, r, &definition);
    }
    wanted.extend([
        "io.k8s.api.autoscaling.v1.Scale".to_string(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
    ]);
    close_over(&catalog.definitions, &mut schemas, wanted);
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::version()["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// Adds `wanted` and every definition they reference, transitively.
fn close_over(defs: &Map<String, Value>, out: &mut Map<String, Value>, mut wanted: Vec<String>) {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // References from the custom kinds already in `out`.
    for v in out.values() {
        refs(v, &mut wanted);
    }
    while let Some(name) = wanted.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(d) = defs.get(&name) {
            refs(d, &mut wanted);
            out.entry(name).or_insert_with(|| d.clone());
        }
    }
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(REF_PREFIX)) {
                out.push(r.to_string());
            }
            m.values().for_each(|c| refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

/// A CRD version's `openAPIV3Schema` (an object schema preserving everything when it
/// has none).
pub fn crd_version_schema(crd: &Value, version: &str) -> Value {
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == version)
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}))
}

fn gvk(r: &ResourceInfo, kind: &str) -> Value {
    json!([{"group": r.group, "version": r.version, "kind": kind}])
}

/// A custom kind's published schema: the CRD's, with `apiVersion`, `kind` and
/// `metadata` (a reference to `ObjectMeta`) at the root, as kube-apiserver adds them.
fn custom_kind(mut schema: Value, r: &ResourceInfo) -> Value {
    if !schema["properties"].is_object() {
        schema["properties"] = json!({});
    }
    let props = &mut schema["properties"];
    props["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
    props["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
    props["metadata"] = json!({"allOf": [{"$ref": format!("{REF_PREFIX}{OBJECT_META}")}], "description": "Standard object's metadata."});
    schema["x-kubernetes-group-version-kind"] = gvk(r, &r.kind);
    schema
}

fn custom_list(item: &str, r: &ResourceInfo) -> Value {
    json!({
        "description": format!("{}List is a list of {}", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": format!("{REF_PREFIX}{item}")}},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}]},
        },
        "x-kubernetes-group-version-kind": gvk(r, &format!("{}List", r.kind)),
    })
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": if name == "force" { "boolean" } else { "string" }, "uniqueItems": true}})
}

fn operation(r: &ResourceInfo, action: &str, kind_gvk: &Value, schema_ref: &str, params: &[&str]) -> Value {
    let content = json!({"application/json": {"schema": {"$ref": schema_ref}}});
    let mut op = json!({
        "operationId": format!("{action}{}{}", r.kind, r.version),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": kind_gvk[0],
        "parameters": params.iter().map(|p| query(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": content}},
    });
    if matches!(action, "post" | "put" | "patch") {
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

fn add_paths(paths: &mut Map<String, Value>, r: &ResourceInfo, definition: &str) {
    let prefix = format!("/{}", gv_path(&r.group, &r.version));
    let ns = if r.namespaced { "/namespaces/{namespace}" } else { "" };
    let collection = format!("{prefix}{ns}/{}", r.plural);
    let item = format!("{collection}/{{name}}");
    let kind_ref = format!("{REF_PREFIX}{definition}");
    let g = gvk(r, &r.kind);
    const WRITE: [&str; 3] = ["dryRun", "fieldManager", "fieldValidation"];
    const PATCH: [&str; 4] = ["dryRun", "fieldManager", "fieldValidation", "force"];
    paths.insert(
        collection.clone(),
        json!({
            "get": operation(r, "list", &g, &format!("{kind_ref}List"), &["labelSelector", "fieldSelector", "limit", "continue", "watch"]),
            "post": operation(r, "post", &g, &kind_ref, &WRITE),
            "delete": operation(r, "deletecollection", &g, &kind_ref, &["dryRun"]),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": operation(r, "get", &g, &kind_ref, &[]),
            "put": operation(r, "put", &g, &kind_ref, &WRITE),
            "patch": operation(r, "patch", &g, &kind_ref, &PATCH),
            "delete": operation(r, "delete", &g, &kind_ref, &["dryRun"]),
        }),
    );
    for sub in &r.subresources {
        let (sub_gvk, sub_ref) = match sub.as_str() {
            "status" => (g.clone(), kind_ref.clone()),
            "scale" => (
                json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}]),
                format!("{REF_PREFIX}io.k8s.api.autoscaling.v1.Scale"),
            ),
            _ => continue,
        };
        paths.insert(
            format!("{item}/{sub}"),
            json!({
                "get": operation(r, "get", &sub_gvk, &sub_ref, &[]),
                "put": operation(r, "put", &sub_gvk, &sub_ref, &WRITE),
                "patch": operation(r, "patch", &sub_gvk, &sub_ref, &PATCH),
            }),
        );
    }
    if r.namespaced {
        paths.insert(
            format!("{prefix}/{}", r.plural),
            json!({"get": operation(r, "list", &g, &format!("{kind_ref}List"), &["labelSelector", "fieldSelector", "watch"])}),
        );
    }
}

/// `/openapi/v2` in JSON (Swagger 2.0): every group/version's paths and definitions,
/// `$ref`s pointing at `#/definitions/`. (kube-apiserver also serves it as gnostic
/// protobuf, which client-go asks for; this server answers that with 406.)
pub fn v2_document(registry: &Registry, crds: &Crds) -> Value {
    let mut gvs: BTreeSet<(String, String)> = BTreeSet::new();
    for r in registry.all() {
        gvs.insert((r.group.clone(), r.version.clone()));
    }
    let (mut paths, mut definitions) = (Map::new(), Map::new());
    for (g, v) in gvs {
        let Ok(doc) = v3_document(registry, crds, &g, &v) else { continue };
        let text = serde_json::to_string(&doc).unwrap_or_default().replace(REF_PREFIX, "#/definitions/");
        let doc: Value = serde_json::from_str(&text).unwrap_or_default();
        for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
            definitions.insert(name.clone(), schema.clone());
        }
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut item = item.clone();
            for op in item.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                for p in op["parameters"].as_array_mut().into_iter().flatten() {
                    let ty = p["schema"]["type"].clone();
                    if let Some(m) = p.as_object_mut() {
                        m.remove("schema");
                        m.insert("type".into(), ty);
                    }
                }
                if let Some(m) = op.as_object_mut() {
                    let schema =
                        m.remove("requestBody").map(|b| b["content"]["application/json"]["schema"].clone());
                    if let Some(schema) = schema {
                        m["parameters"].as_array_mut().into_iter().for_each(|ps| {
                            ps.push(
                                json!({"name": "body", "in": "body", "required": true, "schema": schema}),
                            );
                        });
                    }
                    let ok = m["responses"]["200"]["content"]["application/json"]["schema"].clone();
                    m.insert("responses".into(), json!({"200": {"description": "OK", "schema": ok}}));
                }
            }
            paths.insert(path.clone(), item);
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": super::discovery::version()["gitVersion"]},
        "paths": paths,
        "definitions": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_document_has_pod_paths_and_schemas() {
        let reg = Registry::new();
        let doc = v3_document(&reg, &Crds::new(), "", "v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(
            schemas.contains_key("io.k8s.api.core.v1.Pod")
                && schemas.contains_key("io.k8s.api.core.v1.Container")
        );
        assert!(!schemas.contains_key("io.k8s.api.apps.v1.Deployment"), "only what core/v1 needs");
        let index = v3_index(&reg, &Crds::new());
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert_eq!(
            custom_definition("apps.kruise.io", "v1alpha1", "CloneSet"),
            "io.kruise.apps.v1alpha1.CloneSet"
        );
    }
}
