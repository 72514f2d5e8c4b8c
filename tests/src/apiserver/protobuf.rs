//! Kubernetes' protobuf encoding of built-in kinds (`application/vnd.kubernetes.protobuf`),
//! translated to and from the JSON the server stores. The field layout of every
//! message comes from the `k8s-pb` crate's prost messages (read by `tests/build.rs`);
//! JSON field names from the kinds' OpenAPI schemas ([`super::openapi::builtin`]).
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` envelope holding the
//! `apiVersion` and `kind` and the object's own message. Decoding follows Go's: the
//! JSON of a decoded object leaves out zero scalars of optional fields (Go's
//! `omitempty`), except in fields whose zero means something (pointers such as
//! `replicas`), and writes a zero `Time` as absent.

mod codec;
mod special;
mod wire;

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message as _;
use serde_json::Value;

use super::{Status, openapi::builtin};

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The four bytes every body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// One scalar or message type of a field.
#[derive(Debug)]
pub(crate) enum Kind {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    /// A message, by id (`api.core.v1.PodSpec`).
    Message(&'static str),
    /// `map<key, value>`.
    Map(&'static Kind, &'static Kind),
}

/// One field of a message, as k8s-pb's prost attribute gives it.
#[derive(Debug)]
pub(crate) struct Field {
    tag: u32,
    rust: &'static str,
    kind: Kind,
    repeated: bool,
}

/// One message: its id (the k8s-pb module path and name) and its fields.
#[derive(Debug)]
pub(crate) struct Message {
    id: &'static str,
    gvk: Option<(&'static str, &'static str)>,
    fields: &'static [Field],
}

mod layout {
    use super::{Field, Kind, Message};
    include!(concat!(env!("OUT_DIR"), "/k8s_pb_layout.rs"));
}

/// A field with its JSON name.
#[derive(Debug)]
pub(crate) struct Named {
    field: &'static Field,
    json: String,
    /// Whether a zero value is kept when decoding (required fields, pointers).
    keep_zero: bool,
}

/// The messages by id, with JSON names, and the kinds by `apiVersion`/`kind`.
#[derive(Debug)]
pub(crate) struct Index {
    messages: HashMap<&'static str, Vec<Named>>,
    by_kind: HashMap<(String, String), &'static str>,
}

/// Optional fields whose zero value is meaningful in Kubernetes' Go types (pointers):
/// kept when decoding although they are zero.
const POINTERS: &[&str] = &[
    "replicas",
    "parallelism",
    "completions",
    "backoffLimit",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "activeDeadlineSeconds",
    "terminationGracePeriodSeconds",
    "revisionHistoryLimit",
    "ttlSecondsAfterFinished",
    "progressDeadlineSeconds",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "storageClassName",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "immutable",
    "suspend",
    "priority",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "privileged",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "hostUsers",
    "shareProcessNamespace",
    "optional",
    "defaultMode",
    "mode",
    "expirationSeconds",
    "value",
    "unschedulable",
    "holdIdentity",
    "leaseDurationSeconds",
    "leaseTransitions",
];

/// The definition name of a message id: `api.core.v1.Pod` → `io.k8s.api.core.v1.Pod`.
fn definition_of(id: &str) -> String {
    format!(
        "io.k8s.{}",
        id.replace("apiextensions_apiserver", "apiextensions-apiserver")
            .replace("kube_aggregator", "kube-aggregator")
    )
}

pub(crate) fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let defs = &builtin::catalog().definitions;
        let by_lower: HashMap<String, &Value> = defs.iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
        let mut messages = HashMap::new();
        let mut by_kind = HashMap::new();
        for m in layout::MESSAGES {
            let def = by_lower.get(&definition_of(m.id).to_lowercase());
            let props = def.and_then(|d| d["properties"].as_object());
            let required: Vec<&str> = def
                .and_then(|d| d["required"].as_array())
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let named = m
                .fields
                .iter()
                .map(|f| {
                    let json = props
                        .and_then(|p| {
                            p.keys().find(|k| k.to_lowercase().replace('-', "") == f.rust.replace('_', ""))
                        })
                        .cloned()
                        .unwrap_or_else(|| heck::ToLowerCamelCase::to_lower_camel_case(f.rust));
                    let keep_zero = required.contains(&json.as_str()) || POINTERS.contains(&json.as_str());
                    Named { field: f, json, keep_zero }
                })
                .collect();
            messages.insert(m.id, named);
            if let Some((av, kind)) = m.gvk {
                by_kind.insert((av.to_string(), kind.to_string()), m.id);
                let list = format!("{}List", m.id);
                if let Some(l) = layout::MESSAGES.iter().find(|l| l.id == list) {
                    by_kind.insert((av.to_string(), format!("{kind}List")), l.id);
                }
            }
        }
        for (av, kind, id) in [
            ("v1", "Status", "apimachinery.pkg.apis.meta.v1.Status"),
            ("v1", "DeleteOptions", "apimachinery.pkg.apis.meta.v1.DeleteOptions"),
            ("meta.k8s.io/v1", "DeleteOptions", "apimachinery.pkg.apis.meta.v1.DeleteOptions"),
            ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
            ("policy/v1", "Eviction", "api.policy.v1.Eviction"),
            ("v1", "Binding", "api.core.v1.Binding"),
        ] {
            by_kind.insert((av.to_string(), kind.to_string()), id);
        }
        Index { messages, by_kind }
    })
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::bad_request(format!("the protobuf body could not be decoded: {e}"))
}

/// Decodes a body: `apiVersion`, `kind` and the object as JSON.
///
/// # Errors
/// 400 for a malformed body or an unknown kind.
pub fn decode(body: &[u8]) -> Result<Value, Status> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| bad("missing the k8s\\0 prefix"))?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(rest).map_err(bad)?;
    let tm = unknown.type_meta.unwrap_or_default();
    let (av, kind) = (tm.api_version.unwrap_or_default(), tm.kind.unwrap_or_default());
    let id = index().by_kind.get(&(av.clone(), kind.clone())).ok_or_else(|| {
        Status::new(
            415,
            "UnsupportedMediaType",
            format!("no protobuf message is known for {kind} in {av}: send application/json"),
        )
    })?;
    let mut v = codec::decode(index(), id, &unknown.raw.unwrap_or_default()).map_err(bad)?;
    if let Value::Object(m) = &mut v {
        m.insert("apiVersion".into(), Value::String(av));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(v)
}

/// Whether the object's `apiVersion`/`kind` has a protobuf message.
pub fn encodable(v: &Value) -> bool {
    let (av, kind) = (v["apiVersion"].as_str().unwrap_or_default(), v["kind"].as_str().unwrap_or_default());
    index().by_kind.contains_key(&(av.to_string(), kind.to_string()))
}

/// Encodes an object (with its `apiVersion` and `kind`) as a protobuf body.
///
/// # Errors
/// Its kind has no protobuf message.
pub fn encode(v: &Value) -> Result<Vec<u8>, Status> {
    let (av, kind) = (v["apiVersion"].as_str().unwrap_or_default(), v["kind"].as_str().unwrap_or_default());
    let id = index()
        .by_kind
        .get(&(av.to_string(), kind.to_string()))
        .ok_or_else(|| Status::internal(format!("no protobuf message for {kind} in {av}")))?;
    let raw = codec::encode(index(), id, v);
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(av.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    unknown.encode(&mut out).map_err(|e| Status::internal(e.to_string()))?;
    Ok(out)
}

/// A watch event frame of a protobuf watch: the length, then `meta.v1.WatchEvent`
/// with the object's own protobuf body.
///
/// # Errors
/// The object's kind has no protobuf message.
pub fn watch_frame(event_type: &str, object: &Value) -> Result<Vec<u8>, Status> {
    let raw = if object["kind"] == "Status" || encodable(object) { encode(object)? } else { Vec::new() };
    let mut msg = Vec::new();
    wire::put_len(&mut msg, 1, event_type.as_bytes());
    let mut ext = Vec::new();
    wire::put_len(&mut ext, 1, &raw);
    wire::put_len(&mut msg, 2, &ext);
    let mut out = (msg.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&msg);
    Ok(out)
}

#[cfg(test)]
mod tests;
