use serde_json::{Value, json};

use super::*;

fn node(name: &str, labels: Value, taints: Value, ready: bool) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"allocatable": {"pods": "2"},
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .unwrap()
}

fn pod(spec: Value) -> Pod {
    let mut s = json!({"containers": [{"name": "c"}]});
    s.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
    serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": s})).unwrap()
}

fn terms(exprs: Value, fields: Value) -> Value {
    json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": exprs, "matchFields": fields}]}}}})
}

#[test]
fn readiness_and_cordon() {
    let p = pod(json!({}));
    assert_eq!(fits(&p, &node("a", json!({}), json!([]), true), 0), Ok(()));
    assert_eq!(fits(&p, &node("a", json!({}), json!([]), false), 0), Err(Misfit::NotReady));
    let mut cordoned = node("a", json!({}), json!([]), true);
    cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
    assert_eq!(fits(&p, &cordoned, 0), Err(Misfit::NotReady));
}

#[test]
fn node_selector_and_node_name() {
    let n = node("a", json!({"disk": "ssd"}), json!([]), true);
    assert!(fits(&pod(json!({"nodeSelector": {"disk": "ssd"}})), &n, 0).is_ok());
    assert_eq!(fits(&pod(json!({"nodeSelector": {"disk": "hdd"}})), &n, 0), Err(Misfit::Affinity));
    assert_eq!(fits(&pod(json!({"nodeName": "b"})), &n, 0), Err(Misfit::NodeName));
}

#[test]
fn required_affinity_operators() {
    let n = node("a", json!({"zone": "z1", "gen": "5"}), json!([]), true);
    let ok = |exprs: Value| affinity_matches(&pod(terms(exprs, json!([]))), &n);
    assert!(ok(json!([{"key": "zone", "operator": "In", "values": ["z1", "z2"]}])));
    assert!(!ok(json!([{"key": "zone", "operator": "NotIn", "values": ["z1"]}])));
    assert!(ok(json!([{"key": "rack", "operator": "NotIn", "values": ["r1"]}])));
    assert!(ok(json!([{"key": "zone", "operator": "Exists"}])));
    assert!(ok(json!([{"key": "rack", "operator": "DoesNotExist"}])));
    assert!(!ok(json!([{"key": "zone", "operator": "DoesNotExist"}])));
    assert!(ok(json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])));
    assert!(!ok(json!([{"key": "gen", "operator": "Lt", "values": ["5"]}])));
    assert!(!ok(json!([{"key": "zone", "operator": "Gt", "values": ["4"]}])));
    // Expressions within a term are ANDed.
    assert!(!ok(json!([{"key": "zone", "operator": "Exists"}, {"key": "rack", "operator": "Exists"}])));
    // matchFields on metadata.name.
    let by_name = |op: &str| {
        affinity_matches(
            &pod(terms(json!([]), json!([{"key": "metadata.name", "operator": op, "values": ["a"]}]))),
            &n,
        )
    };
    assert!(by_name("In"));
    assert!(!by_name("NotIn"));
    // Terms are ORed; an empty term matches nothing.
    let two = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{}, {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}});
    assert!(affinity_matches(&pod(two), &n));
    let empty = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{}]}}}});
    assert!(!affinity_matches(&pod(empty), &n));
}

#[test]
fn taints_and_tolerations() {
    let taints = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                        {"key": "soft", "effect": "PreferNoSchedule"}]);
    let n = node("a", json!({}), taints, true);
    assert_eq!(fits(&pod(json!({})), &n, 0), Err(Misfit::Taint));
    let tol = |t: Value| fits(&pod(json!({"tolerations": [t]})), &n, 0);
    assert!(
        tol(json!({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"})).is_ok()
    );
    assert!(tol(json!({"key": "dedicated", "value": "gpu"})).is_ok());
    assert!(tol(json!({"key": "dedicated", "operator": "Exists"})).is_ok());
    assert!(tol(json!({"operator": "Exists"})).is_ok());
    assert!(tol(json!({"key": "dedicated", "value": "cpu"})).is_err());
    assert!(tol(json!({"key": "dedicated", "value": "gpu", "effect": "NoExecute"})).is_err());

    let no_exec = node("b", json!({}), json!([{"key": "x", "effect": "NoExecute"}]), true);
    assert_eq!(fits(&pod(json!({})), &no_exec, 0), Err(Misfit::Taint));
    assert!(
        fits(
            &pod(json!({"tolerations": [{"key": "x", "operator": "Exists", "effect": "NoExecute"}]})),
            &no_exec,
            0
        )
        .is_ok()
    );
}

#[test]
fn pod_count_and_spreading() {
    let n = node("a", json!({}), json!([]), true);
    assert_eq!(fits(&pod(json!({})), &n, 2), Err(Misfit::TooManyPods));

    let nodes: std::collections::BTreeMap<String, Node> = ["a", "b", "c"]
        .iter()
        .map(|name| (name.to_string(), node(name, json!({}), json!([]), true)))
        .collect();
    let counts =
        std::collections::HashMap::from([("a".to_string(), 1), ("b".to_string(), 0), ("c".to_string(), 1)]);
    assert_eq!(crate::scheduler::pick(&pod(json!({})), &nodes, &counts), Ok("b"));
    let full =
        std::collections::HashMap::from([("a".to_string(), 2), ("b".to_string(), 2), ("c".to_string(), 2)]);
    assert_eq!(
        crate::scheduler::pick(&pod(json!({})), &nodes, &full),
        Err("0/3 nodes are available: 3 TooManyPods.".to_string())
    );
}
