use serde_json::json;

use super::*;

fn round_trip(v: &Value) -> Value {
    decode(&encode(v).unwrap()).unwrap()
}

#[test]
fn layout_has_the_core_kinds_with_json_names() {
    let idx = index();
    let pod = &idx.messages["api.core.v1.Pod"];
    assert_eq!(pod.iter().map(|f| f.json.as_str()).collect::<Vec<_>>(), ["metadata", "spec", "status"]);
    let status = &idx.messages["api.core.v1.PodStatus"];
    assert!(status.iter().any(|f| f.json == "podIPs"), "acronyms keep their JSON spelling");
    assert!(status.iter().any(|f| f.json == "hostIP"));
    assert_eq!(idx.by_kind[&("apps/v1".to_string(), "Deployment".to_string())], "api.apps.v1.Deployment");
    assert_eq!(idx.by_kind[&("v1".to_string(), "PodList".to_string())], "api.core.v1.PodList");
}

#[test]
fn objects_round_trip() {
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "empty": ""},
                     "creationTimestamp": "2026-12-02T10:11:12Z", "generation": 3},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx",
                                         "ports": [{"containerPort": 80}],
                                         "resources": {"limits": {"cpu": "500m"}},
                                         "command": ["a", "b"]}],
                                       "securityContext": {"supplementalGroups": [1, 2]}}}},
    });
    assert_eq!(round_trip(&deploy), deploy);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "data": {"k": "aGVsbG8="}, "type": "Opaque"});
    assert_eq!(round_trip(&secret), secret);
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "xs.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "X", "plural": "xs"}, "scope": "Namespaced",
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"spec": {"type": "object", "additionalProperties": {"type": "string"},
                                             "default": {"a": 1}}}}}}]}});
    assert_eq!(round_trip(&crd), crd);
}

#[test]
fn go_zero_values_are_left_out_but_pointers_kept() {
    // What client-go sends for `kubectl create namespace shop`: every non-pointer
    // field, zero or not.
    let ns = k8s_pb::api::core::v1::Namespace {
        metadata: Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("shop".into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(Default::default()),
            ..Default::default()
        }),
        spec: Some(Default::default()),
        status: Some(k8s_pb::api::core::v1::NamespaceStatus {
            phase: Some(String::new()),
            conditions: vec![],
        }),
    };
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Namespace".into()),
        }),
        raw: Some(ns.encode_to_vec()),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}, "spec": {}, "status": {}})
    );
    assert_eq!(decode(b"nope").unwrap_err().code, 400);
}

#[test]
fn durations_as_go_prints_them() {
    for (ns, s) in [
        (0, "0s"),
        (1_500_000_000, "1.5s"),
        (3_600_000_000_000, "1h0m0s"),
        (90_000_000_000, "1m30s"),
        (1_500_000, "1.5ms"),
        (2_000, "2µs"),
        (-5_000_000_000, "-5s"),
    ] {
        assert_eq!(special::go_duration(ns), s);
        assert_eq!(special::parse_go_duration(s), Some(ns), "{s}");
    }
}
