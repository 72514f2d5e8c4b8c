//! Small checks the kinds share: names, label selectors, image references and the
//! parts of Kubernetes' pod validation OpenKruise runs on templates and sidecars.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::{
    api::core::v1::{Container, PodSpec, Volume},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
};

use super::{FieldError, err};

/// The object-name rule of SidecarSet, BroadcastJob and AdvancedCronJob: letters,
/// digits and `-`, at most 63 characters.
pub(crate) fn object_name(name: Option<&str>, errors: &mut Vec<FieldError>) {
    let name = name.unwrap_or_default();
    if name.is_empty() {
        // generateName objects are named by the API server after admission
        return;
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        errors.push(err("metadata.name", format!("{name:?} must consist of alphanumeric characters or '-'")));
    }
    if name.len() > 63 {
        errors.push(err("metadata.name", "must be no more than 63 characters"));
    }
}

/// A DNS-1123 label: lower-case letters, digits and `-`, starting and ending with a
/// letter or digit, at most 63 characters.
pub(crate) fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.is_empty()
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The name part of a qualified name or a label value: at most 63 characters of
/// letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
fn is_name_part(s: &str) -> bool {
    let edge = |c: Option<u8>| c.is_some_and(|b| b.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.bytes().next())
        && edge(s.bytes().last())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A label key or similar: `[prefix/]name`, the prefix a DNS subdomain.
pub(crate) fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(s),
    }
}

/// A label value: empty, or a name part.
pub(crate) fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

/// What Kubernetes checks when it turns a label selector into a selector: keys are
/// qualified names, values are label values, `In`/`NotIn` have values and
/// `Exists`/`DoesNotExist` have none.
pub(crate) fn label_selector(sel: &LabelSelector, path: &str, errors: &mut Vec<FieldError>) {
    for (key, value) in sel.match_labels.iter().flatten() {
        if !is_qualified_name(key) {
            errors.push(err(&format!("{path}.matchLabels"), format!("{key:?} is not a valid label key")));
        }
        if !is_label_value(value) {
            errors.push(err(&format!("{path}.matchLabels"), format!("{value:?} is not a valid label value")));
        }
    }
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        requirement(req, &format!("{path}.matchExpressions[{i}]"), errors);
    }
}

fn requirement(req: &LabelSelectorRequirement, path: &str, errors: &mut Vec<FieldError>) {
    if !is_qualified_name(&req.key) {
        errors.push(err(&format!("{path}.key"), format!("{:?} is not a valid label key", req.key)));
    }
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => errors
            .push(err(&format!("{path}.values"), "must be specified when `operator` is 'In' or 'NotIn'")),
        "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(err(
            &format!("{path}.values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        op => {
            errors.push(err(&format!("{path}.operator"), format!("{op:?} is not a valid selector operator")))
        }
    }
    for v in values.iter().filter(|v| !is_label_value(v)) {
        errors.push(err(&format!("{path}.values"), format!("{v:?} is not a valid label value")));
    }
}

/// Whether a selector selects by nothing.
pub(crate) fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Parses an image reference as containerd and Docker read it (`nginx`,
/// `registry:5000/team/app:1.2`, `app@sha256:…`), or says why it is not one.
pub(crate) fn image_reference(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("repository name must have at least one component".into());
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest.split_once(':').ok_or("invalid digest format")?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !algorithm_ok || !hex_ok || (algorithm == "sha256" && hex.len() != 64) {
            return Err("invalid digest format".into());
        }
    }
    // a tag follows the last ':' after the last '/'
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err("invalid reference format".into());
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase()));
    if has_domain {
        let domain = components.remove(0);
        let (host, port) = domain.split_once(':').map_or((domain, None), |(h, p)| (h, Some(p)));
        let host_ok = host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
        if !host_ok || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
            return Err("invalid reference format".into());
        }
    }
    if name.len() > 255 {
        return Err("repository name must not be more than 255 characters".into());
    }
    for c in &components {
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("repository name must be lowercase".into());
        }
        if !is_path_component(c) {
            return Err("invalid reference format".into());
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// Names that occur more than once, in order of their second occurrence.
pub(crate) fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    names.into_iter().filter(|n| !seen.insert(*n)).collect()
}

/// The parts of Kubernetes' pod validation OpenKruise relies on for templates and
/// sidecars: at least one container, container names
/// that are DNS labels unique across init and app containers, an image on every
/// container, volume names that are unique DNS labels, and volume mounts naming a
/// volume.
pub(crate) fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Vec<FieldError>) {
    if spec.containers.is_empty() {
        errors.push(err(&format!("{path}.containers"), "is required"));
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    containers(init, &spec.containers, volumes, path, errors);
}

/// The container and volume checks of [`pod_spec`] on init containers, containers
/// and volumes given apart (a SidecarSet's).
pub(crate) fn containers(
    init: &[Container],
    containers: &[Container],
    volumes: &[Volume],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let mut volume_names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        if !is_dns_label(&v.name) {
            errors.push(err(&field, format!("{:?} must be a DNS label", v.name)));
        } else if !volume_names.insert(v.name.as_str()) {
            errors.push(err(&field, format!("duplicate volume {:?}", v.name)));
        }
    }
    let mut names = HashSet::new();
    let all = init.iter().map(|c| ("initContainers", c)).chain(containers.iter().map(|c| ("containers", c)));
    let mut index = (0, 0);
    for (list, c) in all {
        let i = if list == "initContainers" { &mut index.0 } else { &mut index.1 };
        let at = format!("{path}.{list}[{i}]");
        *i += 1;
        if c.name.is_empty() {
            errors.push(err(&format!("{at}.name"), "is required"));
        } else if !is_dns_label(&c.name) {
            errors.push(err(&format!("{at}.name"), format!("{:?} must be a DNS label", c.name)));
        } else if !names.insert(c.name.as_str()) {
            errors.push(err(
                &format!("{at}.name"),
                format!("duplicate name {:?} (init containers and containers share one namespace)", c.name),
            ));
        }
        if c.image.as_deref().is_none_or(str::is_empty) {
            errors.push(err(&format!("{at}.image"), "is required"));
        }
        for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
            if !volume_names.contains(m.name.as_str()) {
                errors.push(err(
                    &format!("{at}.volumeMounts[{j}].name"),
                    format!("volume {:?} not found", m.name),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_label_parts() {
        assert!(is_dns_label("web-1") && !is_dns_label("Web") && !is_dns_label("-a") && !is_dns_label(""));
        assert!(is_qualified_name("apps.kruise.io/pod-uid") && is_qualified_name("app"));
        assert!(!is_qualified_name("a/b/c") && !is_qualified_name("-x") && !is_qualified_name("UPPER./x"));
        assert!(is_label_value("") && is_label_value("v1.2_x") && !is_label_value("bad value"));
        let mut errors = Vec::new();
        object_name(Some("Good-Name-1"), &mut errors);
        assert!(errors.is_empty());
        object_name(Some("no_underscores"), &mut errors);
        object_name(Some(&"a".repeat(64)), &mut errors);
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "metadata.name: \"no_underscores\" must consist of alphanumeric characters or '-'",
                "metadata.name: must be no more than 63 characters"
            ]
        );
    }

    #[test]
    fn selectors_follow_the_operator_rules() {
        let good: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                 {"key": "gpu", "operator": "Exists"}]
        }))
        .unwrap();
        let mut errors = Vec::new();
        label_selector(&good, "spec.selector", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let bad: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"bad key!": "x"},
            "matchExpressions": [{"key": "zone", "operator": "In"},
                                 {"key": "gpu", "operator": "Exists", "values": ["y"]},
                                 {"key": "k", "operator": "Near", "values": ["z"]}]
        }))
        .unwrap();
        label_selector(&bad, "spec.selector", &mut errors);
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            [
                "spec.selector.matchLabels",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator"
            ]
        );
        assert!(selector_is_empty(&LabelSelector::default()) && !selector_is_empty(&good));
    }

    #[test]
    fn image_references() {
        for good in [
            "nginx",
            "nginx:1.27",
            "library/nginx:latest",
            "docker.io/library/nginx",
            "registry.example.com:5000/team/app:v1.2.3",
            "localhost/app",
            "ghcr.io/org/my_app__x-y.z:tag_1",
            "busybox@sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07",
        ] {
            assert_eq!(image_reference(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "repository name must have at least one component"),
            ("Nginx", "repository name must be lowercase"),
            ("nginx:", "invalid reference format"),
            ("nginx:bad tag", "invalid reference format"),
            ("-nginx", "invalid reference format"),
            ("a//b", "invalid reference format"),
            ("nginx@sha256:abc", "invalid digest format"),
            ("host:port/app", "invalid reference format"),
        ] {
            assert_eq!(image_reference(bad), Err(why.to_owned()), "{bad}");
        }
    }

    #[test]
    fn pod_specs() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }))
        .unwrap();
        let mut errors = Vec::new();
        pod_spec(&spec, "spec.template.spec", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let bad: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "app", "image": "busybox"}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "logs", "mountPath": "/l"}]}],
        }))
        .unwrap();
        pod_spec(&bad, "spec.template.spec", &mut errors);
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "spec.template.spec.containers[0].name: duplicate name \"app\" (init containers and containers share one namespace)",
                "spec.template.spec.containers[0].image: is required",
                "spec.template.spec.containers[0].volumeMounts[0].name: volume \"logs\" not found",
            ]
        );
        let mut errors = Vec::new();
        pod_spec(&PodSpec::default(), "spec", &mut errors);
        assert_eq!(errors[0].to_string(), "spec.containers: is required");
    }
}
