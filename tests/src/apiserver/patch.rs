//! The four patch types: JSON merge, JSON patch, strategic merge and apply.

use serde_json::Value;

use super::Status;

/// `Content-Type` of a PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// Accepted for custom resources (no strategic merge), in the real server's order.
pub const CUSTOM_PATCH_TYPES: [&str; 3] =
    ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

const ALL_PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchType {
    /// The patch type of a `Content-Type` header.
    ///
    /// # Errors
    /// 415 for any other media type.
    pub fn from_content_type(ct: &str) -> Result<Self, Status> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            _ => Err(Status::unsupported_patch(&ALL_PATCH_TYPES)),
        }
    }
}

/// Parses a patch body: YAML for apply, JSON otherwise.
///
/// # Errors
/// 400 on a body that does not parse.
pub fn parse_body(pt: PatchType, body: &[u8]) -> Result<Value, Status> {
    let parsed = if pt == PatchType::Apply {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a patch to a copy of `doc`.
///
/// # Errors
/// 422/400 when a JSON patch operation fails.
pub fn apply(pt: PatchType, doc: &Value, patch: &Value) -> Result<Value, Status> {
    let mut out = doc.clone();
    match pt {
        PatchType::Merge | PatchType::Apply => json_patch::merge(&mut out, patch),
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut out, &ops).map_err(|e| Status::new(422, "Invalid", e.to_string()))?;
        }
        PatchType::Strategic => strategic(&mut out, patch),
    }
    Ok(out)
}

/// The merge key of a list field in built-in types (`patchMergeKey` in the Go types);
/// `None` means the list is replaced (atomic).
pub(crate) fn merge_key(field: &str, sample: &Value) -> Option<&'static str> {
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => {
            "name"
        }
        "resourceClaims" => "name",
        "ports" if sample.get("containerPort").is_some() => "containerPort",
        "ports" => "port",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Primitive lists merged as sets.
fn merged_primitive_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Strategic merge patch for built-in types: lists with a merge key are merged
/// element by element (`$patch: delete` removes an element), `$patch: replace` replaces
/// an object, `null` deletes a field, every other list is replaced. `$retainKeys`,
/// `$setElementOrder` and `$deleteFromPrimitiveList` are ignored.
pub fn strategic(target: &mut Value, patch: &Value) {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = p.clone();
        p.remove("$patch");
        *t = p;
        return;
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match (v, t.get_mut(k)) {
            (Value::Null, _) => {
                t.remove(k);
            }
            (Value::Array(items), Some(Value::Array(existing))) => {
                let key = items.first().or(existing.first()).and_then(|s| merge_key(k, s));
                match key {
                    Some(key) => merge_list(existing, items, key),
                    None if merged_primitive_list(k) => {
                        for i in items {
                            if !existing.contains(i) {
                                existing.push(i.clone());
                            }
                        }
                    }
                    None => *existing = items.clone(),
                }
            }
            (Value::Object(_), Some(existing @ Value::Object(_))) => strategic(existing, v),
            (Value::Object(_), _) => {
                let mut fresh = Value::Object(Default::default());
                strategic(&mut fresh, v);
                t.insert(k.clone(), fresh);
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let pos = existing.iter().position(|e| id.is_some() && e.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut existing[i], item),
            (None, false) => {
                let mut fresh = Value::Object(Default::default());
                strategic(&mut fresh, item);
                existing.push(fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strategic_merges_by_key() {
        let mut pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {
            "containers": [{"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]},
                           {"name": "side", "image": "s1"}],
            "tolerations": [{"key": "x"}]}});
        let patch = json!({"metadata": {"finalizers": ["b"]}, "spec": {
            "containers": [{"name": "app", "image": "v2", "env": [{"name": "B", "value": "2"}]},
                           {"name": "side", "$patch": "delete"}, {"name": "new", "image": "n"}],
            "tolerations": [{"key": "y"}]}});
        strategic(&mut pod, &patch);
        let c = &pod["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[0]["image"], "v2");
        assert_eq!(c[0]["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]));
        assert_eq!(c[1]["name"], "new");
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "y"}]));
        assert_eq!(pod["metadata"]["finalizers"], json!(["a", "b"]));
    }

    #[test]
    fn patch_types() {
        assert_eq!(PatchType::from_content_type("application/merge-patch+json").unwrap(), PatchType::Merge);
        assert_eq!(PatchType::from_content_type("text/plain").unwrap_err().code, 415);
        let doc = json!({"a": 1, "b": [1, 2]});
        let j = apply(PatchType::Json, &doc, &json!([{"op": "replace", "path": "/a", "value": 2}])).unwrap();
        assert_eq!(j["a"], 2);
        let m = apply(PatchType::Merge, &doc, &json!({"b": [3], "a": null})).unwrap();
        assert_eq!(m, json!({"b": [3]}));
        let bad = apply(PatchType::Json, &doc, &json!([{"op": "test", "path": "/a", "value": 9}]));
        assert_eq!(bad.unwrap_err().code, 422);
    }
}
