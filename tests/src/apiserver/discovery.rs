//! `/version`, `/api`, `/apis`, `/apis/{group}` and the APIResourceLists.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::{
    Status,
    resources::{Registry, ResourceInfo},
};

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// `/version`: a 1.33 server.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-stevedore-sim", "gitCommit": "",
        "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, then
/// anything else alphabetically.
fn priority(v: &str) -> (u8, i64, i64, String) {
    let parse = |s: &str| -> Option<(u8, i64, i64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        let (class, n) =
            if let Some(n) = tail.strip_prefix("beta") { (1, n) } else { (2, tail.strip_prefix("alpha")?) };
        Some((class, -major, -n.parse::<i64>().ok()?))
    };
    match parse(v) {
        Some((c, a, b)) => (c, a, b, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let mut sorted = versions.to_vec();
    sorted.sort_by_key(|v| priority(v));
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({"name": name, "versions": sorted.iter().map(gv).collect::<Vec<_>>(), "preferredVersion": gv(&sorted[0])})
}

/// `/apis`.
pub fn groups(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg.groups().iter().map(|(g, vs)| group_json(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
///
/// # Errors
/// 404 for an unknown group.
pub fn group(reg: &Registry, name: &str) -> Result<Value, Status> {
    let groups = reg.groups();
    let (_, vs) = groups.iter().find(|(g, _)| g == name).ok_or_else(not_found)?;
    let mut g = group_json(name, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Ok(g)
}

fn not_found() -> Status {
    Status::new(404, "NotFound", "the server could not find the requested resource")
}

fn entry(r: &ResourceInfo) -> Vec<Value> {
    let mut out = vec![json!({
        "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
        "verbs": VERBS, "shortNames": r.short_names, "categories": r.categories,
    })];
    for sub in &r.subresources {
        let (group, version, kind, verbs): (&str, &str, &str, &[&str]) = match sub.as_str() {
            "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
            "binding" => ("", "v1", "Binding", &["create"]),
            "eviction" => ("policy", "v1", "Eviction", &["create"]),
            "log" => ("", "", "Pod", &["get"]),
            _ => ("", "", &r.kind, &["get", "patch", "update"]),
        };
        let mut e = json!({
            "name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
            "kind": kind, "verbs": verbs,
        });
        if !version.is_empty() {
            e["group"] = json!(group);
            e["version"] = json!(version);
        }
        out.push(e);
    }
    out
}

/// `/api/v1` or `/apis/{group}/{version}`.
///
/// # Errors
/// 404 for a group/version nobody serves.
pub fn resources(reg: &Registry, group: &str, version: &str) -> Result<Value, Status> {
    let served: Vec<&ResourceInfo> = reg.all().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return Err(not_found());
    }
    let resources: Vec<Value> = served.into_iter().flat_map(entry).collect();
    let gv = super::resources::api_version(group, version);
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_priority() {
        let mut v: Vec<String> =
            ["v1alpha1", "v1", "v2beta1", "v1beta1", "foo", "v2"].map(String::from).to_vec();
        v.sort_by_key(|v| priority(v));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn resource_lists() {
        let reg = Registry::new();
        let core = resources(&reg, "", "v1").unwrap();
        let names: Vec<&str> =
            core["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"pods/eviction") && names.contains(&"namespaces"));
        assert_eq!(resources(&reg, "nope", "v1").unwrap_err().code, 404);
        assert_eq!(group(&reg, "apps").unwrap()["preferredVersion"]["version"], "v1");
    }
}
