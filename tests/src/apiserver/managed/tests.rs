use serde_json::json;

use super::*;
use crate::apiserver::openapi::builtin::catalog;

fn pod_shape() -> Shape<'static> {
    let c = catalog();
    Shape::builtin(c.definitions.get("io.k8s.api.core.v1.Pod"), &c.definitions)
}

fn cm_shape() -> Shape<'static> {
    let c = catalog();
    Shape::builtin(c.definitions.get("io.k8s.api.core.v1.ConfigMap"), &c.definitions)
}

fn mgr(name: &str) -> Manager {
    Manager { name: name.into(), api_version: "v1".into(), subresource: String::new() }
}

const CM: Qualified<'static> = Qualified { group: "", resource: "configmaps" };

fn managers(o: &Value) -> Vec<(String, String)> {
    o["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["manager"].as_str().unwrap().to_string(), e["operation"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn create_records_every_field_with_list_items_by_key() {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}});
    record_update(None, &mut pod, &mgr("kubectl-create"), pod_shape());
    let f = &pod["metadata"]["managedFields"][0];
    assert_eq!((f["manager"].clone(), f["operation"].clone()), (json!("kubectl-create"), json!("Update")));
    assert_eq!(
        f["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
               "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
    );
}

#[test]
fn apply_conflicts_force_and_removal() {
    let shape = cm_shape();
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let created = apply(None, &cfg, &mgr("alice"), false, shape, CM, "c").unwrap();
    assert_eq!(managers(&created), [("alice".into(), "Apply".into())]);
    // Bob edits a with an update: he owns it now.
    let mut edited = created.clone();
    edited["data"]["a"] = json!("9");
    record_update(Some(&created), &mut edited, &mgr("bob"), shape);
    assert_eq!(managers(&edited).len(), 2);
    // Alice applies a=1 again: conflict with bob.
    let e = apply(Some(&edited), &cfg, &mgr("alice"), false, shape, CM, "c").unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (409, "Apply failed with 1 conflict: conflict with \"bob\" using v1: .data.a")
    );
    // The same value is shared, not a conflict.
    let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "9", "b": "2"}});
    assert!(apply(Some(&edited), &same, &mgr("alice"), false, shape, CM, "c").is_ok());
    // Forced: alice takes a back; then applies without b, which nobody else owns: gone.
    let forced = apply(Some(&edited), &cfg, &mgr("alice"), true, shape, CM, "c").unwrap();
    assert_eq!(forced["data"]["a"], "1");
    let only_a =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let trimmed = apply(Some(&forced), &only_a, &mgr("alice"), false, shape, CM, "c").unwrap();
    assert_eq!(trimmed["data"], json!({"a": "1"}));
}

#[test]
fn fields_another_manager_owns_survive_removal() {
    let shape = cm_shape();
    let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1"}});
    let live = apply(None, &v1, &mgr("alice"), false, shape, CM, "c").unwrap();
    let also =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}});
    let live = apply(Some(&live), &also, &mgr("bob"), false, shape, CM, "c").unwrap();
    let without_label =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let out = apply(Some(&live), &without_label, &mgr("alice"), false, shape, CM, "c").unwrap();
    assert_eq!(out["metadata"]["labels"]["x"], "1", "bob applies it too");
}

#[test]
fn crd_list_types() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                  "items": {"type": "object"}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}}}}}});
    let shape = Shape::custom(&schema, &catalog().definitions);
    let w = Qualified { group: "x", resource: "ws" };
    let a = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
                   "spec": {"ports": [{"port": 1, "n": "a"}], "tags": ["t1"], "args": ["x"]}});
    let live = apply(None, &a, &mgr("alice"), false, shape, w, "w").unwrap();
    let b = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
                   "spec": {"ports": [{"port": 2, "n": "b"}], "tags": ["t2"]}});
    let out = apply(Some(&live), &b, &mgr("bob"), false, shape, w, "w").unwrap();
    assert_eq!(out["spec"]["ports"], json!([{"port": 1, "n": "a"}, {"port": 2, "n": "b"}]));
    assert_eq!(out["spec"]["tags"], json!(["t1", "t2"]));
    assert_eq!(out["spec"]["args"], json!(["x"]));
    let fields = &out["metadata"]["managedFields"][1]["fieldsV1"];
    assert_eq!(
        fields,
        &json!({"f:spec": {"f:ports": {"k:{\"port\":2}": {".": {}, "f:n": {}, "f:port": {}}},
                                           "f:tags": {"v:\"t2\"": {}}}})
    );
}
