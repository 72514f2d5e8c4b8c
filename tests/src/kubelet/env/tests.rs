use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web-0", "namespace": "ns1", "uid": "u-1",
                     "labels": {"app": "web"}, "annotations": {"note": "hi"}},
        "spec": {"nodeName": "node-a", "serviceAccountName": "sa",
                 "containers": [{"name": "app", "image": "img",
                   "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                   "env": []}]}
    }))
    .unwrap()
}

fn container(env: serde_json::Value) -> Container {
    serde_json::from_value(json!({"name": "app", "image": "img",
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
        "env": env}))
    .unwrap()
}

fn sources() -> EnvSources {
    EnvSources {
        node_name: "node-a".into(),
        host_ip: "10.0.0.1".into(),
        pod_ip: "10.234.0.7".into(),
        node_cpu: 4.0,
        node_memory: 8.0 * 1024.0 * 1024.0 * 1024.0,
        config_maps: HashMap::from([("cm".into(), BTreeMap::from([("k".into(), "from-cm".into())]))]),
        secrets: HashMap::from([("sec".into(), BTreeMap::from([("pw".into(), "s3cret".into())]))]),
    }
}

fn field(name: &str, path: &str) -> serde_json::Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

#[test]
fn resolves_every_field_ref() {
    let c = container(json!([
        field("NAME", "metadata.name"),
        field("NS", "metadata.namespace"),
        field("UID", "metadata.uid"),
        field("APP", "metadata.labels['app']"),
        field("NOTE", "metadata.annotations['note']"),
        field("NODE", "spec.nodeName"),
        field("SA", "spec.serviceAccountName"),
        field("POD_IP", "status.podIP"),
        field("HOST_IP", "status.hostIP"),
        field("MISSING", "metadata.labels['nope']"),
    ]));
    let env = resolve(&pod(), &c, &sources()).unwrap();
    let want = [
        ("NAME", "web-0"),
        ("NS", "ns1"),
        ("UID", "u-1"),
        ("APP", "web"),
        ("NOTE", "hi"),
        ("NODE", "node-a"),
        ("SA", "sa"),
        ("POD_IP", "10.234.0.7"),
        ("HOST_IP", "10.0.0.1"),
        ("MISSING", ""),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(env, want);
}

#[test]
fn resolves_resource_field_refs_with_divisors() {
    let r = |name: &str, res: &str, div: Option<&str>| {
        let mut v = json!({"name": name, "valueFrom": {"resourceFieldRef": {"resource": res}}});
        if let Some(d) = div {
            v["valueFrom"]["resourceFieldRef"]["divisor"] = json!(d);
        }
        v
    };
    let c = container(json!([
        r("CPU_LIMIT", "limits.cpu", None),
        r("CPU_LIMIT_M", "limits.cpu", Some("1m")),
        r("CPU_REQ_M", "requests.cpu", Some("1m")),
        r("MEM_LIMIT_MI", "limits.memory", Some("1Mi")),
        r("MEM_REQ", "requests.memory", None),
    ]));
    let env: HashMap<_, _> = resolve(&pod(), &c, &sources()).unwrap().into_iter().collect();
    assert_eq!(env["CPU_LIMIT"], "1");
    assert_eq!(env["CPU_LIMIT_M"], "500");
    assert_eq!(env["CPU_REQ_M"], "250");
    assert_eq!(env["MEM_LIMIT_MI"], "128");
    assert_eq!(env["MEM_REQ"], "134217728");

    // No limit: the node's allocatable.
    let bare: Container =
        serde_json::from_value(json!({"name": "b", "env": [r("C", "limits.cpu", None)]})).unwrap();
    assert_eq!(resolve(&pod(), &bare, &sources()).unwrap()[0].1, "4");
}

#[test]
fn reads_config_maps_and_secrets_and_reports_missing_ones() {
    let c = container(json!([
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
    ]));
    let env = resolve(&pod(), &c, &sources()).unwrap();
    assert_eq!(env, vec![("A".into(), "from-cm".into()), ("B".into(), "s3cret".into())]);

    let c = container(json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]));
    let err = resolve(&pod(), &c, &sources()).unwrap_err();
    assert_eq!(err.to_string(), "configmap \"gone\" not found");
    let c = container(json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope"}}}]));
    assert!(matches!(resolve(&pod(), &c, &sources()), Err(EnvError::MissingKey { .. })));
    assert_eq!(references(&c), (vec![], vec!["sec".to_owned()]));
}

#[test]
fn env_from_then_env_with_expansion() {
    let c: Container = serde_json::from_value(json!({"name": "app",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [{"name": "X", "value": "x"},
                {"name": "Y", "value": "$(X)-$(CM_k)-$(UNSET)-$$(X)"},
                {"name": "X", "value": "again"}]}))
    .unwrap();
    let env = resolve(&pod(), &c, &sources()).unwrap();
    assert_eq!(
        env,
        vec![
            ("CM_k".into(), "from-cm".into()),
            ("X".into(), "again".into()),
            ("Y".into(), "x-from-cm-$(UNSET)-$(X)".into()),
        ]
    );
}

#[test]
fn expansion_edge_cases() {
    let vars = HashMap::from([("A", "1")]);
    assert_eq!(expand("$(A)$A$$$(A", &vars), "1$A$$(A");
    assert_eq!(expand("plain", &vars), "plain");
    assert_eq!(expand("end$", &vars), "end$");
}
