//! A container's resources (`ValidateResourceRequirements`).

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity as Q};

use super::{
    super::{
        FieldError,
        field::{forbidden, invalid, required},
        rules,
    },
    quantity::{self, Quantity},
};

/// Whether Kubernetes counts `name` as one of its own resources (no domain, or a
/// `kubernetes.io` one).
fn native(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    }
}

fn hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `IsOvercommitAllowed`: native resources other than hugepages may have requests
/// below their limits; the rest (extended resources, hugepages) need them equal.
fn overcommit(name: &str) -> bool {
    native(name) && !hugepages(name)
}

/// `ValidateContainerResourceName`: a standard container resource (cpu, memory,
/// ephemeral-storage, hugepages-*) or an extended resource `domain/name`.
fn resource_name(at: &str, name: &str, errors: &mut Vec<FieldError>) {
    if let Some(reason) = rules::qualified_name(name) {
        return errors.push(invalid(at, name, reason));
    }
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !hugepages(name) {
            errors.push(invalid(at, name, "must be a standard resource for containers"));
        }
    } else if !native(name) && name.starts_with("requests.") {
        errors.push(invalid(at, name, "doesn't follow extended resource name standard"));
    }
}

/// The quantities of one list (`ValidateResourceQuantityValue`): non-negative,
/// whole for extended resources (well-formed is [`super::decoding`]'s). Returns
/// those that parse.
fn quantities(
    at: &str,
    list: &BTreeMap<String, Q>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, Quantity> {
    let mut parsed = BTreeMap::new();
    for (name, q) in list {
        let at = format!("{at}[{name}]");
        resource_name(&at, name, errors);
        match quantity::parse(&q.0) {
            // reported as unreadable by `decoding`, as Go's decoder fails first
            Err(_) => {}
            Ok(v) if v.is_negative() => errors.push(invalid(&at, &q.0, "must be greater than or equal to 0")),
            Ok(v) if !native(name) && !v.is_integer() => {
                errors.push(invalid(&at, &q.0, "must be an integer"))
            }
            Ok(v) => {
                parsed.insert(name.clone(), v);
            }
        }
    }
    parsed
}

/// `ValidateResourceRequirements`: valid names and quantities; each request at most
/// its limit (equal to it for resources that cannot be overcommitted, which need a
/// limit); hugepages only with cpu or memory.
pub fn requirements(at: &str, r: &ResourceRequirements, errors: &mut Vec<FieldError>) {
    let limits_at = format!("{at}.limits");
    let requests_at = format!("{at}.requests");
    let empty = BTreeMap::new();
    let limits = quantities(&limits_at, r.limits.as_ref().unwrap_or(&empty), errors);
    let requests = quantities(&requests_at, r.requests.as_ref().unwrap_or(&empty), errors);
    for (name, request) in &requests {
        let raw = &r.requests.as_ref().map(|m| m[name].0.clone()).unwrap_or_default();
        match limits.get(name) {
            Some(limit) if !overcommit(name) && request != limit => {
                let why = format!(
                    "must be equal to {name} limit of {}",
                    r.limits.as_ref().map(|m| m[name].0.clone()).unwrap_or_default()
                );
                errors.push(invalid(&requests_at, raw, why));
            }
            Some(limit) if request > limit => {
                let why = format!(
                    "must be less than or equal to {name} limit of {}",
                    r.limits.as_ref().map(|m| m[name].0.clone()).unwrap_or_default()
                );
                errors.push(invalid(&requests_at, raw, why));
            }
            Some(_) => {}
            None if !overcommit(name) && !r.limits.as_ref().is_some_and(|l| l.contains_key(name)) => {
                errors.push(required(&limits_at, "Limit must be set for non overcommitable resources"));
            }
            None => {}
        }
    }
    let names = || limits.keys().chain(requests.keys());
    let compute = names().any(|n| n == "cpu" || n == "memory");
    if !compute && names().any(|n| hugepages(n)) {
        errors.push(forbidden(at, "HugePages require cpu or memory"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::rules::tests::fields;

    fn check(r: serde_json::Value) -> Vec<String> {
        let mut errors = Vec::new();
        requirements("r", &serde_json::from_value(r).unwrap(), &mut errors);
        fields(&errors)
    }

    #[test]
    fn requests_limits_and_quantities() {
        let ok = serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi", "example.com/gpu": 2},
                                    "requests": {"cpu": 0.5, "memory": "1024Mi", "example.com/gpu": "2"}});
        assert_eq!(check(ok), Vec::<String>::new());
        assert_eq!(
            check(serde_json::json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}})),
            ["r.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"]
        );
        assert_eq!(check(serde_json::json!({"requests": {"cpu": "1 core"}})), Vec::<String>::new());
        let got = check(serde_json::json!({"limits": {"gpu": "1", "memory": "-1"},
                                           "requests": {"example.com/gpu": "1"}}));
        assert_eq!(
            got,
            [
                "r.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                "r.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "r.limits: Required value: Limit must be set for non overcommitable resources",
            ]
        );
        assert_eq!(
            check(serde_json::json!({"limits": {"hugepages-2Mi": "1Gi"}})),
            ["r: Forbidden: HugePages require cpu or memory"]
        );
    }
}
