//! The parts of Kubernetes' pod validation run on workload templates, job templates
//! and sidecars.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Volume};

use super::{
    super::{
        FieldError,
        field::{duplicate, forbidden, invalid, not_found, not_supported, required},
    },
    names::dns1123_label,
};

/// Init containers, then containers, each with its path (`{field}.initContainers[0]`).
fn each_container<'a>(
    field: &'a str,
    init: &'a [Container],
    containers: &'a [Container],
) -> impl Iterator<Item = (String, &'a Container)> + 'a {
    let list = move |name: &'static str, list: &'a [Container]| {
        list.iter().enumerate().map(move |(i, c)| (format!("{field}.{name}[{i}]"), c))
    };
    list("initContainers", init).chain(list("containers", containers))
}

/// A container at `at`: a name that is a DNS-1123 label used by no container before
/// it (`names` holds theirs), and an image.
fn name_and_image<'a>(
    at: &str,
    c: &'a Container,
    names: &mut HashSet<&'a str>,
    errors: &mut Vec<FieldError>,
) {
    let name = &c.name;
    if name.is_empty() {
        errors.push(required(&format!("{at}.name"), ""));
    } else if let Some(reason) = dns1123_label(name) {
        errors.push(invalid(&format!("{at}.name"), name, reason));
    } else if !names.insert(name) {
        errors.push(duplicate(&format!("{at}.name"), name));
    }
    if c.image.as_deref().unwrap_or_default().trim().is_empty() {
        errors.push(required(&format!("{at}.image"), ""));
    }
}

/// What matters of a pod template for a workload: at least one container; every
/// container (init ones too) named with a unique DNS-1123 label and given an image;
/// restartPolicy Always (or unset, which defaults to it); no activeDeadlineSeconds.
/// Not the whole of Kubernetes' pod validation: volumes, probes, resources, ports
/// and the rest are left to the API server when the pods are created.
pub fn workload_pod_template(field: &str, template: &PodTemplateSpec, errors: &mut Vec<FieldError>) {
    let Some(spec) = &template.spec else {
        errors.push(required(&format!("{field}.spec.containers"), ""));
        return;
    };
    if spec.containers.is_empty() {
        errors.push(required(&format!("{field}.spec.containers"), ""));
    }
    let mut names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (at, c) in each_container(&format!("{field}.spec"), init, &spec.containers) {
        name_and_image(&at, c, &mut names, errors);
    }
    if let Some(policy) = spec.restart_policy.as_deref().filter(|p| *p != "Always") {
        errors.push(not_supported(&format!("{field}.spec.restartPolicy"), policy, &["Always"]));
    }
    if spec.active_deadline_seconds.is_some() {
        errors.push(forbidden(
            &format!("{field}.spec.activeDeadlineSeconds"),
            "is not supported in a workload",
        ));
    }
}

/// The parts of Kubernetes' pod validation OpenKruise relies on for job templates
/// and sidecars: at least one container, container names that are DNS labels unique
/// across init and app containers, an image on every container, volume names that
/// are unique DNS labels, and volume mounts naming a volume.
pub fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Vec<FieldError>) {
    if spec.containers.is_empty() {
        errors.push(required(&format!("{path}.containers"), ""));
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    containers(init, &spec.containers, volumes, path, errors);
}

/// The container and volume checks of [`pod_spec`] on init containers, containers
/// and volumes given apart (a SidecarSet's).
pub fn containers(
    init: &[Container],
    containers: &[Container],
    volumes: &[Volume],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let mut volume_names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        if dns1123_label(&v.name).is_some() {
            errors.push(invalid(&field, &v.name, "must be a DNS label"));
        } else if !volume_names.insert(v.name.as_str()) {
            errors.push(duplicate(&field, &v.name));
        }
    }
    let mut names = HashSet::new();
    for (at, c) in each_container(path, init, containers) {
        name_and_image(&at, c, &mut names, errors);
        for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
            if !volume_names.contains(m.name.as_str()) {
                errors.push(not_found(&format!("{at}.volumeMounts[{j}].name"), &m.name));
            }
        }
    }
}

/// A pod template with these labels and (name, image) containers; an empty image
/// is left unset.
#[cfg(test)]
pub(crate) fn template(label: &[(&str, &str)], containers: &[(&str, &str)]) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(kube::core::ObjectMeta {
            labels: Some(label.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: containers
                .iter()
                .map(|(n, i)| Container {
                    name: n.to_string(),
                    image: (!i.is_empty()).then(|| i.to_string()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::rules::tests::fields;

    #[test]
    fn pod_template_basics() {
        let mut errors = Vec::new();
        workload_pod_template("spec.template", &template(&[], &[("app", "nginx")]), &mut errors);
        assert!(errors.is_empty());
        let mut bad = template(&[], &[("app", "nginx"), ("app", "x"), ("Bad", "x"), ("", "")]);
        let spec = bad.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![Container { name: "init".into(), ..Default::default() }]);
        spec.restart_policy = Some("Never".into());
        spec.active_deadline_seconds = Some(5);
        workload_pod_template("spec.template", &bad, &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "spec.template.spec.initContainers[0].image: Required value",
                "spec.template.spec.containers[1].name: Duplicate value: \"app\"",
                "spec.template.spec.containers[2].name: Invalid value: \"Bad\": must consist of lower case alphanumeric characters or '-', and start and end with one",
                "spec.template.spec.containers[3].name: Required value",
                "spec.template.spec.containers[3].image: Required value",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: Forbidden: is not supported in a workload",
            ]
        );
        errors.clear();
        workload_pod_template("spec.template", &template(&[], &[]), &mut errors);
        assert_eq!(fields(&errors), ["spec.template.spec.containers: Required value"]);
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
            "containers": [{"name": "app", "volumeMounts": [{"name": "logs", "mountPath": "/l"}]},
                           {"name": "Bad", "image": " "}],
            "volumes": [{"name": "v_1", "emptyDir": {}}, {"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}]
        }))
        .unwrap();
        pod_spec(&bad, "spec.template.spec", &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "spec.template.spec.volumes[0].name: Invalid value: \"v_1\": must be a DNS label",
                "spec.template.spec.volumes[2].name: Duplicate value: \"d\"",
                "spec.template.spec.containers[0].name: Duplicate value: \"app\"",
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"logs\"",
                "spec.template.spec.containers[1].name: Invalid value: \"Bad\": must consist of lower case \
                 alphanumeric characters or '-', and start and end with one",
                "spec.template.spec.containers[1].image: Required value",
            ]
        );
        let mut errors = Vec::new();
        pod_spec(&PodSpec::default(), "spec", &mut errors);
        assert_eq!(errors[0].to_string(), "spec.containers: Required value");
    }
}
