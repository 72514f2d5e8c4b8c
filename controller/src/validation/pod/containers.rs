//! Containers: names, images, ports, env, volume mounts, pull and termination
//! message policies, resources, probes and lifecycle (`validateContainers`,
//! `validateInitContainers`, `validateContainerCommon`).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, ObjectFieldSelector, PodSpec, VolumeMount,
};

use super::{
    super::{
        FieldError,
        field::{duplicate, forbidden, invalid, not_found, not_supported, required},
        rules::{self, dns1123_label},
    },
    handlers, resources,
};

/// `validateContainers` then `validateInitContainers`: at least one container;
/// every container's common checks; names unique across both lists; lifecycle and
/// probes on containers and on init containers with restartPolicy Always only;
/// restartPolicy only on init containers, and only Always; host ports unique.
pub fn containers(
    field: &str,
    spec: &PodSpec,
    volumes: &HashSet<String>,
    grace: Option<i64>,
    errors: &mut Vec<FieldError>,
) {
    let apps = &spec.containers;
    if apps.is_empty() {
        errors.push(required(&format!("{field}.containers"), ""));
    }
    let mut names: HashSet<&str> = HashSet::new();
    for (i, c) in apps.iter().enumerate() {
        let at = format!("{field}.containers[{i}]");
        common(&at, c, volumes, errors);
        if !names.insert(&c.name) {
            errors.push(duplicate(&format!("{at}.name"), &c.name));
        }
        handlers::lifecycle_and_probes(&at, c, grace, errors);
        if c.restart_policy.is_some() {
            errors.push(forbidden(&format!("{at}.restartPolicy"), "may not be set for non-init containers"));
        }
    }
    host_ports(&format!("{field}.containers"), apps, errors);
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let at = format!("{field}.initContainers[{i}]");
        common(&at, c, volumes, errors);
        let always = match c.restart_policy.as_deref() {
            None => false,
            Some("Always") => true,
            Some(other) => {
                errors.push(not_supported(&format!("{at}.restartPolicy"), other, &["Always"]));
                false
            }
        };
        if names.contains(c.name.as_str()) {
            errors.push(duplicate(&format!("{at}.name"), &c.name));
        } else if !c.name.is_empty() {
            names.insert(&c.name);
        }
        // init containers run one by one: their host ports are checked alone
        host_ports(&format!("{field}.initContainers"), std::slice::from_ref(c), errors);
        if always {
            handlers::lifecycle_and_probes(&at, c, grace, errors);
        } else {
            let fields = [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ];
            for (name, set) in fields {
                if set {
                    errors.push(forbidden(
                        &format!("{at}.{name}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// `validateContainerCommon`: a DNS-label name, an image, a termination message
/// policy, ports, env and envFrom, volume mounts, a pull policy and resources.
fn common(at: &str, c: &Container, volumes: &HashSet<String>, errors: &mut Vec<FieldError>) {
    if c.name.is_empty() {
        errors.push(required(&format!("{at}.name"), ""));
    } else if let Some(reason) = dns1123_label(&c.name) {
        errors.push(invalid(&format!("{at}.name"), &c.name, reason));
    }
    // Kubernetes checks only that the image is there: " " is a special token in
    // some templates
    if c.image.as_deref().unwrap_or_default().is_empty() {
        errors.push(required(&format!("{at}.image"), ""));
    }
    match c.termination_message_policy.as_deref().unwrap_or_default() {
        "File" | "FallbackToLogsOnError" => {}
        "" => errors.push(required(&format!("{at}.terminationMessagePolicy"), "")),
        other => errors.push(not_supported(
            &format!("{at}.terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    ports(&format!("{at}.ports"), c.ports.as_deref().unwrap_or_default(), errors);
    env(&format!("{at}.env"), c.env.as_deref().unwrap_or_default(), errors);
    env_from(&format!("{at}.envFrom"), c.env_from.as_deref().unwrap_or_default(), errors);
    mounts(&format!("{at}.volumeMounts"), c, volumes, errors);
    match c.image_pull_policy.as_deref().unwrap_or_default() {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errors.push(required(&format!("{at}.imagePullPolicy"), "")),
        other => errors.push(not_supported(
            &format!("{at}.imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(r) = &c.resources {
        resources::requirements(&format!("{at}.resources"), r, errors);
    }
}

/// `validateContainersOnlyForPod`: no whitespace around an image.
pub fn image_whitespace(field: &str, spec: &PodSpec, errors: &mut Vec<FieldError>) {
    let lists = [
        ("initContainers", spec.init_containers.as_deref().unwrap_or_default()),
        ("containers", &spec.containers[..]),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let image = c.image.as_deref().unwrap_or_default();
            if image.trim() != image {
                errors.push(invalid(
                    &format!("{field}.{list}[{i}].image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
}

/// `IsValidPortName`: an IANA service name (at most 15 lowercase letters, digits
/// and single inner hyphens, with a letter).
pub fn port_name(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 15 {
        return Some("must be no more than 15 characters");
    }
    if !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-') {
        return Some("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        return Some("must not contain consecutive hyphens");
    }
    if !b.iter().any(u8::is_ascii_lowercase) {
        return Some("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must not begin or end with a hyphen");
    }
    None
}

/// `IsValidPortNum`.
pub fn port_number(n: i32) -> Option<&'static str> {
    (!(1..=65535).contains(&n)).then_some("must be between 1 and 65535, inclusive")
}

/// `validateContainerPorts`: names IANA service names unique in the container;
/// containerPort set and in range; hostPort in range; protocol TCP, UDP or SCTP.
fn ports(field: &str, ports: &[ContainerPort], errors: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            if let Some(reason) = port_name(name) {
                errors.push(invalid(&format!("{at}.name"), name, reason));
            } else if !names.insert(name) {
                errors.push(duplicate(&format!("{at}.name"), name));
            }
        }
        if p.container_port == 0 {
            errors.push(required(&format!("{at}.containerPort"), ""));
        } else if let Some(reason) = port_number(p.container_port) {
            errors.push(invalid(&format!("{at}.containerPort"), p.container_port, reason));
        }
        if let Some(h) = p.host_port.filter(|h| *h != 0)
            && let Some(reason) = port_number(h)
        {
            errors.push(invalid(&format!("{at}.hostPort"), h, reason));
        }
        match p.protocol.as_deref().unwrap_or_default() {
            "TCP" | "UDP" | "SCTP" => {}
            "" => errors.push(required(&format!("{at}.protocol"), "")),
            other => errors.push(not_supported(&format!("{at}.protocol"), other, &["SCTP", "TCP", "UDP"])),
        }
    }
}

/// `AccumulateUniqueHostPorts`: no host port (with its protocol and IP) twice.
fn host_ports(field: &str, containers: &[Container], errors: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        for (j, p) in c.ports.iter().flatten().enumerate() {
            let Some(port) = p.host_port.filter(|h| *h != 0) else { continue };
            let key = format!(
                "{}/{}/{port}",
                p.protocol.as_deref().unwrap_or_default(),
                p.host_ip.as_deref().unwrap_or_default()
            );
            if !seen.insert(key.clone()) {
                errors.push(duplicate(&format!("{field}[{i}].ports[{j}].hostPort"), key));
            }
        }
    }
}

/// `IsEnvVarName`: letters, digits, `_`, `-` and `.`, not starting with a digit,
/// and not `.`, `..` or starting with `..`.
fn env_name(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    if !ok {
        return Some(
            "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit",
        );
    }
    (name == "." || name.starts_with("..")).then_some("must not be '.' or start with '..'")
}

/// The env fieldRef paths (`validEnvDownwardAPIFieldPathExpressions`).
const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The resources an env resourceFieldRef reads (`validContainerResourceFieldPathExpressions`).
const ENV_RESOURCES: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// `ValidateEnv`: names, and each valueFrom with exactly one source (none with a
/// value), each source well-formed (`validateEnvVarValueFrom`).
fn env(field: &str, list: &[EnvVar], errors: &mut Vec<FieldError>) {
    for (i, e) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if e.name.is_empty() {
            errors.push(required(&format!("{at}.name"), ""));
        } else if let Some(reason) = env_name(&e.name) {
            errors.push(invalid(&format!("{at}.name"), &e.name, reason));
        }
        let Some(from) = &e.value_from else { continue };
        let at = format!("{at}.valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            field_ref(&format!("{at}.fieldRef"), f, &ENV_FIELD_PATHS, errors);
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            let rat = format!("{at}.resourceFieldRef");
            let huge =
                r.resource.starts_with("limits.hugepages-") || r.resource.starts_with("requests.hugepages-");
            if r.resource.is_empty() {
                errors.push(required(&format!("{rat}.resource"), ""));
            } else if !ENV_RESOURCES.contains(&r.resource.as_str()) && !huge {
                errors.push(not_supported(&format!("{rat}.resource"), &r.resource, &ENV_RESOURCES));
            }
        }
        for (name, selector) in [
            ("configMapKeyRef", from.config_map_key_ref.as_ref().map(|s| (&s.name, &s.key))),
            ("secretKeyRef", from.secret_key_ref.as_ref().map(|s| (&s.name, &s.key))),
        ] {
            let Some((ref_name, key)) = selector else { continue };
            sources += 1;
            key_selector(&format!("{at}.{name}"), ref_name, key, errors);
        }
        if sources == 0 {
            let why =
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`";
            errors.push(invalid(&at, "", why));
        } else if sources > 1 {
            errors.push(invalid(&at, "", "may not have more than one field specified at a time"));
        }
        if sources != 0 && e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errors.push(invalid(&at, "", "may not be specified when `value` is not empty"));
        }
    }
}

/// `validateConfigMapKeySelector` / `validateSecretKeySelector`: a name that is a
/// DNS subdomain, a key of letters, digits, `-`, `_` and `.`.
fn key_selector(at: &str, name: &str, key: &str, errors: &mut Vec<FieldError>) {
    if let Some(reason) = rules::dns1123_subdomain(name) {
        errors.push(invalid(&format!("{at}.name"), name, reason));
    }
    if key.is_empty() {
        errors.push(required(&format!("{at}.key"), ""));
    } else if let Some(reason) = config_map_key(key) {
        errors.push(invalid(&format!("{at}.key"), key, reason));
    }
}

/// `IsConfigMapKey`.
pub fn config_map_key(key: &str) -> Option<&'static str> {
    if key.len() > 253 {
        return Some("must be no more than 253 characters");
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Some("a valid config key must consist of alphanumeric characters, '-', '_' or '.'");
    }
    (key == "." || key == ".." || key.starts_with(".."))
        .then_some("must not be '.' or '..' or start with '..'")
}

/// `validateObjectFieldSelector`: apiVersion and fieldPath set, apiVersion v1, a
/// subscripted label or annotation with a valid key, or one of `paths`.
pub fn field_ref(at: &str, f: &ObjectFieldSelector, paths: &[&str], errors: &mut Vec<FieldError>) {
    let api_version = f.api_version.as_deref().unwrap_or_default();
    if api_version.is_empty() {
        return errors.push(required(&format!("{at}.apiVersion"), ""));
    }
    if f.field_path.is_empty() {
        return errors.push(required(&format!("{at}.fieldPath"), ""));
    }
    if api_version != "v1" {
        let why = format!("error converting fieldPath: unsupported pod version: {api_version}");
        return errors.push(invalid(&format!("{at}.fieldPath"), &f.field_path, why));
    }
    match f.field_path.strip_suffix("']").and_then(|p| p.split_once("['")) {
        Some(("metadata.labels", key)) => {
            if let Some(reason) = rules::qualified_name(key) {
                errors.push(invalid(at, key, reason));
            }
        }
        Some(("metadata.annotations", key)) => {
            if let Some(reason) = rules::qualified_name(&key.to_lowercase()) {
                errors.push(invalid(at, key, reason));
            }
        }
        Some((path, _)) => errors.push(invalid(at, path, "does not support subscript")),
        None if paths.contains(&f.field_path.as_str()) => {}
        None => errors.push(not_supported(&format!("{at}.fieldPath"), &f.field_path, paths)),
    }
}

/// `ValidateEnvFrom`: a prefix that is an env var name, exactly one of configMapRef
/// and secretRef, with a DNS-subdomain name.
fn env_from(field: &str, list: &[EnvFromSource], errors: &mut Vec<FieldError>) {
    for (i, e) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Some(prefix) = e.prefix.as_deref().filter(|p| !p.is_empty())
            && let Some(reason) = env_name(prefix)
        {
            errors.push(invalid(&format!("{at}.prefix"), prefix, reason));
        }
        let refs = [
            ("configMapRef", e.config_map_ref.as_ref().map(|r| &r.name)),
            ("secretRef", e.secret_ref.as_ref().map(|r| &r.name)),
        ];
        let mut sources = 0;
        for (name, r) in refs {
            let Some(ref_name) = r else { continue };
            sources += 1;
            if let Some(reason) = rules::dns1123_subdomain(ref_name) {
                errors.push(invalid(&format!("{at}.{name}.name"), ref_name, reason));
            }
        }
        if sources == 0 {
            errors.push(invalid(&at, "", "must specify one of: `configMapRef` or `secretRef`"));
        } else if sources > 1 {
            errors.push(invalid(&at, "", "may not have more than one field specified at a time"));
        }
    }
}

/// `ValidateVolumeMounts`: a name that is a volume of the pod, a mountPath unique in
/// the container, relative subPath and subPathExpr without `..` (not both), a known
/// mountPropagation (Bidirectional only when privileged).
fn mounts(field: &str, c: &Container, volumes: &HashSet<String>, errors: &mut Vec<FieldError>) {
    let mut paths: HashMap<&str, usize> = HashMap::new();
    let privileged = c.security_context.as_ref().and_then(|s| s.privileged) == Some(true);
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let at = format!("{field}[{i}]");
        mount(&at, m, volumes, errors);
        if m.mount_path.is_empty() {
            errors.push(required(&format!("{at}.mountPath"), ""));
        } else if paths.insert(&m.mount_path, i).is_some() {
            errors.push(invalid(&format!("{at}.mountPath"), &m.mount_path, "must be unique"));
        }
        match m.mount_propagation.as_deref() {
            None | Some("None" | "HostToContainer") => {}
            Some("Bidirectional") if !privileged => errors.push(forbidden(
                &format!("{at}.mountPropagation"),
                "Bidirectional mount propagation is available only to privileged containers",
            )),
            Some("Bidirectional") => {}
            Some(other) => errors.push(not_supported(
                &format!("{at}.mountPropagation"),
                other,
                &["Bidirectional", "HostToContainer", "None"],
            )),
        }
    }
}

fn mount(at: &str, m: &VolumeMount, volumes: &HashSet<String>, errors: &mut Vec<FieldError>) {
    if m.name.is_empty() {
        errors.push(required(&format!("{at}.name"), ""));
    } else if !volumes.contains(&m.name) {
        errors.push(not_found(&format!("{at}.name"), &m.name));
    }
    let sub_path = m.sub_path.as_deref().unwrap_or_default();
    if !sub_path.is_empty() {
        super::volumes::local_descending_path(&format!("{at}.subPath"), sub_path, errors);
    }
    let expr = m.sub_path_expr.as_deref().unwrap_or_default();
    if !expr.is_empty() {
        if !sub_path.is_empty() {
            errors.push(invalid(
                &format!("{at}.subPathExpr"),
                expr,
                "subPathExpr and subPath are mutually exclusive",
            ));
        }
        super::volumes::local_descending_path(&format!("{at}.subPathExpr"), expr, errors);
    }
}
