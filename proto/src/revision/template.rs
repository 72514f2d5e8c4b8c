//! What Go's struct marshal of a `corev1.PodTemplateSpec` adds to, or drops from, the
//! JSON that k8s-openapi's serialiser gives.
//!
//! k8s-openapi writes every field that is `Some` and leaves out every `None`. Go's
//! `encoding/json` differs in a few places that show up in revision data:
//!
//! - struct-valued fields are never omitted: `metadata`, `spec`,
//!   `metadata.creationTimestamp` (`null` when unset) and each container's
//!   `resources` (`{}` when unset);
//! - `spec.containers` has no `omitempty`, so an unset list is `null`;
//! - `omitempty` lists and maps that are empty are dropped, while the few lists
//!   without `omitempty` keep `[]`, and pointer-to-struct fields keep `{}`.
//!
//! Resource quantities are rewritten to Go's canonical text ([`super::quantity`]).
//!
//! Zero scalars (`false`, `0`, `""`) on plain (non-pointer) Go fields are left as
//! given: objects that went through the API server and OpenKruise's webhook never
//! carry them.

use serde_json::{Map, Value};

use super::quantity::{QuantityError, canonical};

/// Go slice fields reachable from a pod template that have no `omitempty`: an
/// empty one stays `[]`.
const KEPT_EMPTY_LISTS: &[&str] = &["containers", "sources", "monitors", "nodeSelectorTerms"];

/// Go map fields reachable from a pod template (all `omitempty`): an empty one is
/// dropped.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "nodeSelector",
    "limits",
    "requests",
    "overhead",
    "volumeAttributes",
    "matchLabels",
];

/// Container lists whose items each get `resources: {}` when unset.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Maps of quantities (Go `ResourceList`) in a pod template.
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "overhead"];
/// Single quantities in a pod template.
const QUANTITIES: &[&str] = &["sizeLimit", "divisor"];

/// Rewrites `template` (a serialised `PodTemplateSpec`) into Go's struct-marshal shape.
pub fn normalise_pod_template(template: &mut Value) -> Result<(), QuantityError> {
    canonical_quantities(template)?;
    let Value::Object(t) = template else {
        return Ok(());
    };
    let meta = t.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = meta {
        m.entry("creationTimestamp").or_insert(Value::Null);
    }
    let spec = t.entry("spec").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(s) = spec {
        s.entry("containers").or_insert(Value::Null);
        for list in CONTAINER_LISTS {
            if let Some(Value::Array(items)) = s.get_mut(*list) {
                for item in items {
                    if let Value::Object(c) = item {
                        c.entry("resources").or_insert_with(|| Value::Object(Map::new()));
                    }
                }
            }
        }
    }
    drop_empty(template);
    Ok(())
}

/// Rewrites every quantity at any depth to its canonical text.
pub(crate) fn canonical_quantities(value: &mut Value) -> Result<(), QuantityError> {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::Object(list) if QUANTITY_MAPS.contains(&key.as_str()) => {
                        for q in list.values_mut() {
                            if let Value::String(s) = q {
                                *s = canonical(s)?;
                            }
                        }
                    }
                    Value::String(s) if QUANTITIES.contains(&key.as_str()) => *s = canonical(s)?,
                    _ => canonical_quantities(v)?,
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                canonical_quantities(v)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Drops empty `omitempty` lists and maps, at every depth.
pub(crate) fn drop_empty(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| match v {
                Value::Array(a) if a.is_empty() => KEPT_EMPTY_LISTS.contains(&key.as_str()),
                Value::Object(o) if o.is_empty() => !MAP_FIELDS.contains(&key.as_str()),
                _ => true,
            });
            for v in map.values_mut() {
                drop_empty(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_only_fields_are_added() {
        let mut t = json!({});
        normalise_pod_template(&mut t).expect("normalise");
        assert_eq!(t, json!({"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}));

        let mut t = json!({"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}});
        normalise_pod_template(&mut t).expect("normalise");
        assert_eq!(t["spec"]["containers"][0]["resources"], json!({}));
        assert_eq!(t["spec"]["initContainers"][0]["resources"], json!({}));
    }

    #[test]
    fn quantities_become_canonical() {
        let mut t = json!({"spec": {
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1000m", "memory": "1024Mi"}},
                "env": [{"name": "E", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0.001"}}}]}],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "0.5Gi"}}],
            "overhead": {"cpu": "0.5"}
        }});
        normalise_pod_template(&mut t).expect("normalise");
        assert_eq!(t["spec"]["containers"][0]["resources"]["limits"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(
            t["spec"]["containers"][0]["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"],
            json!("1m")
        );
        assert_eq!(t["spec"]["volumes"][0]["emptyDir"]["sizeLimit"], json!("512Mi"));
        assert_eq!(t["spec"]["overhead"]["cpu"], json!("500m"));

        let mut bad =
            json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "lots"}}}]}});
        assert!(normalise_pod_template(&mut bad).is_err());
    }

    #[test]
    fn empty_omitempty_lists_and_maps_go_but_kept_ones_stay() {
        let mut t = json!({
            "metadata": {"labels": {}, "creationTimestamp": null},
            "spec": {
                "containers": [],
                "volumes": [],
                "nodeSelector": {},
                "securityContext": {},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
            }
        });
        normalise_pod_template(&mut t).expect("normalise");
        assert_eq!(
            t,
            json!({
                "metadata": {"creationTimestamp": null},
                "spec": {
                    "containers": [],
                    "securityContext": {},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
                }
            })
        );
    }
}
