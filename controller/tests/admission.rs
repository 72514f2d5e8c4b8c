//! Every example through the registry's admission handlers as kube-apiserver calls
//! them: the mutating handler first, with the object as the client sent it (status
//! included), then the validating handler on the patched object.

use std::path::PathBuf;

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};
use serde_json::{Value, json};
use stevedore_controller::{
    registry,
    webhook::{Operation, Registry},
};

fn examples() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| serde_yaml::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()).collect()
}

/// The request kube-apiserver sends for `object` (and `old`).
fn request(operation: &str, object: &Value, old: Option<&Value>) -> AdmissionRequest<DynamicObject> {
    let (group, version) = object["apiVersion"].as_str().unwrap().rsplit_once('/').unwrap();
    let kind = object["kind"].as_str().unwrap();
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "1", "operation": operation, "name": object["metadata"]["name"],
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "userInfo": {}, "object": object, "oldObject": old, "dryRun": false
        }
    }))
    .unwrap();
    review.try_into().unwrap()
}

/// The answer of the `op` handler for `object`'s kind, if it has one.
fn answer(
    registry: &Registry,
    op: Operation,
    operation: &str,
    object: &Value,
    old: Option<&Value>,
) -> Option<AdmissionResponse> {
    let (group, version) = object["apiVersion"].as_str().unwrap().rsplit_once('/').unwrap();
    let kind = object["kind"].as_str().unwrap();
    let route = registry.routes().into_iter().find(|r| {
        r.op == op && r.group == group && r.kind == kind && (r.version.is_empty() || r.version == version)
    })?;
    Some(registry.admission_handler(&route.path).unwrap().admit(&request(operation, object, old)))
}

/// `object` after the mutating handler's patch.
fn mutated(registry: &Registry, operation: &str, object: &Value, old: Option<&Value>) -> Value {
    let Some(resp) = answer(registry, Operation::Mutate, operation, object, old) else {
        return object.clone();
    };
    assert!(resp.allowed, "{} {operation}: {}", object["kind"], resp.result.message);
    let mut out = object.clone();
    if let Some(patch) = resp.patch {
        let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
        json_patch::patch(&mut out, &patch).unwrap();
    }
    out
}

#[test]
fn a_status_block_on_create_and_update_is_accepted_for_every_kind() {
    let registry = registry();
    for example in examples() {
        let kind = example["kind"].clone();
        let mut sent = example.clone();
        if kind == "ContainerRecreateRequest" {
            // The example is a request as stored; a user leaves out the read-only
            // fields the controller copies from the pod.
            for c in sent["spec"]["containers"].as_array_mut().unwrap() {
                c.as_object_mut().unwrap().retain(|k, _| k == "name");
            }
        }
        sent["status"] = json!({});
        let created = mutated(&registry, "CREATE", &sent, None);
        if let Some(resp) = answer(&registry, Operation::Validate, "CREATE", &created, None) {
            assert!(resp.allowed, "{kind} CREATE: {}", resp.result.message);
        }
        // as stored: kube-apiserver dropped the status
        let mut stored = created.clone();
        stored.as_object_mut().unwrap().remove("status");
        let updated = mutated(&registry, "UPDATE", &sent, Some(&stored));
        if let Some(resp) = answer(&registry, Operation::Validate, "UPDATE", &updated, Some(&stored)) {
            assert!(resp.allowed, "{kind} UPDATE: {}", resp.result.message);
        }
    }
}
