//! Defaulting (mutating) webhooks: each kind's defaults, as OpenKruise v1.9.0 sets
//! them, as functions that fill in a typed object. [`Defaulter`] turns one into an
//! admission handler answering with a JSON patch that touches only what the defaults
//! changed: fields the types do not know are left as the client sent them.

use std::{fmt, marker::PhantomData};

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation as AdmissionOperation},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::webhook::{Admit, Registry, refused, typed};

pub mod container_recreate_request;
pub mod jobs;
pub mod pod;
mod workloads;

/// Fills in the defaults of one kind; the stored object comes along on UPDATE
/// (OpenKruise applies the pod defaults to a template only on CREATE or when the
/// template changed).
pub type Defaults<K> = fn(&mut K, Option<&K>);

/// Admits objects of kind `K` with its defaults filled in.
pub struct Defaulter<K> {
    defaults: Defaults<K>,
    kind: PhantomData<fn() -> K>,
}

impl<K> fmt::Debug for Defaulter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Defaulter").field("kind", &std::any::type_name::<K>()).finish()
    }
}

impl<K> Defaulter<K> {
    /// A defaulter applying `defaults`.
    pub fn new(defaults: Defaults<K>) -> Self {
        Self { defaults, kind: PhantomData }
    }
}

impl<K: DeserializeOwned + Serialize + 'static> Admit for Defaulter<K> {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let resp = AdmissionResponse::from(req);
        let Some(object) = &req.object else { return resp };
        if req.operation == AdmissionOperation::Delete {
            return resp;
        }
        let old = match (&req.old_object, req.operation == AdmissionOperation::Update) {
            (Some(old), true) => match typed::<K>(old) {
                Ok(old) => Some(old),
                Err(e) => return refused(req, 400, format!("the stored object: {e}")),
            },
            _ => None,
        };
        match patch(object, old.as_ref(), self.defaults) {
            Ok(patch) if patch.0.is_empty() => resp,
            Ok(patch) => match resp.with_patch(patch) {
                Ok(resp) => resp,
                Err(e) => refused(req, 500, format!("cannot encode the defaults: {e}")),
            },
            Err(e) => refused(req, 400, e),
        }
    }
}

/// The JSON patch that applies `defaults` to `object` (`old` the stored object on
/// UPDATE).
///
/// The object is read into its type twice, once left as it is and once defaulted;
/// what differs between the two is laid over the object as the client sent it, and
/// the patch is the difference between that and the original. So the patch carries
/// the defaults and nothing else, however the types would re-encode the rest.
pub fn patch<K: DeserializeOwned + Serialize>(
    object: &DynamicObject,
    old: Option<&K>,
    defaults: Defaults<K>,
) -> Result<json_patch::Patch, String> {
    patch_by(object, |k| {
        defaults(k, old);
        Ok(())
    })
}

/// The JSON patch that `change` makes to `object` read as a `K`, built as
/// [`patch`] builds it; `change` may refuse with a message.
pub fn patch_by<K: DeserializeOwned + Serialize>(
    object: &DynamicObject,
    change: impl FnOnce(&mut K) -> Result<(), String>,
) -> Result<json_patch::Patch, String> {
    let original = serde_json::to_value(object).map_err(|e| e.to_string())?;
    let mut kind: K = typed(object)?;
    let before = serde_json::to_value(&kind).map_err(|e| e.to_string())?;
    change(&mut kind)?;
    let after = serde_json::to_value(&kind).map_err(|e| e.to_string())?;
    let mut defaulted = original.clone();
    if let Some(changes) = merge_diff(&before, &after) {
        json_patch::merge(&mut defaulted, &changes);
    }
    Ok(json_patch::diff(&original, &defaulted))
}

/// The JSON merge patch (RFC 7386) that turns `a` into `b`, or `None` when they are
/// equal. Lists are replaced whole, as merge patches do.
pub(crate) fn merge_diff(a: &Value, b: &Value) -> Option<Value> {
    if a == b {
        return None;
    }
    let (Value::Object(a), Value::Object(b)) = (a, b) else { return Some(b.clone()) };
    let mut out = Map::new();
    for (key, old) in a {
        match b.get(key) {
            None => {
                out.insert(key.clone(), Value::Null);
            }
            Some(new) => {
                if let Some(change) = merge_diff(old, new) {
                    out.insert(key.clone(), change);
                }
            }
        }
    }
    for (key, new) in b {
        if !a.contains_key(key) {
            out.insert(key.clone(), new.clone());
        }
    }
    Some(Value::Object(out))
}

/// Registers every kind's defaulter.
pub fn register(registry: &mut Registry) {
    workloads::register(registry);
    jobs::register(registry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Thing {
        metadata: kube::core::ObjectMeta,
        spec: ThingSpec,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ThingSpec {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<i32>,
        #[serde(default)]
        paused: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strategy: Option<Strategy>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Strategy {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
    }

    fn thing_defaults(thing: &mut Thing, _: Option<&Thing>) {
        thing.spec.replicas.get_or_insert(1);
        thing
            .spec
            .strategy
            .get_or_insert(Strategy { partition: None, kind: None })
            .kind
            .get_or_insert("Rolling".into());
    }

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_patch_carries_the_defaults_and_nothing_else() {
        // `paused` is absent and the type would write `false`; `extra` is unknown to
        // the type: the patch touches neither.
        let obj = object(json!({
            "apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "a"},
            "spec": {"extra": {"keep": true}, "strategy": {"partition": 2}}
        }));
        let patch = patch(&obj, None, thing_defaults as Defaults<Thing>).unwrap();
        let mut patched = serde_json::to_value(&obj).unwrap();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(
            patched["spec"],
            json!({"extra": {"keep": true}, "replicas": 1, "strategy": {"partition": 2, "kind": "Rolling"}})
        );
    }

    #[test]
    fn a_defaulted_object_gets_an_empty_patch() {
        let obj = object(json!({
            "apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "a"},
            "spec": {"replicas": 3, "strategy": {"kind": "Recreate"}}
        }));
        assert!(patch(&obj, None, thing_defaults as Defaults<Thing>).unwrap().0.is_empty());
    }

    #[test]
    fn an_object_the_type_cannot_read_is_an_error() {
        let obj = object(json!({
            "apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "a"}, "spec": {"replicas": "three"}
        }));
        assert!(patch(&obj, None, thing_defaults as Defaults<Thing>).unwrap_err().contains("invalid type"));
    }
}
