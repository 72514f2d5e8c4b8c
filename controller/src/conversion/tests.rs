use serde_json::json;

use super::*;

fn example(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(file);
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn round_trip(kind: &str, file: &str) {
    let mut registry = Registry::default();
    register(&mut registry);
    let conv = registry.converter(APPS_GROUP, kind).unwrap();
    let a1 = example(file);
    let b1 = conv.convert(a1.clone(), "apps.kruise.io/v1beta1").unwrap();
    assert_eq!(b1["apiVersion"], "apps.kruise.io/v1beta1");
    let back = conv.convert(b1.clone(), "apps.kruise.io/v1alpha1").unwrap();
    assert_eq!(back, a1, "{kind}: a1 -> b1 -> a1 lost something");
    let again = conv.convert(back, "apps.kruise.io/v1beta1").unwrap();
    assert_eq!(again, b1, "{kind}: b1 -> a1 -> b1 lost something");
}

#[test]
fn same_field_kinds_round_trip_both_ways() {
    round_trip("BroadcastJob", "broadcastjob.yaml");
    round_trip("ImagePullJob", "imagepulljob.yaml");
    round_trip("ImageListPullJob", "imagelistpulljob.yaml");
}

#[test]
fn unknown_versions_and_invalid_objects_are_refused_with_the_reason() {
    let conv =
        SameFields::<broadcast_job::v1alpha1::BroadcastJob, broadcast_job::v1beta1::BroadcastJob>::new();
    let mut obj = example("broadcastjob.yaml");
    let err = conv.convert(obj.clone(), "apps.kruise.io/v2").unwrap_err();
    assert!(err.contains("cannot be converted"), "{err}");
    obj["spec"]["parallelism"] = Value::from(vec![1, 2]);
    let err = conv.convert(obj, "apps.kruise.io/v1beta1").unwrap_err();
    assert!(err.contains("is not a valid apps.kruise.io/v1alpha1"), "{err}");
}

// Kinds whose versions differ. Every case goes through the registry and the
// `Convert` trait, as the webhook server does. The cases are the example manifest
// (in both versions) and objects with every field set, generated from the CRD
// schema; each round trip must give back the object, changed only as OpenKruise's
// rules say (the `expect_*` functions below).

const A1: &str = "apps.kruise.io/v1alpha1";
const B1: &str = "apps.kruise.io/v1beta1";

fn converter(kind: &str) -> Arc<dyn Convert> {
    let mut registry = Registry::default();
    register(&mut registry);
    registry.converter(APPS_GROUP, kind).unwrap()
}

/// `object` converted to `via` and back.
fn trip(conv: &dyn Convert, object: &Value, via: &str) -> Value {
    let from = object["apiVersion"].as_str().unwrap();
    let there = conv.convert(object.clone(), via).unwrap();
    assert_eq!(there["apiVersion"], via);
    conv.convert(there, from).unwrap()
}

/// A value of `schema` with every property set; enums take their `pick`th value.
fn full(schema: &Value, pick: usize) -> Value {
    if schema["x-kubernetes-int-or-string"] == true {
        return if pick.is_multiple_of(2) { json!(3) } else { json!("25%") };
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
        return values[pick % values.len()].clone();
    }
    match schema["type"].as_str() {
        Some("object") => {
            let mut object = serde_json::Map::new();
            for (key, property) in schema["properties"].as_object().into_iter().flatten() {
                object.insert(key.clone(), full(property, pick));
            }
            if schema["additionalProperties"].is_object() {
                object.insert(format!("key-{pick}"), full(&schema["additionalProperties"], pick));
            }
            if object.is_empty() && schema["x-kubernetes-preserve-unknown-fields"] == true {
                // Schemaless: a name is all that volumes and containers need.
                object.insert("name".into(), json!(format!("name-{pick}")));
            }
            Value::Object(object)
        }
        Some("array") => json!([full(&schema["items"], pick)]),
        Some("string") if schema["format"] == "date-time" => json!("2026-01-02T03:04:05Z"),
        Some("string") => json!(format!("s{pick}")),
        Some("integer") => json!(pick + 1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => json!({"name": format!("name-{pick}")}),
    }
}

/// An object of `K` with every field set, as `K` writes it.
fn full_object<K>(pick: usize) -> Value
where
    K: kube::CustomResourceExt + Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    let crd = serde_json::to_value(K::crd()).unwrap();
    let mut object = full(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], pick);
    object["apiVersion"] = json!(K::api_version(&()));
    object["kind"] = json!(K::kind(&()));
    object["metadata"] = json!({
        "name": format!("full-{pick}"),
        "namespace": "shop",
        "uid": "0d2c4b8e-1f3a-4e5b-9c7d-6a8b0c2d4e6f",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "labels": {"app": "full"},
        "annotations": {"example.com/note": "kept"},
        "finalizers": ["example.com/guard"],
    });
    let typed: K = serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{}: {e}", K::kind(&())));
    let written = serde_json::to_value(typed).unwrap();
    for part in ["spec", "status"] {
        let keys = |v: &Value| v[part].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
        assert_eq!(keys(&written), keys(&object), "{} {part}: the generator missed a field", K::kind(&()));
    }
    written
}

/// The example in both versions, and full objects of each version.
fn cases<A, B>(conv: &dyn Convert, file: &str) -> (Vec<Value>, Vec<Value>)
where
    A: kube::CustomResourceExt + Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    B: kube::CustomResourceExt + Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    let example = example(file);
    let (a1, b1) = if example["apiVersion"] == A1 {
        let b1 = conv.convert(example.clone(), B1).unwrap();
        (example, b1)
    } else {
        let a1 = conv.convert(example.clone(), A1).unwrap();
        (a1, example)
    };
    let picks = 0..4;
    let alphas = std::iter::once(a1).chain(picks.clone().map(full_object::<A>)).collect();
    let betas = std::iter::once(b1).chain(picks.map(full_object::<B>)).collect();
    (alphas, betas)
}

fn remove(object: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    if let Some(parent) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
        parent.remove(key);
    }
}

#[test]
fn stateful_set_drops_only_what_v1alpha1_lacks() {
    let conv = converter("StatefulSet");
    let (alphas, betas) = cases::<
        stevedore_proto::crd::stateful_set::v1alpha1::StatefulSet,
        stevedore_proto::crd::stateful_set::v1beta1::StatefulSet,
    >(&*conv, "statefulset.yaml");
    for a1 in &alphas {
        assert_eq!(&trip(&*conv, a1, B1), a1);
    }
    let beta_only = [
        "/spec/volumeClaimUpdateStrategy",
        "/spec/reserveOrdinals",
        "/spec/lifecycle",
        "/spec/scaleStrategy",
        "/spec/persistentVolumeClaimRetentionPolicy",
        "/spec/ordinals",
        "/status/updatedReadyReplicas",
        "/status/updatedAvailableReplicas",
        "/status/volumeClaims",
    ];
    for b1 in &betas {
        for field in beta_only {
            assert!(b1.pointer(field).is_some(), "{field} unset in a case");
        }
        let mut expected = b1.clone();
        beta_only.iter().for_each(|f| remove(&mut expected, f));
        assert_eq!(trip(&*conv, b1, A1), expected);
    }
}

/// a1 → b1 → a1: the deprecated `Surging` comes back as `Standard`.
fn expect_daemon_set_up(a1: &Value) -> Value {
    let mut expected = a1.clone();
    if let Some(t) = expected.pointer_mut("/spec/updateStrategy/rollingUpdate/rollingUpdateType")
        && t == "Surging"
    {
        *t = json!("Standard");
    }
    expected
}

/// b1 → a1 → b1: `partitionedScaling: true` adds the annotation; the annotation
/// "true" means `partitionedScaling: true`, and anything else no scaleStrategy.
/// `Surging` (which v1beta1's schema still accepts) comes back as `Standard`.
fn expect_daemon_set_down(b1: &Value) -> Value {
    let mut expected = expect_daemon_set_up(b1);
    if b1.pointer("/spec/scaleStrategy/partitionedScaling") == Some(&json!(true)) {
        expected["metadata"]["annotations"][PROGRESSIVE_CREATE_POD_ANNOTATION] = json!("true");
    }
    if expected["metadata"]["annotations"][PROGRESSIVE_CREATE_POD_ANNOTATION] == "true" {
        expected["spec"]["scaleStrategy"] = json!({"partitionedScaling": true});
    } else {
        remove(&mut expected, "/spec/scaleStrategy");
    }
    expected
}

#[test]
fn daemon_set_maps_the_annotation_surging_and_the_hash() {
    let conv = converter("DaemonSet");
    let (alphas, betas) = cases::<
        stevedore_proto::crd::daemon_set::v1alpha1::DaemonSet,
        stevedore_proto::crd::daemon_set::v1beta1::DaemonSet,
    >(&*conv, "daemonset.yaml");
    // The schema takes any string there; give the full objects the named values.
    let mut alphas = alphas;
    for (a1, kind) in alphas.iter_mut().skip(1).zip(["Surging", "Standard", "InPlaceIfPossible", "Surging"]) {
        a1["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] = json!(kind);
    }
    assert!(
        alphas.iter().any(|a| a["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] == "Surging")
    );
    for a1 in &alphas {
        assert_eq!(trip(&*conv, a1, B1), expect_daemon_set_up(a1));
    }
    for b1 in &betas {
        assert_eq!(trip(&*conv, b1, A1), expect_daemon_set_down(b1));
    }

    // The example (a1) has the annotation, a hash and InPlaceIfPossible.
    let b1 = &betas[0];
    assert_eq!(b1["spec"]["scaleStrategy"], json!({"partitionedScaling": true}));
    assert_eq!(b1["metadata"]["annotations"][PROGRESSIVE_CREATE_POD_ANNOTATION], "true");
    assert_eq!(b1["status"]["updateRevision"], "6d5f8c9b7f");
    assert_eq!(b1["status"].get("daemonSetHash"), None);

    let mut surging = alphas[0].clone();
    surging["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] = json!("Surging");
    let b1 = conv.convert(surging, B1).unwrap();
    assert_eq!(b1["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"], "Standard");

    let mut plain = alphas[0].clone();
    plain["metadata"]["annotations"][PROGRESSIVE_CREATE_POD_ANNOTATION] = json!("false");
    let b1 = conv.convert(plain, B1).unwrap();
    assert_eq!(b1["spec"].get("scaleStrategy"), None);
}

/// a1 → b1 → a1: `namespace` comes back as the namespaceSelector it stands for
/// (replacing any other), and an empty custom-version label is lost.
fn expect_sidecar_set_up(a1: &Value) -> Value {
    let mut expected = a1.clone();
    if let Some(namespace) = a1["spec"]["namespace"].as_str().filter(|n| !n.is_empty()) {
        expected["spec"]["namespaceSelector"] = json!({"matchLabels": {(METADATA_NAME_LABEL): namespace}});
    }
    remove(&mut expected, "/spec/namespace");
    if a1["metadata"]["labels"][CUSTOM_VERSION_LABEL] == "" {
        remove(&mut expected, &format!("/metadata/labels/{}", CUSTOM_VERSION_LABEL.replace('/', "~1")));
    }
    expected
}

/// b1 → a1 → b1: a custom-version label in the labels gives way to spec.customVersion.
fn expect_sidecar_set_down(b1: &Value) -> Value {
    let mut expected = b1.clone();
    let label = format!("/metadata/labels/{}", CUSTOM_VERSION_LABEL.replace('/', "~1"));
    if let Some(version) = b1.pointer(&label) {
        if b1["spec"]["customVersion"].as_str().is_none_or(str::is_empty) {
            expected["spec"]["customVersion"] = version.clone();
        }
        remove(&mut expected, &label);
    }
    expected
}

#[test]
fn sidecar_set_maps_namespace_and_custom_version() {
    let conv = converter("SidecarSet");
    let (mut alphas, betas) = cases::<
        stevedore_proto::crd::sidecar_set::v1alpha1::SidecarSet,
        stevedore_proto::crd::sidecar_set::v1beta1::SidecarSet,
    >(&*conv, "sidecarset.yaml");
    let mut labelled = alphas[1].clone();
    labelled["metadata"]["labels"][CUSTOM_VERSION_LABEL] = json!("7");
    alphas.push(labelled);
    for a1 in &alphas {
        assert_eq!(trip(&*conv, a1, B1), expect_sidecar_set_up(a1));
    }
    for b1 in &betas {
        assert_eq!(trip(&*conv, b1, A1), expect_sidecar_set_down(b1));
    }

    // The example (a1) has a namespace, a namespaceSelector and the label.
    let b1 = &betas[0];
    assert_eq!(
        b1["spec"]["namespaceSelector"],
        json!({"matchLabels": {"kubernetes.io/metadata.name": "shop"}})
    );
    assert_eq!(b1["spec"]["customVersion"], "2");
    assert_eq!(b1["metadata"].get("labels"), None);
    let a1 = conv.convert(b1.clone(), A1).unwrap();
    assert_eq!(a1["metadata"]["labels"], json!({(CUSTOM_VERSION_LABEL): "2"}));
    assert_eq!(a1["spec"].get("namespace"), None);
}

#[test]
fn advanced_cron_job_refuses_an_image_list_pull_job_template_in_v1alpha1() {
    let conv = converter("AdvancedCronJob");
    let (alphas, betas) = cases::<
        stevedore_proto::crd::advanced_cron_job::v1alpha1::AdvancedCronJob,
        stevedore_proto::crd::advanced_cron_job::v1beta1::AdvancedCronJob,
    >(&*conv, "advancedcronjob.yaml");
    for a1 in &alphas {
        assert_eq!(&trip(&*conv, a1, B1), a1);
    }
    for b1 in &betas {
        let mut b1 = b1.clone();
        if b1["spec"]["template"].get("imageListPullJobTemplate").is_some() {
            let err = conv.convert(b1.clone(), A1).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "AdvancedCronJob {:?} cannot be expressed in apps.kruise.io/v1alpha1: \
                     spec.template.imageListPullJobTemplate is not supported in v1alpha1 \
                     (only v1beta1 cron jobs can create ImageListPullJobs)",
                    b1["metadata"]["name"].as_str().unwrap()
                )
            );
            remove(&mut b1, "/spec/template/imageListPullJobTemplate");
        }
        assert_eq!(trip(&*conv, &b1, A1), b1);
    }
}

#[test]
fn node_image_drops_the_pull_secrets_mode() {
    let conv = converter("NodeImage");
    let (alphas, mut betas) = cases::<
        stevedore_proto::crd::node_image::v1alpha1::NodeImage,
        stevedore_proto::crd::node_image::v1beta1::NodeImage,
    >(&*conv, "nodeimage.yaml");
    for a1 in &alphas {
        assert_eq!(&trip(&*conv, a1, B1), a1);
    }
    betas[0]["spec"]["images"]["registry.example.com/library/nginx"]["pullSecrets"][0]["mode"] =
        json!("batch");
    for b1 in &betas {
        let mut expected = b1.clone();
        let mut modes = 0;
        for image in expected["spec"]["images"].as_object_mut().unwrap().values_mut() {
            for secret in image.get_mut("pullSecrets").and_then(Value::as_array_mut).into_iter().flatten() {
                modes += usize::from(secret.as_object_mut().unwrap().remove("mode").is_some());
            }
        }
        assert!(modes > 0);
        assert_eq!(trip(&*conv, b1, A1), expected);
    }
}

#[test]
fn differing_kinds_refuse_unknown_versions_and_invalid_objects() {
    let conv = converter("DaemonSet");
    let obj = example("daemonset.yaml");
    let err = conv.convert(obj.clone(), "apps.kruise.io/v2").unwrap_err();
    assert_eq!(err, r#"DaemonSet cannot be converted from "apps.kruise.io/v1alpha1" to "apps.kruise.io/v2""#);
    assert_eq!(conv.convert(obj.clone(), A1).unwrap(), obj, "same version: unchanged");
    let mut bad = obj;
    bad["spec"]["minReadySeconds"] = json!("soon");
    let err = conv.convert(bad, B1).unwrap_err();
    assert!(
        err.starts_with(r#"DaemonSet "node-exporter" is not a valid apps.kruise.io/v1alpha1: "#),
        "{err}"
    );
}
