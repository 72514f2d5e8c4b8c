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
    registry, registry_reading,
    webhook::{Operation, Registry, cluster::Objects},
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

/// The pod the ContainerRecreateRequest example names, running both its containers.
fn example_pod() -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": "web-0", "uid": "uid-1"},
        "spec": {"nodeName": "node-a", "containers": [
            {"name": "app", "image": "nginx"}, {"name": "log-shipper", "image": "fluent-bit"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "app", "containerID": "containerd://a", "restartCount": 0, "ready": true,
             "image": "nginx", "imageID": ""},
            {"name": "log-shipper", "containerID": "containerd://b", "restartCount": 1, "ready": true,
             "image": "fluent-bit", "imageID": ""}]}
    }))
    .unwrap()
}

#[test]
fn a_status_block_on_create_and_update_is_accepted_for_every_kind() {
    let registry = registry_reading(std::sync::Arc::new(Objects::default().with(&example_pod())));
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
        if kind == "ContainerRecreateRequest" {
            // its spec is immutable, and the stored one has what was copied from the
            // pod: the update resends it
            sent = stored.clone();
            sent["status"] = json!({});
        }
        let updated = mutated(&registry, "UPDATE", &sent, Some(&stored));
        if let Some(resp) = answer(&registry, Operation::Validate, "UPDATE", &updated, Some(&stored)) {
            assert!(resp.allowed, "{kind} UPDATE: {}", resp.result.message);
        }
    }
}

/// The example in `file`, as a user sends it.
fn example(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(file);
    let mut object: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    object.as_object_mut().unwrap().remove("status");
    object
}

/// `object` created through both handlers: the stored object, or the denial.
fn create(registry: &Registry, object: &Value) -> Result<Value, String> {
    let Some(resp) = answer(registry, Operation::Mutate, "CREATE", object, None) else {
        return Ok(object.clone());
    };
    if !resp.allowed {
        return Err(resp.result.message);
    }
    let created = mutated(registry, "CREATE", object, None);
    match answer(registry, Operation::Validate, "CREATE", &created, None) {
        Some(resp) if !resp.allowed => Err(resp.result.message),
        _ => Ok(created),
    }
}

/// `value` at `pointer`, creating the objects on the way.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    for key in pointer.trim_start_matches('/').split('/') {
        let key = key.replace("~1", "/");
        at = match at {
            Value::Array(list) => &mut list[key.parse::<usize>().unwrap()],
            _ => {
                if !at.is_object() {
                    *at = json!({});
                }
                at.as_object_mut().unwrap().entry(key).or_insert(Value::Null)
            }
        };
    }
    *at = value;
}

/// An explicit `""` in a field OpenKruise reads as a string with named values is
/// unset, as in Go: its defaults fill it (`SetDefaults*`), or it is let through.
#[test]
fn an_empty_string_in_a_named_value_field_is_defaulted_or_let_through() {
    let registry = registry();
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("cloneset.yaml", "/spec/updateStrategy/type", Some("ReCreate")),
        ("daemonset.yaml", "/spec/updateStrategy/type", Some("RollingUpdate")),
        ("daemonset.yaml", "/spec/updateStrategy/rollingUpdate/rollingUpdateType", Some("Standard")),
        ("statefulset.yaml", "/spec/podManagementPolicy", Some("OrderedReady")),
        ("statefulset.yaml", "/spec/updateStrategy/type", Some("RollingUpdate")),
        ("statefulset.yaml", "/spec/updateStrategy/rollingUpdate/podUpdatePolicy", Some("ReCreate")),
        ("statefulset.yaml", "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted", Some("Retain")),
        ("statefulset.yaml", "/spec/persistentVolumeClaimRetentionPolicy/whenScaled", Some("Retain")),
        ("broadcastjob.yaml", "/spec/completionPolicy/type", Some("Always")),
        ("broadcastjob.yaml", "/spec/failurePolicy/type", Some("FailFast")),
        ("imagepulljob.yaml", "/spec/imagePullPolicy", Some("IfNotPresent")),
        ("sidecarset.yaml", "/spec/updateStrategy/type", Some("RollingUpdate")),
        ("sidecarset.yaml", "/spec/containers/0/podInjectPolicy", Some("BeforeAppContainer")),
        ("sidecarset.yaml", "/spec/containers/0/upgradeStrategy/upgradeType", Some("ColdUpgrade")),
        ("sidecarset.yaml", "/spec/containers/0/shareVolumePolicy/type", Some("disabled")),
        ("sidecarset.yaml", "/spec/patchPodMetadata/0/patchPolicy", Some("Retain")),
        ("sidecarset.yaml", "/spec/initContainers/0/shareVolumeDevicePolicy/type", None),
        ("uniteddeployment.yaml", "/spec/topology/scheduleStrategy/type", None),
        ("workloadspread.yaml", "/spec/scheduleStrategy/type", None),
    ];
    for (file, pointer, defaulted) in cases {
        let mut object = example(file);
        if *pointer == "/spec/podManagementPolicy" {
            // OrderedReady takes none of the example's Parallel-only settings
            object["spec"].as_object_mut().unwrap().remove("scaleStrategy");
            let rolling = object["spec"]["updateStrategy"]["rollingUpdate"].as_object_mut().unwrap();
            rolling.remove("unorderedUpdate");
            rolling.insert("maxUnavailable".into(), json!(1));
        }
        set(&mut object, pointer, json!(""));
        let stored = create(&registry, &object).unwrap_or_else(|e| panic!("{file} {pointer} = \"\": {e}"));
        match defaulted {
            Some(v) => assert_eq!(stored.pointer(pointer), Some(&json!(v)), "{file} {pointer}"),
            // kept as written, or dropped as Go's omitempty drops it
            None => {
                let kept = stored.pointer(pointer).and_then(Value::as_str);
                assert!(kept.is_none_or(str::is_empty), "{file} {pointer}: {kept:?}");
            }
        }
    }
}

/// Values OpenKruise's webhooks never check are the controllers' concern: admitted
/// as written.
#[test]
fn values_openkruise_never_checks_are_admitted() {
    let registry = registry();
    let cases: &[(&str, &str)] = &[
        ("broadcastjob.yaml", "/spec/failurePolicy/type"),
        ("broadcastjob.yaml", "/spec/completionPolicy/type"),
        ("imagepulljob.yaml", "/spec/imagePullPolicy"),
        ("imagelistpulljob.yaml", "/spec/imagePullPolicy"),
        ("advancedcronjob.yaml", "/spec/template/broadcastJobTemplate/spec/failurePolicy/type"),
        ("nodeimage.yaml", "/spec/images/registry.example.com~1library~1nginx/tags/0/imagePullPolicy"),
        ("sidecarset.yaml", "/spec/updateStrategy/type"),
        ("sidecarset.yaml", "/spec/containers/0/upgradeStrategy/upgradeType"),
        ("sidecarset.yaml", "/spec/patchPodMetadata/0/patchPolicy"),
        ("sidecarset.yaml", "/spec/initContainers/0/podInjectPolicy"),
        ("sidecarset.yaml", "/spec/initContainers/0/shareVolumePolicy/type"),
        ("sidecarset.yaml", "/spec/initContainers/0/shareVolumeDevicePolicy/type"),
        ("sidecarset.yaml", "/spec/containers/0/shareVolumeDevicePolicy/type"),
        ("uniteddeployment.yaml", "/spec/updateStrategy/type"),
        ("uniteddeployment.yaml", "/spec/template/cloneSetTemplate/spec/updateStrategy/type"),
        ("statefulset.yaml", "/spec/volumeClaimUpdateStrategy/type"),
        ("nodeimage.yaml", "/spec/images/registry.example.com~1library~1nginx/pullSecrets/0/mode"),
    ];
    for (file, pointer) in cases {
        let mut object = example(file);
        if pointer.ends_with("/mode") {
            object["apiVersion"] = json!("apps.kruise.io/v1beta1");
        }
        set(&mut object, pointer, json!("Sideways"));
        let stored = create(&registry, &object).unwrap_or_else(|e| panic!("{file} {pointer}: {e}"));
        assert_eq!(stored.pointer(pointer), Some(&json!("Sideways")), "{file} {pointer}");
    }
}
