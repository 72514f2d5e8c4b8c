use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use super::*;

fn schema(v: Value) -> JSONSchemaProps {
    serde_json::from_value(v).expect("schema")
}

fn errors(s: &Value, v: Value) -> Vec<String> {
    validate(&schema(s.clone()), &v).iter().map(ToString::to_string).collect()
}

fn spec(props: Value) -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
}

#[test]
fn type_errors_render_like_kube_apiserver() {
    let s = spec(json!({"replicas": {"type": "integer", "format": "int32"}}));
    assert!(errors(&s, json!({"spec": {"replicas": 3}})).is_empty());
    assert!(errors(&s, json!({"spec": {"replicas": 3.0}})).is_empty(), "a whole float is an integer");
    assert_eq!(
        errors(&s, json!({"spec": {"replicas": "3"}})),
        [
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"replicas": null}})),
        [r#"spec.replicas: Invalid value: "null": spec.replicas in body must be of type integer: "null""#]
    );
    for (ty, good, bad, bad_name) in [
        ("string", json!("a"), json!(1), "integer"),
        ("boolean", json!(true), json!("true"), "string"),
        ("number", json!(1.5), json!(false), "boolean"),
        ("array", json!([]), json!({}), "object"),
        ("object", json!({}), json!([]), "array"),
    ] {
        let s = spec(json!({"f": {"type": ty}}));
        assert!(errors(&s, json!({"spec": {"f": good}})).is_empty(), "{ty}");
        assert_eq!(
            errors(&s, json!({"spec": {"f": bad}})),
            [format!(
                r#"spec.f: Invalid value: "{bad_name}": spec.f in body must be of type {ty}: "{bad_name}""#
            )]
        );
    }
}

#[test]
fn nullable_and_int_or_string() {
    let s =
        spec(json!({"n": {"type": "string", "nullable": true}, "p": {"x-kubernetes-int-or-string": true}}));
    assert!(errors(&s, json!({"spec": {"n": null, "p": 1}})).is_empty());
    assert!(errors(&s, json!({"spec": {"p": "50%"}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"p": true}})),
        [r#"spec.p: Invalid value: "boolean": spec.p in body must be of type integer,string: "boolean""#]
    );
}

#[test]
fn required_and_enum() {
    let s = json!({"type": "object", "required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["selector"],
        "properties": {"selector": {"type": "object"}, "policy": {"type": "string", "enum": ["Always", "Never"]}}}}});
    assert_eq!(errors(&s, json!({})), ["spec: Required value"]);
    assert_eq!(errors(&s, json!({"spec": {}})), ["spec.selector: Required value"]);
    assert!(errors(&s, json!({"spec": {"selector": {}, "policy": "Never"}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"selector": {}, "policy": "Sometimes"}})),
        [r#"spec.policy: Unsupported value: "Sometimes": supported values: "Always", "Never""#]
    );
    let n = spec(json!({"level": {"type": "integer", "enum": [1, 2]}}));
    assert!(errors(&n, json!({"spec": {"level": 2}})).is_empty());
    assert_eq!(
        errors(&n, json!({"spec": {"level": 3}})),
        [r#"spec.level: Unsupported value: 3: supported values: "1", "2""#]
    );
}

#[test]
fn numbers_ranges_and_formats() {
    let s = spec(json!({
        "r": {"type": "integer", "minimum": 0, "maximum": 10},
        "x": {"type": "integer", "minimum": 0, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true},
        "m": {"type": "number", "multipleOf": 0.5},
        "i32": {"type": "integer", "format": "int32"},
    }));
    assert!(errors(&s, json!({"spec": {"r": 0, "x": 5, "m": 1.5, "i32": 2147483647}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"r": 11}})),
        ["spec.r: Invalid value: 11: spec.r in body should be less than or equal to 10"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"r": -1}})),
        ["spec.r: Invalid value: -1: spec.r in body should be greater than or equal to 0"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"x": 10}})),
        ["spec.x: Invalid value: 10: spec.x in body should be less than 10"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"x": 0}})),
        ["spec.x: Invalid value: 0: spec.x in body should be greater than 0"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"m": 1.2}})),
        ["spec.m: Invalid value: 1.2: spec.m in body should be a multiple of 0.5"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"i32": 2147483648_i64}})),
        [r#": Invalid value: "": Checked value must be of type integer with format int32 in spec.i32"#]
    );
}

#[test]
fn strings_lengths_patterns_formats() {
    let s = spec(json!({
        "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
        "at": {"type": "string", "format": "date-time"},
        "ip": {"type": "string", "format": "ipv4"},
    }));
    assert!(
        errors(&s, json!({"spec": {"name": "abc", "at": "2024-05-01T10:00:00Z", "ip": "10.0.0.1"}}))
            .is_empty()
    );
    assert_eq!(
        errors(&s, json!({"spec": {"name": "abcdef"}})),
        ["spec.name: Too long: may not be longer than 5"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"name": "a"}})),
        [r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"name": "AB"}})),
        [r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"at": "yesterday"}})),
        [r#"spec.at: Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday""#]
    );
    assert_eq!(errors(&s, json!({"spec": {"ip": "10.0.0.300"}})).len(), 1);
}

#[test]
fn arrays_items_and_uniqueness() {
    let s = spec(json!({
        "containers": {"type": "array", "minItems": 1, "maxItems": 2,
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
        "u": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
    }));
    assert!(errors(&s, json!({"spec": {"containers": [{"name": "a"}], "u": ["a", "b"]}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"containers": [{}]}})),
        ["spec.containers[0].name: Required value"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"containers": [{"name": "a"}, {"name": 1}]}})),
        [
            r#"spec.containers[1].name: Invalid value: "integer": spec.containers[1].name in body must be of type string: "integer""#
        ]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"containers": []}})),
        ["spec.containers: Invalid value: 0: spec.containers in body should have at least 1 items"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}})),
        ["spec.containers: Too many: 3: must have at most 2 items"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"u": ["a", "a"]}})),
        [r#"spec.u: Invalid value: "": spec.u in body shouldn't contain duplicates"#]
    );
}

#[test]
fn objects_properties_counts_and_additional_properties() {
    let s = spec(json!({
        "labels": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}},
    }));
    assert!(errors(&s, json!({"spec": {"labels": {"a": "1"}}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"labels": {"a": 1}}})),
        [
            r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#
        ]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"labels": {}}})),
        ["spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"labels": {"a": "", "b": "", "c": ""}}})),
        ["spec.labels: Too many: 3: must have at most 2 items"]
    );
}

#[test]
fn list_type_set_and_map() {
    let s = spec(json!({
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "protocol"],
            "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "protocol": {"type": "string", "default": "TCP"}}}},
    }));
    assert!(
        errors(
            &s,
            json!({"spec": {"set": ["a", "b"], "ports": [{"name": "a"}, {"name": "a", "protocol": "UDP"}]}})
        )
        .is_empty()
    );
    assert_eq!(
        errors(&s, json!({"spec": {"set": ["a", "b", "a"]}})),
        [r#"spec.set[2]: Duplicate value: "a""#]
    );
    assert_eq!(
        errors(&s, json!({"spec": {"ports": [{"name": "a"}, {"name": "a", "protocol": "TCP"}]}})),
        [r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a", "protocol":"TCP"}"#]
    );
}

#[test]
fn composition_is_validation_only() {
    let s = spec(json!({"v": {"x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^\\d+%$"}]}}));
    assert!(errors(&s, json!({"spec": {"v": 5}})).is_empty());
    assert!(errors(&s, json!({"spec": {"v": "5%"}})).is_empty());
    let e = errors(&s, json!({"spec": {"v": "five"}}));
    assert_eq!(e[0], r#": Invalid value: "": spec.v must validate at least one schema (anyOf)"#);
    let one = spec(json!({"v": {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}}));
    assert!(errors(&one, json!({"spec": {"v": {"a": 1}}})).is_empty());
    assert!(errors(&one, json!({"spec": {"v": {"a": 1, "b": 1}}}))[0].contains("Found 2 valid alternatives"));
    let all = spec(json!({"v": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 3}]}}));
    assert!(errors(&all, json!({"spec": {"v": 2}})).is_empty());
    assert!(
        errors(&all, json!({"spec": {"v": 4}}))
            .iter()
            .any(|e| e.contains("must validate all the schemas (allOf)"))
    );
    let not = spec(json!({"v": {"type": "string", "not": {"enum": ["forbidden"]}}}));
    assert!(errors(&not, json!({"spec": {"v": "ok"}})).is_empty());
    assert_eq!(
        errors(&not, json!({"spec": {"v": "forbidden"}})),
        [r#": Invalid value: "": spec.v must not validate the schema (not)"#]
    );
}

#[test]
fn embedded_resources_need_api_version_and_kind() {
    let s = spec(json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true}}));
    assert!(errors(&s, json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}})).is_empty());
    assert_eq!(
        errors(&s, json!({"spec": {"template": {"kind": "Pod"}}})),
        ["spec.template.apiVersion: Required value: must not be empty"]
    );
}

#[test]
fn invalid_status_aggregates_like_kube() {
    let s = spec(json!({"replicas": {"type": "integer"}}));
    let errs = validate(&schema(s), &json!({"spec": {"replicas": "x"}}));
    let st = invalid_status("apps.kruise.io", "CloneSet", "web", &errs);
    assert_eq!(st.code, Some(422));
    assert_eq!(
        st.message.as_deref(),
        Some(
            r#"CloneSet.apps.kruise.io "web" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        )
    );
    let causes = st.details.and_then(|d| d.causes).unwrap_or_default();
    assert_eq!(causes[0].reason.as_deref(), Some("FieldValueTypeInvalid"));
    assert_eq!(causes[0].field.as_deref(), Some("spec.replicas"));
}

#[test]
fn prune_drops_unknown_fields_and_keeps_what_is_preserved() {
    let s = schema(json!({"type": "object", "properties": {
    "metadata": {"type": "object"},
    "spec": {"type": "object", "properties": {
        "replicas": {"type": "integer"},
        "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {"k": {"type": "string"}}}}},
        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
    }}}}));
    let mut v = json!({
        "apiVersion": "x/v1", "kind": "X",
        "metadata": {"name": "n", "labels": {"a": "b"}, "bogus": 1},
        "status": {"ready": true},
        "spec": {
            "replicas": 1, "unknown": 2,
            "labels": {"one": {"a": "x", "b": "y"}},
            "items": [{"name": "a", "extra": 1}],
            "free": {"anything": {"deep": 1}, "known": {"k": "v", "drop": 1}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {"x": 1}, "other": 1},
        }
    });
    prune(&s, &mut v);
    assert_eq!(
        v,
        json!({
            "apiVersion": "x/v1", "kind": "X",
            "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {
                "replicas": 1,
                "labels": {"one": {"a": "x"}},
                "items": [{"name": "a"}],
                "free": {"anything": {"deep": 1}, "known": {"k": "v"}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
            }
        })
    );
}

#[test]
fn defaults_fill_absent_fields_items_and_maps() {
    let s = schema(json!({"type": "object", "properties": {"spec": {"type": "object",
    "default": {},
    "properties": {
        "replicas": {"type": "integer", "default": 1},
        "paused": {"type": "boolean", "default": false},
        "note": {"type": "string", "nullable": true, "default": "n"},
        "gone": {"type": "string"},
        "strategy": {"type": "object", "default": {"type": "RollingUpdate"},
            "properties": {"type": {"type": "string"}, "maxSurge": {"x-kubernetes-int-or-string": true, "default": "25%"}}},
        "containers": {"type": "array", "items": {"type": "object",
            "properties": {"name": {"type": "string"}, "pull": {"type": "string", "default": "IfNotPresent"}}}},
        "byZone": {"type": "object", "additionalProperties": {"type": "object",
            "properties": {"weight": {"type": "integer", "default": 10}}}},
    }}}}));
    let mut v = json!({"spec": {"paused": null, "note": null, "gone": null,
        "containers": [{"name": "a"}, {"name": "b", "pull": "Always"}], "byZone": {"z1": {}}}});
    apply_defaults(&s, &mut v);
    assert_eq!(
        v,
        json!({"spec": {
            "replicas": 1, "paused": false, "note": null,
            "strategy": {"type": "RollingUpdate", "maxSurge": "25%"},
            "containers": [{"name": "a", "pull": "IfNotPresent"}, {"name": "b", "pull": "Always"}],
            "byZone": {"z1": {"weight": 10}},
        }})
    );
    let mut empty = json!({});
    apply_defaults(&s, &mut empty);
    assert_eq!(empty["spec"]["replicas"], 1, "defaults apply inside a defaulted object");
}

#[test]
fn not_enforced_names_cel() {
    assert!(NOT_ENFORCED.iter().any(|n| n.contains("x-kubernetes-validations")));
}

mod real_crds {
    use std::path::PathBuf;

    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    use super::*;

    fn deploy() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
    }

    fn crds() -> Vec<CustomResourceDefinition> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(deploy().join("crds")).expect("deploy/crds") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read crd");
            out.push(serde_yaml::from_str(&text).expect("crd yaml"));
        }
        assert!(out.len() >= 10, "found {} CRDs", out.len());
        out
    }

    fn schema_for(crds: &[CustomResourceDefinition], object: &Value) -> JSONSchemaProps {
        let (group, version) =
            object["apiVersion"].as_str().and_then(|a| a.split_once('/')).expect("apiVersion");
        let kind = object["kind"].as_str().expect("kind");
        let crd = crds
            .iter()
            .find(|c| c.spec.group == group && c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("no CRD for {group} {kind}"));
        let v = crd.spec.versions.iter().find(|v| v.name == version).expect("version");
        v.schema.as_ref().and_then(|s| s.open_api_v3_schema.clone()).expect("schema")
    }

    fn example(name: &str) -> Value {
        let text = std::fs::read_to_string(deploy().join("examples").join(name)).expect("example");
        serde_yaml::from_str(&text).expect("example yaml")
    }

    #[test]
    fn every_example_validates_clean_and_survives_pruning_and_defaults() {
        let crds = crds();
        let mut seen = 0;
        for entry in std::fs::read_dir(deploy().join("examples")).expect("deploy/examples") {
            let path = entry.expect("entry").path();
            let object = example(path.file_name().and_then(|n| n.to_str()).expect("name"));
            let s = schema_for(&crds, &object);
            let errs = validate(&s, &object);
            assert!(errs.is_empty(), "{}: {errs:?}", path.display());
            let mut pruned = object.clone();
            prune(&s, &mut pruned);
            assert_eq!(pruned, object, "{}: pruning dropped fields of a valid example", path.display());
            apply_defaults(&s, &mut pruned);
            let errs = validate(&s, &pruned);
            assert!(errs.is_empty(), "{} after defaults: {errs:?}", path.display());
            seen += 1;
        }
        assert!(seen >= 10);
    }

    #[test]
    fn corrupted_cloneset_is_refused_naming_the_fields() {
        let crds = crds();
        let mut object = example("cloneset.yaml");
        object["spec"]["replicas"] = json!("five");
        object["spec"]["scaleStrategy"]["maxUnavailable"] = json!(true);
        let s = schema_for(&crds, &object);
        let errs: Vec<String> = validate(&s, &object).iter().map(ToString::to_string).collect();
        assert!(
            errs.contains(&r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#.to_owned()),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.scaleStrategy.maxUnavailable: Invalid value: \"boolean\"")),
            "{errs:#?}"
        );
        let st = invalid_status("apps.kruise.io", "CloneSet", "web", &validate(&s, &object));
        assert!(st.message.unwrap_or_default().starts_with(r#"CloneSet.apps.kruise.io "web" is invalid: ["#));
    }

    #[test]
    fn unknown_fields_of_real_crd_are_pruned() {
        let crds = crds();
        let mut object = example("cloneset.yaml");
        object["spec"]["notAField"] = json!(1);
        object["metadata"]["notMeta"] = json!(1);
        let s = schema_for(&crds, &object);
        prune(&s, &mut object);
        assert_eq!(object, example("cloneset.yaml"));
    }
}
