//! What Go's decoding of a pod spec or claim refuses and serde's does not: a
//! quantity that does not parse. OpenKruise's webhooks decode the whole object
//! before any check and answer 400 when that fails, for every kind, including the
//! templates they do not validate (Advanced StatefulSet, a UnitedDeployment's
//! StatefulSet and CloneSet templates); the CRDs leave quantities open (see
//! `stevedore_proto::crd::core_schema`), so this is where they are read.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{DownwardAPIVolumeFile, PersistentVolumeClaimSpec, PodSpec, VolumeResourceRequirements},
    apimachinery::pkg::api::resource::Quantity,
};

use super::{
    super::{FieldError, field::unreadable},
    quantity,
};

fn one(at: &str, q: &Quantity, errors: &mut Vec<FieldError>) {
    if let Err(why) = quantity::parse(&q.0) {
        errors.push(unreadable(at, &q.0, why));
    }
}

fn list(at: &str, list: Option<&BTreeMap<String, Quantity>>, errors: &mut Vec<FieldError>) {
    for (name, q) in list.into_iter().flatten() {
        one(&format!("{at}[{name}]"), q, errors);
    }
}

fn claim_resources(at: &str, r: Option<&VolumeResourceRequirements>, errors: &mut Vec<FieldError>) {
    if let Some(r) = r {
        list(&format!("{at}.limits"), r.limits.as_ref(), errors);
        list(&format!("{at}.requests"), r.requests.as_ref(), errors);
    }
}

fn downward_items(at: &str, items: Option<&Vec<DownwardAPIVolumeFile>>, errors: &mut Vec<FieldError>) {
    for (k, item) in items.into_iter().flatten().enumerate() {
        if let Some(d) = item.resource_field_ref.as_ref().and_then(|r| r.divisor.as_ref()) {
            one(&format!("{at}[{k}].resourceFieldRef.divisor"), d, errors);
        }
    }
}

/// Every quantity of `spec` (at `field`): the containers' resources and env
/// divisors, the pod's overhead and resources, emptyDir size limits, downward API
/// divisors and ephemeral claim resources.
pub fn spec(field: &str, spec: &PodSpec, errors: &mut Vec<FieldError>) {
    let containers = [
        ("initContainers", spec.init_containers.clone().unwrap_or_default()),
        ("containers", spec.containers.clone()),
    ];
    for (kind, list_of) in containers {
        for (i, c) in list_of.iter().enumerate() {
            let at = format!("{field}.{kind}[{i}]");
            if let Some(r) = &c.resources {
                list(&format!("{at}.resources.limits"), r.limits.as_ref(), errors);
                list(&format!("{at}.resources.requests"), r.requests.as_ref(), errors);
            }
            for (j, e) in c.env.iter().flatten().enumerate() {
                let divisor =
                    e.value_from.as_ref().and_then(|v| v.resource_field_ref.as_ref()?.divisor.as_ref());
                if let Some(d) = divisor {
                    one(&format!("{at}.env[{j}].valueFrom.resourceFieldRef.divisor"), d, errors);
                }
            }
        }
    }
    list(&format!("{field}.overhead"), spec.overhead.as_ref(), errors);
    if let Some(r) = &spec.resources {
        list(&format!("{field}.resources.limits"), r.limits.as_ref(), errors);
        list(&format!("{field}.resources.requests"), r.requests.as_ref(), errors);
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let at = format!("{field}.volumes[{i}]");
        if let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
            one(&format!("{at}.emptyDir.sizeLimit"), limit, errors);
        }
        downward_items(
            &format!("{at}.downwardAPI.items"),
            v.downward_api.as_ref().and_then(|d| d.items.as_ref()),
            errors,
        );
        for (s, source) in v.projected.iter().flat_map(|p| p.sources.iter().flatten()).enumerate() {
            let items = source.downward_api.as_ref().and_then(|d| d.items.as_ref());
            downward_items(&format!("{at}.projected.sources[{s}].downwardAPI.items"), items, errors);
        }
        let claim = v.ephemeral.as_ref().and_then(|e| e.volume_claim_template.as_ref());
        claim_resources(
            &format!("{at}.ephemeral.volumeClaimTemplate.spec.resources"),
            claim.and_then(|c| c.spec.resources.as_ref()),
            errors,
        );
    }
}

/// The quantities of claim templates (`field` their list): each claim's resources.
pub fn claims<'a>(
    field: &str,
    specs: impl Iterator<Item = Option<&'a PersistentVolumeClaimSpec>>,
    errors: &mut Vec<FieldError>,
) {
    for (i, spec) in specs.enumerate() {
        claim_resources(
            &format!("{field}[{i}].spec.resources"),
            spec.and_then(|s| s.resources.as_ref()),
            errors,
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::rules::tests::fields;

    #[test]
    fn every_quantity_of_a_pod_is_read() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "one"}, "requests": {"cpu": 0.5}},
                            "env": [{"name": "E", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1x"}}}]}],
            "overhead": {"memory": "lots"},
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "w", "emptyDir": {"sizeLimit": "big"}},
                        {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"resources": {"requests": {"storage": "?"}}}}}}]
        }))
        .unwrap();
        let mut errors = Vec::new();
        super::spec("s", &spec, &mut errors);
        let got: Vec<String> =
            fields(&errors).into_iter().map(|e| e.split(": Invalid").next().unwrap().to_owned()).collect();
        assert_eq!(
            got,
            [
                "s.containers[0].resources.limits[cpu]",
                "s.containers[0].env[0].valueFrom.resourceFieldRef.divisor",
                "s.overhead[memory]",
                "s.volumes[1].emptyDir.sizeLimit",
                "s.volumes[2].ephemeral.volumeClaimTemplate.spec.resources.requests[storage]",
            ]
        );
        assert!(errors.iter().all(|e| e.unreadable), "answered 400, as a decoding failure");
    }
}
