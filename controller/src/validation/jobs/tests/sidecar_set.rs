//! SidecarSet rules.

use serde_json::{Value, json};

use super::*;

fn sidecar(name: &str) -> Value {
    json!({"name": name, "image": "proxy:1.0", "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
           "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File",
           "upgradeStrategy": {"upgradeType": "ColdUpgrade"},
           "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['app']"}}, "envName": "X"}]})
}

pub(super) fn sidecar_set_object() -> Value {
    json!({"metadata": {"name": "mesh"}, "spec": {
        "selector": {"matchLabels": {"mesh": "on"}},
        "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ops"]}]},
        "initContainers": [{"name": "init-mesh", "image": "init:1.0", "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePolicy": "File"}],
        "containers": [sidecar("proxy")],
        "volumes": [{"name": "certs", "secret": {"secretName": "c"}}],
        "updateStrategy": {"type": "RollingUpdate", "partition": "10%", "maxUnavailable": 2,
                           "priorityStrategy": {"weightPriority": [{"weight": 50, "matchSelector": {"matchLabels": {"a": "b"}}}]},
                           "scatterStrategy": [{"key": "zone", "value": "a"}]},
        "injectionStrategy": {"revision": {"customVersion": "v1", "policy": "Partial"}},
        "patchPodMetadata": [{"annotations": {"mesh.io/inject": "true"}, "patchPolicy": "Retain"}]}})
}

#[test]
fn sidecar_set_rules() {
    table(
        sidecar_set,
        &sidecar_set_object(),
        vec![
            |v| v["spec"].as_object_mut().unwrap().remove("containers").map(drop).unwrap(),
            |v| v["spec"]["initContainers"] = json!([]),
            |v| {
                v["spec"]["updateStrategy"] = json!({"type": "NotUpdate"});
                v["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
            },
            |v| {
                v["spec"]["updateStrategy"]["partition"] = json!(0);
                v["spec"]["updateStrategy"]["selector"] = json!({"matchLabels": {"canary": "true"}});
            },
            |v| {
                v["spec"]["containers"][0]["resourcesPolicy"] = json!({"targetContainersMode": "sum",
                    "resourcesExpr": {"limits": {"cpu": "cpu*50%"}}});
            },
        ],
        vec![
            (
                |v| v["metadata"]["name"] = json!("mesh.v2"),
                "metadata.name: Invalid value: \"mesh.v2\": must consist of alphanumeric characters or '-'",
            ),
            (
                |v| v["spec"].as_object_mut().unwrap().remove("selector").map(drop).unwrap(),
                "spec.selector: Required value",
            ),
            (
                |v| v["spec"]["selector"] = json!({}),
                "spec.selector: Invalid value: {}: an empty selector is not valid for a SidecarSet",
            ),
            (
                |v| v["spec"]["namespaceSelector"]["matchExpressions"][0]["operator"] = json!("Exists"),
                "spec.namespaceSelector.matchExpressions[0].values: Forbidden: Exists and DoesNotExist take no values",
            ),
            (
                |v| {
                    v["spec"]["containers"] = json!([]);
                    v["spec"]["initContainers"] = json!([]);
                },
                "spec: Required value: at least one container or init container",
            ),
            (
                |v| v["spec"]["containers"][0]["name"] = json!("init-mesh"),
                "spec.initContainers[0].name: Duplicate value: \"init-mesh\"",
            ),
            (
                |v| push(&mut v["spec"]["containers"], sidecar("proxy")),
                "spec.containers[1].name: Duplicate value: \"proxy\"",
            ),
            (
                |v| v["spec"]["volumes"][0]["name"] = json!("keys"),
                "spec.containers[0].volumeMounts[0].name: Not found: \"certs\"",
            ),
            (
                |v| v["spec"]["initContainers"][0]["restartPolicy"] = json!("Always"),
                "spec.updateStrategy: Required value: init containers with restartPolicy Always cannot be updated in place",
            ),
            (
                |v| {
                    v["spec"]["initContainers"][0]["resourcesPolicy"] =
                        json!({"targetContainersMode": "max", "resourcesExpr": {"requests": {}}})
                },
                "spec.initContainers[0].resourcesPolicy: Invalid value: {\"resourcesExpr\":{\"requests\":{}},\"targetContainersMode\":\"max\"}: is only supported on init containers with restartPolicy Always",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["resourcesPolicy"] =
                        json!({"targetContainersMode": "sum", "resourcesExpr": {"limits": {}}});
                    v["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
                },
                "spec.containers[0].resourcesPolicy: Invalid value: {\"resourcesExpr\":{\"limits\":{}},\"targetContainersMode\":\"sum\"}: resourcesPolicy and resources cannot be configured together",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["resourcesPolicy"] =
                        json!({"targetContainersMode": "sum", "resourcesExpr": {}})
                },
                "spec.containers[0].resourcesPolicy.resourcesExpr: Invalid value: {}: at least one of limits or requests must be configured",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["fieldPath"] =
                        json!("spec.nodeName")
                },
                "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath: Invalid value: \
                 \"spec.nodeName\": only metadata.labels['<key>'] and metadata.annotations['<key>'] are supported",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["fieldPath"] =
                        json!("metadata.name")
                },
                "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath: Invalid value: \
                 \"metadata.name\": only metadata.labels['<key>'] and metadata.annotations['<key>'] are supported",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["apiVersion"] =
                        json!("v2")
                },
                "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath: Invalid value: \
                 \"metadata.labels['app']\": unsupported pod API version \"v2\": only v1",
            ),
            (
                |v| {
                    v["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["fieldPath"] =
                        json!("metadata.labels['bad key']")
                },
                "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef: Invalid value: \"bad key\": name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character",
            ),
            (
                |v| v["spec"]["injectionStrategy"]["revision"] = json!({"policy": "Always"}),
                "spec.injectionStrategy.revision: Invalid value: {\"policy\":\"Always\"}: one of revisionName and customVersion is required",
            ),
            (
                |v| v["spec"]["updateStrategy"]["selector"] = json!({"matchLabels": {"canary": "true"}}),
                "spec.updateStrategy: Invalid value: {\"maxUnavailable\":2,\"partition\":\"10%\",\"priorityStrategy\":{\"weightPriority\":[{\"matchSelector\":{\"matchLabels\":{\"a\":\"b\"}},\"weight\":50}]},\"scatterStrategy\":[{\"key\":\"zone\",\"value\":\"a\"}],\"selector\":{\"matchLabels\":{\"canary\":\"true\"}},\"type\":\"RollingUpdate\"}: partition and selector cannot be used together",
            ),
            (
                |v| v["spec"]["updateStrategy"]["maxUnavailable"] = json!("12.5%"),
                "spec.updateStrategy.maxUnavailable: Invalid value: \"12.5%\": must be an integer or a whole percentage like \"25%\"",
            ),
            (
                |v| v["spec"]["updateStrategy"]["partition"] = json!(-1),
                "spec.updateStrategy.partition: Invalid value: -1: must be an integer or a whole percentage like \"25%\"",
            ),
            (
                |v| {
                    v["spec"]["updateStrategy"]["priorityStrategy"]["orderPriority"] =
                        json!([{"orderedKey": "k"}])
                },
                "spec.updateStrategy.priorityStrategy: Required value: only one of weightPriority and orderPriority may be set",
            ),
            (
                |v| {
                    v["spec"]["updateStrategy"]["priorityStrategy"]["weightPriority"][0]["weight"] =
                        json!(101)
                },
                "spec.updateStrategy.priorityStrategy: Required value: weightPriority[0].weight: 101 is not between 0 and 100",
            ),
            (
                |v| {
                    push(
                        &mut v["spec"]["updateStrategy"]["scatterStrategy"],
                        json!({"key": "zone", "value": "a"}),
                    )
                },
                "spec.updateStrategy.scatterStrategy: Required value: [1]: zone=a is listed twice",
            ),
            (
                |v| v["spec"]["patchPodMetadata"][0]["annotations"] = json!({}),
                "spec.patchPodMetadata[0].annotations: Required value: at least one annotation",
            ),
            (
                |v| {
                    v["spec"]["patchPodMetadata"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("patchPolicy")
                        .map(drop)
                        .unwrap()
                },
                "spec.patchPodMetadata[0].patchPolicy: Required value",
            ),
            (
                |v| {
                    push(
                        &mut v["spec"]["patchPodMetadata"],
                        json!({"annotations": {"mesh.io/inject": "false"}, "patchPolicy": "Overwrite"}),
                    )
                },
                "spec.patchPodMetadata[1].annotations: Required value: annotation \"mesh.io/inject\" is patched twice",
            ),
        ],
    );
    // NotUpdate skips the rolling-update rules
    let mut v = sidecar_set_object();
    v["spec"]["updateStrategy"] = json!({"type": "NotUpdate", "partition": "12.5%"});
    assert_eq!(check(sidecar_set, &v, None), Vec::<String>::new());
}

#[test]
fn sidecar_set_updates_keep_containers_and_upgrade_types() {
    let old = sidecar_set_object();
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("proxy:2.0");
    assert_eq!(check(sidecar_set, &new, Some(&old)), Vec::<String>::new());
    new["spec"]["containers"][0]["upgradeStrategy"]["upgradeType"] = json!("HotUpgrade");
    let mut extra = sidecar("logger");
    extra["volumeMounts"] = json!([]);
    push(&mut new["spec"]["containers"], extra);
    assert_eq!(
        check(sidecar_set, &new, Some(&old)),
        [
            "spec.containers[0].upgradeStrategy.upgradeType: Invalid value: \"proxy\": upgradeType may not change",
            "spec.containers[1].name: Invalid value: \"logger\": a new container: containers cannot be added"
        ]
    );
}
