//! Pruning and defaulting, kube-apiserver's structural-schema algorithms.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Map, Value};

use super::validate::{additional_schema, items_schema};

/// `metadata` keys that survive the round trip through `ObjectMeta`.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];
const OWNER_REFERENCE_FIELDS: &[&str] =
    &["apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"];

/// Drops every field the structural schema does not know, as kube-apiserver does
/// before storing a custom resource: unknown properties go unless a node (or an
/// ancestor) has `x-kubernetes-preserve-unknown-fields: true`; `additionalProperties`
/// and `items` schemas prune map values and list items.
///
/// The root and every `x-kubernetes-embedded-resource` object keep `apiVersion`,
/// `kind` and `metadata`; their `metadata` keeps only `ObjectMeta`'s fields (the
/// real server round-trips it through the typed `ObjectMeta`, at the root as well).
/// Returns the paths of what it removed, as kube-apiserver's strict field validation
/// names them (`spec.foo`, `spec.items[0].bar`).
pub fn prune(schema: &JSONSchemaProps, value: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    prune_node(Some(schema), value, true, &mut Path { at: String::new(), removed: &mut removed });
    removed
}

/// Where pruning is, and what it removed (`spec.foo`, `spec.items[0].bar`).
struct Path<'a> {
    at: String,
    removed: &'a mut Vec<String>,
}

impl Path<'_> {
    fn key(&self, k: &str) -> String {
        if self.at.is_empty() { k.to_string() } else { format!("{}.{k}", self.at) }
    }

    fn index(&self, i: usize) -> String {
        format!("{}[{i}]", self.at)
    }

    fn with<R>(&mut self, at: String, f: impl FnOnce(&mut Path<'_>) -> R) -> R {
        let saved = std::mem::replace(&mut self.at, at);
        let r = f(self);
        self.at = saved;
        r
    }
}

fn is_embedded(s: Option<&JSONSchemaProps>, root: bool) -> bool {
    root || s.is_some_and(|s| s.x_kubernetes_embedded_resource == Some(true))
}

fn prune_node(s: Option<&JSONSchemaProps>, v: &mut Value, root: bool, path: &mut Path<'_>) {
    if s.is_some_and(|s| s.x_kubernetes_preserve_unknown_fields == Some(true)) {
        skip_prune(s, v, root, path);
        return;
    }
    match v {
        Value::Object(map) => {
            let embedded = is_embedded(s, root);
            let Some(s) = s else {
                if !embedded {
                    for k in map.keys() {
                        path.removed.push(path.key(k));
                    }
                    map.clear();
                }
                return;
            };
            map.retain(|k, child| {
                if embedded {
                    match k.as_str() {
                        "apiVersion" | "kind" => return true,
                        "metadata" => {
                            let at = path.key(k);
                            coerce_object_meta(child, &at, path.removed);
                            return true;
                        }
                        _ => {}
                    }
                }
                let at = path.key(k);
                if let Some(ps) = s.properties.as_ref().and_then(|p| p.get(k)) {
                    path.with(at, |p| prune_node(Some(ps), child, false, p));
                    true
                } else if s.additional_properties.is_some() {
                    // `additionalProperties: true` keeps the value as it is.
                    if let Some(extra) = additional_schema(s) {
                        path.with(at, |p| prune_node(Some(extra), child, false, p));
                    }
                    true
                } else {
                    path.removed.push(at);
                    false
                }
            });
        }
        Value::Array(items) => {
            let is = s.and_then(items_schema);
            for (i, item) in items.iter_mut().enumerate() {
                let at = path.index(i);
                path.with(at, |p| prune_node(is, item, false, p));
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: unknown keys stay, known ones are
/// still pruned by their own schema.
fn skip_prune(s: Option<&JSONSchemaProps>, v: &mut Value, root: bool, path: &mut Path<'_>) {
    let Some(s) = s else { return };
    match v {
        Value::Object(map) => {
            let embedded = is_embedded(Some(s), root);
            for (k, child) in map.iter_mut() {
                let at = path.key(k);
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    if k == "metadata" {
                        coerce_object_meta(child, &at, path.removed);
                    }
                    continue;
                }
                if let Some(ps) = s.properties.as_ref().and_then(|p| p.get(k)) {
                    path.with(at, |p| prune_node(Some(ps), child, false, p));
                } else if let Some(extra) = additional_schema(s) {
                    path.with(at, |p| prune_node(Some(extra), child, false, p));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let at = path.index(i);
                path.with(at, |p| skip_prune(items_schema(s), item, false, p));
            }
        }
        _ => {}
    }
}

fn coerce_object_meta(meta: &mut Value, at: &str, removed: &mut Vec<String>) {
    let Value::Object(map) = meta else { return };
    map.retain(|k, _| {
        let keep = OBJECT_META_FIELDS.contains(&k.as_str());
        if !keep {
            removed.push(format!("{at}.{k}"));
        }
        keep
    });
    if let Some(Value::Array(refs)) = map.get_mut("ownerReferences") {
        for (i, r) in refs.iter_mut().filter_map(Value::as_object_mut).enumerate() {
            r.retain(|k, _| {
                let keep = OWNER_REFERENCE_FIELDS.contains(&k.as_str());
                if !keep {
                    removed.push(format!("{at}.ownerReferences[{i}].{k}"));
                }
                keep
            });
        }
    }
}

/// Applies `default`s as kube-apiserver does when it decodes a custom resource:
/// first nulls of non-nullable fields without a default are dropped, then every
/// absent property with a default is set (and a null in a non-nullable field with a
/// default replaced), also for `additionalProperties` values and list items, and
/// recursively inside the defaults just set.
pub fn apply_defaults(schema: &JSONSchemaProps, value: &mut Value) {
    drop_non_nullable_nulls(Some(schema), value);
    default_node(schema, value);
}

fn non_nullable_null(v: &Value, s: Option<&JSONSchemaProps>) -> bool {
    v.is_null() && s.is_some_and(|s| s.nullable != Some(true))
}

fn default_of(s: &JSONSchemaProps) -> Option<&Value> {
    s.default.as_ref().map(|d| &d.0)
}

fn field_schema<'a>(s: Option<&'a JSONSchemaProps>, k: &str) -> Option<&'a JSONSchemaProps> {
    let s = s?;
    s.properties.as_ref().and_then(|p| p.get(k)).or_else(|| additional_schema(s))
}

fn drop_non_nullable_nulls(s: Option<&JSONSchemaProps>, v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, child| {
                let cs = field_schema(s, k);
                if non_nullable_null(child, cs) && cs.and_then(default_of).is_none() {
                    return false;
                }
                drop_non_nullable_nulls(cs, child);
                true
            });
        }
        Value::Array(items) => {
            let is = s.and_then(items_schema);
            for item in items {
                drop_non_nullable_nulls(is, item);
            }
        }
        _ => {}
    }
}

fn default_node(s: &JSONSchemaProps, v: &mut Value) {
    match v {
        Value::Object(map) => default_object(s, map),
        Value::Array(items) => {
            let Some(is) = items_schema(s) else { return };
            for item in items {
                if non_nullable_null(item, Some(is))
                    && let Some(d) = default_of(is)
                {
                    *item = d.clone();
                }
                default_node(is, item);
            }
        }
        _ => {}
    }
}

fn default_object(s: &JSONSchemaProps, map: &mut Map<String, Value>) {
    if let Some(props) = &s.properties {
        for (k, ps) in props {
            let Some(d) = default_of(ps) else { continue };
            match map.get(k) {
                Some(existing) if !non_nullable_null(existing, Some(ps)) => {}
                _ => {
                    map.insert(k.clone(), d.clone());
                }
            }
        }
    }
    let extra = additional_schema(s);
    for (k, child) in map.iter_mut() {
        if let Some(ps) = s.properties.as_ref().and_then(|p| p.get(k)) {
            default_node(ps, child);
        } else if let Some(extra) = extra {
            if non_nullable_null(child, Some(extra))
                && let Some(d) = default_of(extra)
            {
                *child = d.clone();
            }
            default_node(extra, child);
        }
    }
}
