//! WorkloadSpread rules.

use serde_json::{Value, json};

use super::*;

pub(super) fn ws() -> Value {
    json!({"metadata": {"name": "spread", "namespace": "shop"}, "spec": {
    "targetRef": {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "web"},
    "targetFilter": {"selector": {"matchLabels": {"tier": "front"}}},
    "subsets": [
        {"name": "zone-a", "maxReplicas": "40%",
         "requiredNodeSelectorTerm": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
         "preferredNodeSelectorTerms": [{"weight": 10, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}],
         "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]},
        {"name": "zone-b", "maxReplicas": "60%"}
    ]}})
}

#[test]
fn workload_spread_rules() {
    table(
        workload_spread,
        &ws(),
        vec![
            |v| {
                v["spec"]["targetRef"] = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
            },
            |v| v["spec"]["targetRef"] = json!({"apiVersion": "batch/v1", "kind": "Job", "name": "web"}),
            |v| {
                v["spec"]["targetRef"] =
                    json!({"apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet", "name": "w"});
                v["spec"]["subsets"][0]["maxReplicas"] = json!(2);
                v["spec"]["subsets"][1]["maxReplicas"] = json!(2);
            },
            |v| {
                v["spec"]["subsets"][0]["maxReplicas"] = json!(3);
                v["spec"]["subsets"][1]["maxReplicas"] = json!(5);
            },
            |v| {
                v["spec"]["subsets"][0]["maxReplicas"] = json!("30%");
                v["spec"]["subsets"][1].as_object_mut().unwrap().remove("maxReplicas");
                v["spec"]["scheduleStrategy"] =
                    json!({"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 295}});
            },
        ],
        vec![
            (
                |v| v["spec"]["targetRef"]["name"] = json!(""),
                "spec.targetRef: Invalid value: {\"apiVersion\":\"apps.kruise.io/v1alpha1\",\"kind\":\"CloneSet\",\"name\":\"\"}: apiVersion, kind and name are required",
            ),
            (
                |v| v["spec"]["targetRef"]["kind"] = json!("DaemonSet"),
                "spec.targetRef: Invalid value: {\"apiVersion\":\"apps.kruise.io/v1alpha1\",\"kind\":\"DaemonSet\",\"name\":\"web\"}: the target's kind is not supported",
            ),
            (
                |v| v["spec"]["targetRef"]["apiVersion"] = json!("apps/v1"),
                "spec.targetRef: Invalid value: {\"apiVersion\":\"apps/v1\",\"kind\":\"CloneSet\",\"name\":\"web\"}: not a valid reference to a CloneSet",
            ),
            (|v| v["spec"]["subsets"] = json!([]), "spec.subsets: Required value: at least one subset"),
            (
                |v| v["spec"]["subsets"][1]["name"] = json!(""),
                "spec.subsets[1].name: Invalid value: \"\": must not be empty",
            ),
            (
                |v| v["spec"]["subsets"][1]["name"] = json!("zone-a"),
                "spec.subsets[1].name: Invalid value: \"zone-a\": duplicate subset name",
            ),
            (
                |v| {
                    let term =
                        &mut v["spec"]["subsets"][0]["requiredNodeSelectorTerm"]["matchExpressions"][0];
                    term["operator"] = json!("Gt");
                    term["values"] = json!(["1", "2"]);
                },
                "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].values: Required value: Gt and Lt take one value",
            ),
            (
                |v| v["spec"]["subsets"][0]["preferredNodeSelectorTerms"][0]["weight"] = json!(0),
                "spec.subsets[0].preferredNodeSelectorTerms[0].weight: Invalid value: 0: must be in the range 1-100",
            ),
            (
                |v| v["spec"]["subsets"][0]["tolerations"][0]["operator"] = json!("Exists"),
                "spec.subsets[0].tolerations[0].operator: Invalid value: {\"effect\":\"NoSchedule\",\"key\":\"dedicated\",\"operator\":\"Exists\",\"value\":\"web\"}: value must be empty with Exists",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!(6),
                "spec.subsets[1].maxReplicas: Invalid value: 6: all subsets' maxReplicas must be of the same type",
            ),
            (
                |v| {
                    v["spec"]["targetRef"] =
                        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "w"})
                },
                "spec.subsets[0].maxReplicas: Invalid value: \"40%\": must be an integer for a StatefulSet",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!("61%"),
                "spec.subsets[1].maxReplicas: Invalid value: \"61%\": the subsets' maxReplicas add up to more than 100%",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!("50%"),
                "spec.subsets[0].maxReplicas: Invalid value: 90: percentages must add up to 100% when the last subset sets one",
            ),
            (
                |v| v["spec"]["subsets"][1]["maxReplicas"] = json!("12.5%"),
                "spec.subsets[1].maxReplicas: Invalid value: \"12.5%\": \"12.5%\" must be a whole percentage like \"25%\"",
            ),
            (
                |v| {
                    v["spec"]["subsets"][1].as_object_mut().unwrap().remove("maxReplicas");
                    v["spec"]["scheduleStrategy"] = json!({"type": "Fixed", "adaptive": {}});
                },
                "spec.scheduleStrategy.type: Invalid value: null: must be Adaptive to use an adaptive strategy",
            ),
            (
                |v| v["spec"]["scheduleStrategy"] = json!({"type": "Adaptive", "adaptive": {}}),
                "spec.scheduleStrategy.adaptive: Invalid value: null: the last subset must not set maxReplicas under an adaptive strategy",
            ),
            (
                |v| {
                    v["spec"]["subsets"][0]["maxReplicas"] = json!("30%");
                    v["spec"]["subsets"][1].as_object_mut().unwrap().remove("maxReplicas");
                    v["spec"]["scheduleStrategy"] =
                        json!({"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 296}});
                },
                "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds: Invalid value: 296: must be within 0..=295",
            ),
            (
                |v| v["spec"]["targetFilter"]["selector"] = json!({"matchLabels": {"bad key": "x"}}),
                "spec.targetFilter.selector.matchLabels: Invalid value: \"bad key\": name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character",
            ),
        ],
    );
    let old = ws();
    let mut new = old.clone();
    new["spec"]["targetRef"]["apiVersion"] = json!("apps.kruise.io/v1beta1");
    assert_eq!(
        check(workload_spread, &new, Some(&old)),
        Vec::<String>::new(),
        "a version change keeps the group"
    );
    new["spec"]["targetRef"]["name"] = json!("api");
    assert_eq!(check(workload_spread, &new, Some(&old)), ["spec.targetRef: Forbidden: may not change"]);
}
