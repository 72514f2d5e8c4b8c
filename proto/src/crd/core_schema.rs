//! Kubernetes' own types inside the CRDs (pod templates, claim templates, sidecar
//! containers and volumes): described by their full OpenAPI schema, as k8s-openapi
//! gives it, so that the API server prunes a misspelt field (`imagePullPolicyy`)
//! and `kubectl --validate=strict` and server-side strict field validation report
//! it.
//!
//! The schema is adapted to what a CRD needs and to what OpenKruise's webhooks
//! accept ([`CoreSchema`]); OpenKruise v1.9.0's own CRDs leave these fields
//! schemaless, so anything the adapted schema refuses, OpenKruise's decoding
//! refuses too.

use std::{borrow::Cow, collections::HashMap, marker::PhantomData};

use k8s_openapi::{
    api::{
        apps::v1::{DeploymentSpec, StatefulSetSpec},
        batch::v1::JobTemplateSpec,
        core::v1::{Container, PersistentVolumeClaim, PodTemplateSpec, Volume},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value};

/// Schema stand-in for a Kubernetes type `T`: use as
/// `#[schemars(with = "CoreSchema<PodTemplateSpec>")]` on a field of type `T`
/// (with `#[serde(flatten)]` too: the type's properties join the struct's).
///
/// The derived schema holds a placeholder (an open object whose `format` names
/// `T`); [`crate::crd::all`] puts `T`'s schema in its place ([`expand`]).
/// Inlined at derive time, kube's structural rewriter, which re-encodes every
/// subtree at every level, would take seconds per CRD in a debug build.
///
/// `T`'s schema is k8s-openapi's, with every subschema inlined (a CRD allows no
/// `$ref`) and:
/// - no descriptions or titles (they would triple the CRD; `kubectl explain` on the
///   built-in kinds has them),
/// - no `required` lists: a missing field is the webhooks' concern, so that the
///   schema refuses nothing OpenKruise's webhooks let through (an Advanced
///   StatefulSet's pod spec is not validated there at all),
/// - quantities open to any value (`cpu: 0.5` is a JSON number Go reads, which the
///   CRD int-or-string type would refuse); the webhooks read them exactly,
/// - `managedFields[].fieldsV1` kept whole (a free-form field set),
/// - ephemeral containers kept whole: a pod template may not have any (the webhooks
///   refuse them), and their schema would add 9 KB per template.
#[derive(Debug)]
pub struct CoreSchema<T>(PhantomData<T>);

/// The `format` prefix of a placeholder; the rest is the type's schema name.
const PLACEHOLDER: &str = "stevedore.dev/core-schema:";

impl<T: JsonSchema> JsonSchema for CoreSchema<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("CoreSchema_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "format": format!("{PLACEHOLDER}{}", T::schema_name()),
        })
    }
}

/// A type's schema name and its adapted schema.
type Known = (Cow<'static, str>, fn() -> Value);

/// The types a [`CoreSchema`] may stand for.
fn known() -> [Known; 8] {
    [
        (PodTemplateSpec::schema_name(), adapted::<PodTemplateSpec>),
        (PersistentVolumeClaim::schema_name(), adapted::<PersistentVolumeClaim>),
        (JobTemplateSpec::schema_name(), adapted::<JobTemplateSpec>),
        (ObjectMeta::schema_name(), adapted::<ObjectMeta>),
        (StatefulSetSpec::schema_name(), adapted::<StatefulSetSpec>),
        (DeploymentSpec::schema_name(), adapted::<DeploymentSpec>),
        (Volume::schema_name(), adapted::<Volume>),
        (Container::schema_name(), adapted::<Container>),
    ]
}

/// Puts the adapted schema of each [`CoreSchema`] placeholder in `crds` in its
/// place, keeping the placeholder's description, nullability and (for a flattened
/// type) the properties it shares a node with.
///
/// # Panics
/// On a placeholder for a type not listed here (a new `CoreSchema<T>` needs its
/// entry).
pub fn expand(crds: &mut [CustomResourceDefinition]) {
    let mut cache = HashMap::new();
    for version in crds.iter_mut().flat_map(|c| c.spec.versions.iter_mut()) {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            expand_node(schema, &mut cache);
        }
    }
}

fn expand_node(node: &mut JSONSchemaProps, cache: &mut HashMap<String, JSONSchemaProps>) {
    if let Some(name) = node.format.as_deref().and_then(|f| f.strip_prefix(PLACEHOLDER)) {
        let name = name.to_owned();
        let full = cache.entry(name.clone()).or_insert_with(|| {
            let (_, schema) = known()
                .into_iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no schema for CoreSchema<{name}>: add it to core_schema::known"));
            serde_json::from_value(schema()).unwrap_or_else(|e| panic!("the schema of {name}: {e}"))
        });
        let mut replaced = full.clone();
        replaced.description = node.description.take();
        replaced.nullable = node.nullable;
        if let Some(own) = node.properties.take() {
            replaced.properties.get_or_insert_with(Default::default).extend(own);
        }
        *node = replaced;
        return;
    }
    let nested = node.properties.iter_mut().flat_map(|p| p.values_mut());
    let items: Vec<&mut JSONSchemaProps> = match node.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => vec![s.as_mut()],
        Some(JSONSchemaPropsOrArray::Schemas(v)) => v.iter_mut().collect(),
        None => Vec::new(),
    };
    let additional = match node.additional_properties.as_mut() {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_mut()),
        _ => None,
    };
    for child in nested.chain(items).chain(additional) {
        expand_node(child, cache);
    }
}

/// The k8s-openapi names of the types replaced within an adapted schema.
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const FIELDS_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1";
const EPHEMERAL_CONTAINER: &str = "io.k8s.api.core.v1.EphemeralContainer";

/// `T`'s schema as [`CoreSchema`] describes it.
fn adapted<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = false;
            s.meta_schema = None;
        })
        .into_generator();
    let mut root = generator.into_root_schema_for::<T>().to_value();
    let definitions = root
        .as_object_mut()
        .and_then(|m| m.remove("components"))
        .and_then(|mut c| c.get_mut("schemas").map(Value::take))
        .unwrap_or_default();
    adapt(&root, &definitions)
}

/// `node` with its `$ref`s inlined from `definitions` and the adaptations of
/// [`CoreSchema`] made.
fn adapt(node: &Value, definitions: &Value) -> Value {
    match node {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let name = target.rsplit('/').next().unwrap_or_default();
                return match name {
                    QUANTITY => serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}),
                    FIELDS_V1 | EPHEMERAL_CONTAINER => {
                        serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
                    }
                    _ => adapt(definitions.get(name).unwrap_or(&Value::Bool(true)), definitions),
                };
            }
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "description" | "title" | "required" => {}
                    // property names map to schemas; everything else is a schema or a list of them
                    "properties" => {
                        let props = value.as_object().into_iter().flatten();
                        let adapted = props.map(|(k, v)| (k.clone(), adapt(v, definitions))).collect();
                        out.insert(key.clone(), Value::Object(adapted));
                    }
                    _ => {
                        out.insert(key.clone(), adapt(value, definitions));
                    }
                }
            }
            // schemars writes a described `$ref` as `allOf: [{$ref}]`; a CRD's
            // structural schema allows no types under allOf, so the one branch is
            // merged into the node
            if let Some(Value::Array(branches)) = out.remove("allOf") {
                match <[Value; 1]>::try_from(branches) {
                    Ok([Value::Object(only)]) => out.extend(only),
                    Ok([other]) => {
                        out.insert("allOf".into(), Value::Array(vec![other]));
                    }
                    Err(branches) => {
                        out.insert("allOf".into(), Value::Array(branches));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| adapt(v, definitions)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema<T: JsonSchema>() -> Value {
        adapted::<T>()
    }

    #[test]
    fn pod_templates_are_inlined_without_descriptions_or_required_lists() {
        let s = schema::<PodTemplateSpec>();
        let text = s.to_string();
        for absent in ["$ref", "\"description\"", "\"required\"", "\"title\"", "allOf"] {
            assert!(!text.contains(absent), "{absent} left in the schema");
        }
        let container = &s["properties"]["spec"]["properties"]["containers"]["items"];
        assert_eq!(container["properties"]["imagePullPolicy"], json!({"type": "string"}));
        assert_eq!(
            container["properties"]["resources"]["properties"]["limits"]["additionalProperties"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            container["properties"]["ports"]["items"]["properties"]["containerPort"],
            json!({"type": "integer", "format": "int32"})
        );
        let probe_port =
            &container["properties"]["livenessProbe"]["properties"]["httpGet"]["properties"]["port"];
        assert_eq!(probe_port, &json!({"x-kubernetes-int-or-string": true}));
        let kept = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        assert_eq!(s["properties"]["spec"]["properties"]["ephemeralContainers"]["items"], kept);
        let managed = &s["properties"]["metadata"]["properties"]["managedFields"]["items"];
        assert_eq!(
            managed["properties"]["fieldsV1"],
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        );
    }

    #[test]
    fn placeholders_are_expanded_keeping_their_own_properties() {
        let crds = crate::crd::all();
        assert!(!serde_json::to_string(&crds).unwrap().contains(PLACEHOLDER));
        let sidecar_set = crds.iter().find(|c| c.spec.names.kind == "SidecarSet").unwrap();
        let v = serde_json::to_value(sidecar_set).unwrap();
        let spec = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let sidecar = &spec["properties"]["containers"]["items"];
        assert!(sidecar["properties"]["podInjectPolicy"].is_object(), "the sidecar's own fields stay");
        assert!(sidecar["properties"]["imagePullPolicy"].is_object(), "the container's fields join them");
        assert!(sidecar.get("x-kubernetes-preserve-unknown-fields").is_none());
        let volumes = &spec["properties"]["volumes"];
        assert_eq!(
            (&volumes["description"], &volumes["nullable"]),
            (&json!("Volumes the sidecars mount."), &json!(true))
        );
        assert!(volumes["items"]["properties"]["configMap"].is_object());
    }
}
