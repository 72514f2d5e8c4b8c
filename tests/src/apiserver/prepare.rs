//! What the real server's strategies do before storing: system fields, status rules,
//! generation, defaults and the few validations every client relies on.

use std::hash::{BuildHasher, Hasher};

use serde_json::{Map, Value, json};

use super::{
    Status,
    resources::ResourceInfo,
    store::{name_of, now},
};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        })
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    let mut x = h.finish();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match &mut obj["metadata"] {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// The label kube-apiserver puts on every namespace (and puts back when removed), which
/// webhooks' `namespaceSelector`s and network policies select namespaces by.
use stevedore_proto::keys::NAMESPACE_NAME as NAMESPACE_NAME_LABEL;

fn name_label(ns: &mut Value) {
    let name = name_of(ns).to_string();
    let m = meta(ns);
    if !m.get("labels").is_some_and(Value::is_object) {
        m.insert("labels".into(), json!({}));
    }
    m["labels"][NAMESPACE_NAME_LABEL] = json!(name);
}

/// What the handler does before admission, as kube-apiserver's create handler does
/// while decoding: the object gets the resource's `apiVersion` and `kind` and the
/// request's namespace (none when cluster-scoped), so that mutating webhooks see it
/// otherwise as the client sent it (status included, no system fields yet).
pub fn for_admission(res: &ResourceInfo, obj: &mut Value, ns: &str) {
    obj["apiVersion"] = json!(res.api_version());
    obj["kind"] = json!(res.kind);
    let m = meta(obj);
    if res.namespaced {
        m.insert("namespace".into(), json!(ns));
    } else {
        m.remove("namespace");
    }
}

/// The defaults kube-apiserver's decoder applies to a request body (the scheme's
/// defaulting functions, before admission, on create and update alike), as far as
/// the simulator has them: a pod's containers, init containers and ephemeral
/// containers whose `imagePullPolicy` is empty or absent get the one rule of
/// [`stevedore_proto::image::default_pull_policy`] (`SetDefaults_Container`); a set
/// policy is kept.
pub fn decode_defaults(res: &ResourceInfo, obj: &mut Value) {
    if (res.group.as_str(), res.plural.as_str()) != ("", "pods") {
        return;
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let Some(containers) = obj["spec"].get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            if c.get("imagePullPolicy").is_some_and(|p| p.as_str() != Some("")) {
                continue;
            }
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let policy = stevedore_proto::image::default_pull_policy(image);
            c.insert("imagePullPolicy".into(), json!(policy));
        }
    }
}

/// The strategy's PrepareForCreate and the system fields (after mutating
/// admission): fills system fields, resets status, applies defaults and checks the
/// name.
///
/// # Errors
/// 422 Invalid for a missing or malformed name.
pub fn for_create(res: &ResourceInfo, obj: &mut Value, ns: &str, uid: &str) -> Result<(), Status> {
    obj["apiVersion"] = json!(res.api_version());
    obj["kind"] = json!(res.kind);
    let m = meta(obj);
    let mut name = m.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        let Some(prefix) = m.get("generateName").and_then(Value::as_str) else {
            return Err(Status::invalid(
                &res.kind,
                &res.group,
                "",
                vec![Status::required("metadata.name", "name or generateName is required")],
            ));
        };
        name = format!("{prefix}{}", random_suffix());
        m.insert("name".into(), json!(name));
    }
    if !is_subdomain(&name) {
        return Err(Status::invalid(
            &res.kind,
            &res.group,
            &name,
            vec![Status::invalid_value("metadata.name", &json!(name), SUBDOMAIN_MSG)],
        ));
    }
    if res.namespaced {
        m.insert("namespace".into(), json!(ns));
    } else {
        m.remove("namespace");
    }
    for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        m.remove(k);
    }
    m.insert("uid".into(), json!(uid));
    m.insert("creationTimestamp".into(), json!(now()));
    if res.generation {
        m.insert("generation".into(), json!(1));
    }
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "pods") => pod_defaults(obj),
        ("", "namespaces") => {
            name_label(obj);
            obj["status"] = json!({"phase": "Active"});
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
        }
        ("", "nodes") => {}
        ("", "secrets") if obj.get("type").is_none_or(|t| t == "") => obj["type"] = json!("Opaque"),
        _ if res.has("status") => {
            if res.scale.is_some() && res.crd.is_none() && obj["spec"].get("replicas").is_none() {
                obj["spec"]["replicas"] = json!(1);
            }
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        _ => {}
    }
    Ok(())
}

fn pod_defaults(pod: &mut Value) {
    let spec = &mut pod["spec"];
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("serviceAccountName", json!("default")),
        ("securityContext", json!({})),
    ] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
}

fn without(obj: &Value, keys: &[&str]) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    o
}

/// Whether an update changes nothing (ignoring resourceVersion and managedFields).
pub fn same(old: &Value, new: &Value) -> bool {
    let strip = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        o
    };
    strip(old) == strip(new)
}

/// Carries system fields forward, applies the status subresource rules, bumps generation
/// and enforces pod spec immutability.
///
/// # Errors
/// 422 Invalid for a forbidden change.
pub fn for_update(res: &ResourceInfo, old: &Value, mut new: Value, sub: &str) -> Result<Value, Status> {
    if sub == "status" {
        let mut out = old.clone();
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => out = without(&out, &["status"]),
        }
        // Field management recorded the status writer in the new object.
        match new["metadata"].get("managedFields") {
            Some(m) => out["metadata"]["managedFields"] = m.clone(),
            None => {
                if let Some(m) = out["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
            }
        }
        return Ok(out);
    }
    if !new.is_object() {
        return Err(Status::bad_request("the request body must be an object"));
    }
    new["apiVersion"] = old["apiVersion"].clone();
    new["kind"] = old["kind"].clone();
    let om = old["metadata"].clone();
    let m = meta(&mut new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ] {
        match om.get(k) {
            Some(v) => m.insert(k.into(), v.clone()),
            None => m.remove(k),
        };
    }
    if res.has("status") {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => new = without(&new, &["status"]),
        }
    }
    let name = name_of(old).to_string();
    if om.get("deletionTimestamp").is_some() {
        let old_f = om["finalizers"].as_array().cloned().unwrap_or_default();
        let added =
            new["metadata"]["finalizers"].as_array().into_iter().flatten().any(|f| !old_f.contains(f));
        if added {
            return Err(Status::invalid(
                &res.kind,
                &res.group,
                &name,
                vec![super::status::Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: no new finalizers can be added if the object is being deleted"
                        .into(),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }
    if res.group.is_empty() && res.plural == "pods" && !pod_spec_update_allowed(&old["spec"], &new["spec"]) {
        return Err(Status::invalid(
            &res.kind,
            "",
            &name,
            vec![super::status::Cause {
                reason: "FieldValueForbidden".into(),
                message:
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,\
`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing \
tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
                        .into(),
                field: "spec".into(),
            }],
        ));
    }
    if res.group.is_empty() && res.plural == "namespaces" {
        name_label(&mut new);
    }
    generation(res, old, &mut new);
    Ok(new)
}

/// Sets `new`'s generation: the old one, plus one when anything outside metadata (and
/// status, for kinds with a status subresource) changed. Idempotent, so the writer
/// calls it again once a custom resource is pruned and defaulted (kube-apiserver
/// prunes while decoding, before its strategy compares).
pub fn generation(res: &ResourceInfo, old: &Value, new: &mut Value) {
    if !res.generation {
        return;
    }
    let ignored: &[&str] = if res.has("status") { &["metadata", "status"] } else { &["metadata"] };
    let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
    let g = if without(old, ignored) == without(new, ignored) { g } else { g + 1 };
    if new["metadata"].is_object() {
        new["metadata"]["generation"] = json!(g);
    }
}

fn pod_spec_update_allowed(old: &Value, new: &Value) -> bool {
    let norm = |s: &Value| {
        let mut s = without(s, &["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"]);
        for list in ["containers", "initContainers"] {
            for c in s[list].as_array_mut().into_iter().flatten() {
                c["image"] = Value::Null;
            }
        }
        s
    };
    let old_tol = old["tolerations"].as_array().cloned().unwrap_or_default();
    let new_tol = new["tolerations"].as_array().cloned().unwrap_or_default();
    norm(old) == norm(new) && old_tol.iter().all(|t| new_tol.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn create_and_update_rules() {
        let reg = Registry::new();
        let deploy = reg.find("apps", "v1", "deployments").unwrap();
        let mut d =
            json!({"metadata": {"generateName": "web-"}, "spec": {"replicas": 1}, "status": {"x": 1}});
        for_create(deploy, &mut d, "default", "u1").unwrap();
        assert!(name_of(&d).starts_with("web-") && name_of(&d).len() == 9);
        assert_eq!((d["metadata"]["generation"].clone(), d.get("status")), (json!(1), None));
        let mut changed = d.clone();
        changed["spec"]["replicas"] = json!(2);
        changed["status"] = json!({"y": 1});
        let u = for_update(deploy, &d, changed, "").unwrap();
        assert_eq!((u["metadata"]["generation"].clone(), u.get("status")), (json!(2), None));
        let s =
            for_update(deploy, &d, json!({"status": {"y": 1}, "spec": {"replicas": 9}}), "status").unwrap();
        assert_eq!((s["spec"]["replicas"].clone(), s["status"]["y"].clone()), (json!(1), json!(1)));
        let mut bad = json!({"metadata": {"name": "Bad_Name"}});
        assert_eq!(for_create(deploy, &mut bad, "default", "u2").unwrap_err().code, 422);
        let pods = reg.find("", "v1", "pods").unwrap();
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        for_create(pods, &mut p, "default", "u3").unwrap();
        let mut img = p.clone();
        img["spec"]["containers"][0]["image"] = json!("b");
        assert!(for_update(pods, &p, img, "").is_ok());
        let mut node = p.clone();
        node["spec"]["nodeName"] = json!("n1");
        assert_eq!(for_update(pods, &p, node, "").unwrap_err().code, 422);
    }

    #[test]
    fn pods_get_the_pull_policy_of_their_image_when_empty() {
        let reg = Registry::new();
        let pods = reg.find("", "v1", "pods").unwrap();
        let digest = "sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31";
        let mut p = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "image": format!("nginx:latest@{digest}")}],
            "containers": [
                {"name": "a", "image": "nginx"},
                {"name": "b", "image": "nginx:latest"},
                {"name": "c", "image": "registry:5000/nginx:1.27", "imagePullPolicy": ""},
                {"name": "d", "image": format!("nginx@{digest}")},
                {"name": "e", "image": "nginx:latest", "imagePullPolicy": "Never"},
                {"name": "f", "image": "nginx:1.27", "imagePullPolicy": "Always"}
            ],
            "ephemeralContainers": [{"name": "x", "image": "busybox:1.36"}]
        }});
        decode_defaults(pods, &mut p);
        let policies = |list: &str| -> Vec<String> {
            p["spec"][list]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["imagePullPolicy"].as_str().unwrap().into())
                .collect()
        };
        assert_eq!(policies("initContainers"), ["Always"]);
        assert_eq!(
            policies("containers"),
            ["Always", "Always", "IfNotPresent", "IfNotPresent", "Never", "Always"]
        );
        assert_eq!(policies("ephemeralContainers"), ["IfNotPresent"]);
        // other kinds are left alone (their templates are defaulted elsewhere, if at all)
        let cms = reg.find("", "v1", "configmaps").unwrap();
        let mut cm = json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}});
        decode_defaults(cms, &mut cm);
        assert!(cm["spec"]["containers"][0].get("imagePullPolicy").is_none());
    }
}
