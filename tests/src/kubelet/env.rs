//! A container's environment, resolved when the container is created, as kubelet's
//! `makeEnvironmentVariables` does: `envFrom` first, then `env` in order, each value
//! expanded against the variables before it (`$(VAR)`, `$$` escapes), `valueFrom`
//! resolved from the pod (downward API), its resources, and ConfigMaps/Secrets the
//! caller has fetched (see [`references`]).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

use super::quantity;

/// What a container's environment may read besides the pod itself.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    /// The node's name (`spec.nodeName` falls back to it).
    pub node_name: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// `status.podIP` (the host IP for host-network pods).
    pub pod_ip: String,
    /// The node's allocatable CPU and memory: a missing limit reads as these, as in
    /// kubelet.
    pub node_cpu: f64,
    /// See `node_cpu`; bytes.
    pub node_memory: f64,
    /// ConfigMaps by name (from the pod's namespace); a missing one was not found.
    pub config_maps: HashMap<String, BTreeMap<String, String>>,
    /// Secrets by name, decoded.
    pub secrets: HashMap<String, BTreeMap<String, String>>,
}

/// Why an environment cannot be built: the container waits with
/// `CreateContainerConfigError` and this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    /// A referenced ConfigMap or Secret does not exist and is not optional.
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
    /// The key is missing from a ConfigMap or Secret that exists.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey { kind: &'static str, namespace: String, name: String, key: String },
    /// A fieldRef/resourceFieldRef kubelet would not resolve.
    #[error("unsupported {what}: {path}")]
    Unsupported { what: &'static str, path: String },
    /// A bad quantity in limits, requests or a divisor.
    #[error(transparent)]
    Quantity(#[from] quantity::InvalidQuantity),
}

/// ConfigMaps and Secrets a container's environment reads: `(config_maps, secrets)`.
pub fn references(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for f in c.env_from.iter().flatten() {
        cms.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// The container's environment, in kubelet's order (a later duplicate replaces the
/// value but keeps the first position).
pub fn resolve(pod: &Pod, c: &Container, src: &EnvSources) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    let set =
        |out: &mut Vec<(String, String)>, k: String, v: String| match out.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        };
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let (kind, name, optional, map) = if let Some(r) = &f.config_map_ref {
            ("configmap", &r.name, r.optional, src.config_maps.get(&r.name))
        } else if let Some(r) = &f.secret_ref {
            ("secret", &r.name, r.optional, src.secrets.get(&r.name))
        } else {
            continue;
        };
        match map {
            Some(m) => m.iter().for_each(|(k, v)| set(&mut out, format!("{prefix}{k}"), v.clone())),
            None if optional == Some(true) => {}
            None => return Err(EnvError::NotFound { kind, name: name.clone() }),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let vars: HashMap<&str, &str> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(e.value.as_deref().unwrap_or(""), &vars)
            }
            Some(_) => match value_from(pod, c, e, &ns, src)? {
                Some(v) => v,
                None => continue,
            },
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

/// One `valueFrom`; `None` for an optional key that is absent.
fn value_from(
    pod: &Pod,
    c: &Container,
    e: &EnvVar,
    ns: &str,
    src: &EnvSources,
) -> Result<Option<String>, EnvError> {
    let from = e.value_from.as_ref().expect("called with valueFrom");
    if let Some(f) = &from.field_ref {
        return field_ref(pod, &f.field_path, src).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        let target = match &r.container_name {
            Some(n) if !n.is_empty() => pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                .find(|x| &x.name == n)
                .unwrap_or(c),
            _ => c,
        };
        return resource_field_ref(target, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()), src)
            .map(Some);
    }
    let (kind, name, key, optional, map) = if let Some(r) = &from.config_map_key_ref {
        ("configmap", &r.name, &r.key, r.optional, src.config_maps.get(&r.name))
    } else if let Some(r) = &from.secret_key_ref {
        ("secret", &r.name, &r.key, r.optional, src.secrets.get(&r.name))
    } else {
        return Err(EnvError::Unsupported { what: "valueFrom", path: e.name.clone() });
    };
    let optional = optional == Some(true);
    match map {
        None if optional => Ok(None),
        None => Err(EnvError::NotFound { kind, name: name.clone() }),
        Some(m) => match m.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::MissingKey {
                kind,
                namespace: ns.to_owned(),
                name: name.clone(),
                key: key.clone(),
            }),
        },
    }
}

/// A downward-API field path.
pub fn field_ref(pod: &Pod, path: &str, src: &EnvSources) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")?;
        Some(rest.to_owned())
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_else(|| src.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => src.host_ip.clone(),
        "status.podIP" | "status.podIPs" => src.pod_ip.clone(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                meta.labels.as_ref().and_then(|l| l.get(&k).cloned()).unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                meta.annotations.as_ref().and_then(|a| a.get(&k).cloned()).unwrap_or_default()
            } else {
                return Err(EnvError::Unsupported { what: "fieldRef", path: path.to_owned() });
            }
        }
    })
}

/// A `resourceFieldRef` (`limits.cpu`, `requests.memory`, …) divided by its divisor,
/// rounded up; a missing limit reads as the node's allocatable.
pub fn resource_field_ref(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    src: &EnvSources,
) -> Result<String, EnvError> {
    let res = c.resources.as_ref();
    let get = |limits: bool, name: &str| -> Result<Option<f64>, EnvError> {
        let map =
            if limits { res.and_then(|r| r.limits.as_ref()) } else { res.and_then(|r| r.requests.as_ref()) };
        map.and_then(|m| m.get(name)).map(quantity::value).transpose().map_err(Into::into)
    };
    let value = match resource {
        "limits.cpu" => get(true, "cpu")?.unwrap_or(src.node_cpu),
        "limits.memory" => get(true, "memory")?.unwrap_or(src.node_memory),
        // kubelet defaults an unset request to the limit (the API server does, really).
        "requests.cpu" => get(false, "cpu")?.or(get(true, "cpu")?).unwrap_or(0.0),
        "requests.memory" => get(false, "memory")?.or(get(true, "memory")?).unwrap_or(0.0),
        other => return Err(EnvError::Unsupported { what: "resourceFieldRef", path: other.to_owned() }),
    };
    let divisor = match divisor.filter(|d| !d.is_empty()).map(quantity::parse).transpose()? {
        Some(d) if d != 0.0 => d,
        _ => 1.0,
    };
    Ok(quantity::divide_ceil(value, divisor).to_string())
}

/// kubelet's `$(VAR)` expansion (`third_party/forked/golang/expansion`): `$$` is a
/// literal `$`, an unknown `$(NAME)` stays as written.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
