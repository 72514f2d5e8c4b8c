//! The pod checks, one Kubernetes rule at a time.

use serde_json::{Value, json};

use super::*;
use crate::validation::rules::tests::fields;

/// The errors of `template` as a CloneSet's.
fn check(template: Value) -> Vec<String> {
    let t: PodTemplateSpec = serde_json::from_value(template).unwrap();
    let mut errors = Vec::new();
    workload_template("spec.template", &t, &[], &mut errors);
    fields(&errors)
}

/// A valid template with `spec` merged into the one container's.
fn with_container(container: Value) -> Value {
    let mut c = json!({"name": "app", "image": "nginx:1.27"});
    json_patch::merge(&mut c, &container);
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}})
}

fn starts(got: &[String], want: &[&str]) {
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.starts_with(w), "{g}\n  does not start with\n{w}");
    }
}

#[test]
fn a_defaulted_template_passes() {
    assert_eq!(check(with_container(json!({}))), Vec::<String>::new());
    let rich = with_container(json!({
        "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 9090, "hostPort": 9090}],
        "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k.1"}}}],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "128Mi"}},
        "livenessProbe": {"httpGet": {"port": "http"}}, "readinessProbe": {"tcpSocket": {"port": 80}},
        "startupProbe": {"exec": {"command": ["true"]}},
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "x"}]
    }));
    let mut rich = rich;
    rich["spec"]["volumes"] =
        json!([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]);
    rich["spec"]["initContainers"] = json!([{"name": "side", "image": "envoy", "restartPolicy": "Always",
                                             "readinessProbe": {"grpc": {"port": 9000}}}]);
    assert_eq!(check(rich), Vec::<String>::new());
}

#[test]
fn template_labels_and_annotations() {
    let mut t = with_container(json!({}));
    t["metadata"]["labels"]["bad key"] = json!("v");
    t["metadata"]["annotations"] = json!({"Example.com/Ok": "x", "no good/key/x": "y"});
    starts(
        &check(t),
        &[
            "spec.template.labels: Invalid value: \"bad key\"",
            "spec.template.annotations: Invalid value: \"no good/key/x\"",
        ],
    );
}

#[test]
fn container_names_images_and_policies() {
    let t = json!({"spec": {
        "initContainers": [{"name": "app", "image": "busybox", "restartPolicy": "Never"}],
        "containers": [{"name": "app", "image": "nginx"}, {"name": "app", "image": "", "imagePullPolicy": "Sometimes",
                        "terminationMessagePolicy": "Loud", "restartPolicy": "Always"}, {"name": "Bad_1", "image": " "}],
        "restartPolicy": "OnFailure", "dnsPolicy": "Nearby", "activeDeadlineSeconds": 10
    }});
    starts(
        &check(t),
        &[
            "spec.template.spec.containers[1].image: Required value",
            "spec.template.spec.containers[1].terminationMessagePolicy: Unsupported value: \"Loud\"",
            "spec.template.spec.containers[1].imagePullPolicy: Unsupported value: \"Sometimes\"",
            "spec.template.spec.containers[1].name: Duplicate value: \"app\"",
            "spec.template.spec.containers[1].restartPolicy: Forbidden",
            "spec.template.spec.containers[2].name: Invalid value: \"Bad_1\"",
            "spec.template.spec.initContainers[0].restartPolicy: Unsupported value: \"Never\"",
            "spec.template.spec.initContainers[0].name: Duplicate value: \"app\"",
            "spec.template.spec.dnsPolicy: Unsupported value: \"Nearby\"",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            "spec.template.spec.activeDeadlineSeconds: Forbidden",
        ],
    );
}

#[test]
fn ports_in_range_and_unique() {
    let t = with_container(json!({"ports": [
        {"name": "http", "containerPort": 80, "hostPort": 8080},
        {"name": "http", "containerPort": 70000},
        {"name": "Web--1", "containerPort": 0, "protocol": "ICMP"},
        {"containerPort": 81, "hostPort": 8080}
    ]}));
    starts(
        &check(t),
        &[
            "spec.template.spec.containers[0].ports[1].name: Duplicate value: \"http\"",
            "spec.template.spec.containers[0].ports[1].containerPort: Invalid value: 70000",
            "spec.template.spec.containers[0].ports[2].name: Invalid value: \"Web--1\"",
            "spec.template.spec.containers[0].ports[2].containerPort: Required value",
            "spec.template.spec.containers[0].ports[2].protocol: Unsupported value: \"ICMP\"",
            "spec.template.spec.containers[0].ports[3].hostPort: Duplicate value: \"TCP//8080\"",
        ],
    );
}

#[test]
fn env_names_and_sources() {
    let t = with_container(json!({"env": [
        {"name": "1ST"},
        {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "B", "valueFrom": {}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"},
                                    "configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "D", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a/b"}}}
    ], "envFrom": [{"prefix": "9x", "configMapRef": {"name": "c"}, "secretRef": {"name": "s"}}]}));
    starts(
        &check(t),
        &[
            "spec.template.spec.containers[0].env[0].name: Invalid value: \"1ST\"",
            "spec.template.spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.template.spec.containers[0].env[2].valueFrom: Invalid value: \"\": must specify one of",
            "spec.template.spec.containers[0].env[3].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\"",
            "spec.template.spec.containers[0].env[3].valueFrom: Invalid value: \"\": may not have more than one field",
            "spec.template.spec.containers[0].env[4].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\"",
            "spec.template.spec.containers[0].env[5].valueFrom.secretKeyRef.key: Invalid value: \"a/b\"",
            "spec.template.spec.containers[0].envFrom[0].prefix: Invalid value: \"9x\"",
            "spec.template.spec.containers[0].envFrom[0]: Invalid value: \"\": may not have more than one field",
        ],
    );
}

#[test]
fn probes_and_lifecycle_take_exactly_one_handler() {
    let t = with_container(json!({
        "livenessProbe": {"exec": {"command": ["true"]}, "httpGet": {"port": 80}, "successThreshold": 2},
        "readinessProbe": {"periodSeconds": -1},
        "startupProbe": {"httpGet": {"port": 0, "scheme": "FTP"}},
        "lifecycle": {"postStart": {}, "preStop": {"exec": {}}}
    }));
    starts(
        &check(t),
        &[
            "spec.template.spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
            "spec.template.spec.containers[0].lifecycle.preStop.exec.command: Required value",
            "spec.template.spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
            "spec.template.spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.template.spec.containers[0].readinessProbe: Required value: must specify a handler type",
            "spec.template.spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1",
            "spec.template.spec.containers[0].startupProbe.httpGet.port: Invalid value: 0",
            "spec.template.spec.containers[0].startupProbe.httpGet.scheme: Unsupported value: \"FTP\"",
        ],
    );
}

#[test]
fn resources_requests_at_most_limits() {
    let t = with_container(
        json!({"resources": {"requests": {"cpu": "2", "memory": "1Gx"}, "limits": {"cpu": "1"}}}),
    );
    starts(
        &check(t),
        &[
            "spec.template.spec.containers[0].resources.requests[memory]: Invalid value: \"1Gx\": must be a number with an optional unit suffix",
            "spec.template.spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        ],
    );
}

#[test]
fn volumes_and_mounts() {
    let mut t = with_container(json!({"volumeMounts": [
        {"name": "missing", "mountPath": "/a"}, {"name": "data", "mountPath": "/a"},
        {"name": "data", "mountPath": "/b", "subPath": "../x"}, {"name": "two", "mountPath": "/c"}
    ]}));
    t["spec"]["volumes"] = json!([
        {"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}},
        {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}},
        {"name": "cfg", "configMap": {"name": "", "defaultMode": 4095}},
        {"name": "Bad", "secret": {"secretName": "s"}}
    ]);
    starts(
        &check(t),
        &[
            "spec.template.spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.template.spec.volumes[2].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.template.spec.volumes[3].configMap.name: Required value",
            "spec.template.spec.volumes[3].configMap.defaultMode: Invalid value: 4095",
            "spec.template.spec.volumes[4].name: Invalid value: \"Bad\"",
            "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
            "spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
            "spec.template.spec.containers[0].volumeMounts[2].subPath: Invalid value: \"../x\": must not contain '..'",
            "spec.template.spec.containers[0].volumeMounts[3].name: Not found: \"two\"",
        ],
    );
}

#[test]
fn claim_templates_count_as_volumes_and_stateful_sets_check_metadata_only() {
    let t: PodTemplateSpec = serde_json::from_value(with_container(
        json!({"volumeMounts": [{"name": "data", "mountPath": "/d"}]}),
    ))
    .unwrap();
    let mut errors = Vec::new();
    workload_template("spec.template", &t, &["data".to_owned()], &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let bad: PodTemplateSpec =
        serde_json::from_value(json!({"metadata": {"labels": {"a": "b c"}}, "spec": {"containers": []}}))
            .unwrap();
    metadata("spec.template", &bad, &mut errors);
    starts(&fields(&errors), &["spec.template.labels: Invalid value: \"b c\""]);
}

#[test]
fn sidecars_are_checked_as_a_pod() {
    let c = |v: Value| -> Container { serde_json::from_value(v).unwrap() };
    let mut errors = Vec::new();
    sidecar_containers(&[], &[], &[], &mut errors);
    assert!(errors.is_empty(), "a set of init containers only gets a stand-in app container");
    let init = [c(
        json!({"name": "init", "image": "busybox", "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"}),
    )];
    let app = [c(
        json!({"name": "init", "image": " envoy", "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File",
                        "ports": [{"containerPort": 99999, "protocol": "TCP"}]}),
    )];
    sidecar_containers(&init, &app, &[], &mut errors);
    starts(
        &fields(&errors),
        &[
            "spec.containers[0].ports[0].containerPort: Invalid value: 99999",
            "spec.initContainers[0].name: Duplicate value: \"init\"",
            "spec.containers[0].image: Invalid value: \" envoy\": must not have leading or trailing whitespace",
        ],
    );
}
