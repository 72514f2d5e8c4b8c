//! The parts of Kubernetes' pod validation run on workload templates, job templates
//! and sidecars.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Volume};

use super::{
    super::{FieldError, err},
    Wording,
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
    wording: Wording,
    at: &str,
    c: &'a Container,
    names: &mut HashSet<&'a str>,
    errors: &mut Vec<FieldError>,
) {
    let name = &c.name;
    if name.is_empty() {
        errors.push(err(&format!("{at}.name"), "is required"));
    } else if let Some(reason) = dns1123_label(name) {
        let why = match wording {
            Wording::Workloads => format!("{name:?} {reason}"),
            Wording::Jobs => format!("{name:?} must be a DNS label"),
        };
        errors.push(err(&format!("{at}.name"), why));
    } else if !names.insert(name) {
        let why = match wording {
            Wording::Workloads => format!("{name:?} is a duplicate container name"),
            Wording::Jobs => {
                format!("duplicate name {name:?} (init containers and containers share one namespace)")
            }
        };
        errors.push(err(&format!("{at}.name"), why));
    }
    let image = c.image.as_deref().unwrap_or_default();
    let missing = match wording {
        Wording::Workloads => image.trim().is_empty(),
        Wording::Jobs => image.is_empty(),
    };
    if missing {
        errors.push(err(&format!("{at}.image"), "is required"));
    }
}

/// What matters of a pod template for a workload: at least one container; every
/// container (init ones too) named with a unique DNS-1123 label and given an image;
/// restartPolicy Always (or unset, which defaults to it); no activeDeadlineSeconds.
/// Not the whole of Kubernetes' pod validation: volumes, probes, resources, ports
/// and the rest are left to the API server when the pods are created.
pub fn workload_pod_template(field: &str, template: &PodTemplateSpec, errors: &mut Vec<FieldError>) {
    let Some(spec) = &template.spec else {
        errors.push(err(&format!("{field}.spec.containers"), "at least one container is required"));
        return;
    };
    if spec.containers.is_empty() {
        errors.push(err(&format!("{field}.spec.containers"), "at least one container is required"));
    }
    let mut names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (at, c) in each_container(&format!("{field}.spec"), init, &spec.containers) {
        name_and_image(Wording::Workloads, &at, c, &mut names, errors);
    }
    if let Some(policy) = spec.restart_policy.as_deref().filter(|p| *p != "Always") {
        errors.push(err(
            &format!("{field}.spec.restartPolicy"),
            format!("{policy:?} is not supported: only Always"),
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errors.push(err(&format!("{field}.spec.activeDeadlineSeconds"), "is not supported in a workload"));
    }
}

/// The parts of Kubernetes' pod validation OpenKruise relies on for job templates
/// and sidecars: at least one container, container names that are DNS labels unique
/// across init and app containers, an image on every container, volume names that
/// are unique DNS labels, and volume mounts naming a volume.
pub fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Vec<FieldError>) {
    if spec.containers.is_empty() {
        errors.push(err(&format!("{path}.containers"), "is required"));
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
            errors.push(err(&field, format!("{:?} must be a DNS label", v.name)));
        } else if !volume_names.insert(v.name.as_str()) {
            errors.push(err(&field, format!("duplicate volume {:?}", v.name)));
        }
    }
    let mut names = HashSet::new();
    for (at, c) in each_container(path, init, containers) {
        name_and_image(Wording::Jobs, &at, c, &mut names, errors);
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
                "spec.template.spec.initContainers[0].image: is required",
                "spec.template.spec.containers[1].name: \"app\" is a duplicate container name",
                "spec.template.spec.containers[2].name: \"Bad\" must consist of lower case alphanumeric \
                 characters or '-', and start and end with one",
                "spec.template.spec.containers[3].name: is required",
                "spec.template.spec.containers[3].image: is required",
                "spec.template.spec.restartPolicy: \"Never\" is not supported: only Always",
                "spec.template.spec.activeDeadlineSeconds: is not supported in a workload",
            ]
        );
        errors.clear();
        workload_pod_template("spec.template", &template(&[], &[]), &mut errors);
        assert_eq!(fields(&errors), ["spec.template.spec.containers: at least one container is required"]);
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
                "spec.template.spec.volumes[0].name: \"v_1\" must be a DNS label",
                "spec.template.spec.volumes[2].name: duplicate volume \"d\"",
                "spec.template.spec.containers[0].name: duplicate name \"app\" (init containers and containers share one namespace)",
                "spec.template.spec.containers[0].image: is required",
                "spec.template.spec.containers[0].volumeMounts[0].name: volume \"logs\" not found",
                "spec.template.spec.containers[1].name: \"Bad\" must be a DNS label",
            ]
        );
        let mut errors = Vec::new();
        pod_spec(&PodSpec::default(), "spec", &mut errors);
        assert_eq!(errors[0].to_string(), "spec.containers: is required");
    }
}
