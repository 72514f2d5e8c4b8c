//! Kubernetes' pod validation (`k8s.io/kubernetes/pkg/apis/core/validation`), as
//! OpenKruise v1.9.0 runs it on pod templates and sidecars: one module every kind
//! shares, each check naming the Kubernetes function it follows.
//!
//! Where OpenKruise runs it: CloneSet, Advanced DaemonSet, a UnitedDeployment's
//! deploymentTemplate, BroadcastJob and AdvancedCronJob templates
//! (`ValidatePodTemplateSpec`), SidecarSet containers (`ValidatePodCreate` on a pod
//! holding them). Advanced StatefulSet and the UnitedDeployment StatefulSet
//! templates get only `ValidatePodTemplateSpecForStatefulSet`'s metadata checks.
//!
//! Templates are checked after Kubernetes' pod defaults, as OpenKruise's convertor
//! applies them before converting (`ConvertPodTemplateSpec`). Left out, as checks no
//! OpenKruise user is likely to reach: security contexts, host aliases, DNS config
//! options, topology spread constraints, resource claims, resize policies, OS and
//! Windows fields, volume devices, and the volume sources beyond the common ones
//! (their count is checked, not their fields).

mod containers;
pub mod decoding;
mod handlers;
mod quantity;
mod resources;
mod volumes;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Volume};

use super::{
    FieldError,
    field::{forbidden, invalid, not_supported, required, too_long},
    rules::{self, dns1123_label},
};
use crate::defaulting::pod as defaults;

/// `ValidatePodTemplateSpec` on `template` as OpenKruise sees it: its metadata
/// (labels, annotations) and spec, after the pod defaults.
pub fn template(field: &str, template: &PodTemplateSpec, errors: &mut Vec<FieldError>) {
    template_with_claims(field, template, &[], errors);
}

/// [`template`] without the pod defaults first, as OpenKruise checks an
/// AdvancedCronJob's templates (its mutating webhook defaulted them).
pub fn template_as_is(field: &str, t: &PodTemplateSpec, errors: &mut Vec<FieldError>) {
    metadata(field, t, errors);
    pod_spec(&format!("{field}.spec"), &t.spec.clone().unwrap_or_default(), errors);
}

/// [`template`] of a template whose volumes include one per claim template named in
/// `claims` (CloneSet mocks its volumeClaimTemplates into the pod's volumes before
/// checking, so that mounts may name them).
pub fn template_with_claims(
    field: &str,
    t: &PodTemplateSpec,
    claims: &[String],
    errors: &mut Vec<FieldError>,
) {
    metadata(field, t, errors);
    let mut spec = t.spec.clone().unwrap_or_default();
    defaults::pod_spec(&mut spec);
    for claim in claims {
        spec.volumes.get_or_insert_default().push(Volume {
            name: claim.clone(),
            persistent_volume_claim: Some(k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        });
    }
    pod_spec(&format!("{field}.spec"), &spec, errors);
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        errors.push(forbidden(
            &format!("{field}.spec.ephemeralContainers"),
            "ephemeral containers are not allowed in a pod template",
        ));
    }
}

/// A workload's template (`ValidatePodTemplateSpecForReplicaSet` and the workloads'
/// own checks): [`template_with_claims`], restartPolicy Always, no
/// activeDeadlineSeconds.
pub fn workload_template(field: &str, t: &PodTemplateSpec, claims: &[String], errors: &mut Vec<FieldError>) {
    template_with_claims(field, t, claims, errors);
    let spec = t.spec.clone().unwrap_or_default();
    restart_always_without_deadline(field, &spec, errors);
}

/// restartPolicy Always (unset is defaulted to it) and no activeDeadlineSeconds, as
/// the workloads check their templates.
pub fn restart_always_without_deadline(field: &str, spec: &PodSpec, errors: &mut Vec<FieldError>) {
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if !matches!(policy, "Always" | "") {
        errors.push(not_supported(&format!("{field}.spec.restartPolicy"), policy, &["Always"]));
    }
    if spec.active_deadline_seconds.is_some() {
        errors.push(forbidden(
            &format!("{field}.spec.activeDeadlineSeconds"),
            "is not supported in a workload",
        ));
    }
}

/// `ValidatePodTemplateSpecForStatefulSet`'s checks beyond the selector: the
/// template's labels and annotations only (Kubernetes does not validate a
/// StatefulSet's pod spec there).
pub fn metadata(field: &str, t: &PodTemplateSpec, errors: &mut Vec<FieldError>) {
    let meta = t.metadata.clone().unwrap_or_default();
    rules::labels(&format!("{field}.labels"), meta.labels.as_ref(), errors);
    // (OpenKruise allows any pod deletion cost: AllowInvalidPodDeletionCost)
    annotations(&format!("{field}.annotations"), meta.annotations.as_ref(), errors);
}

/// The largest total size of an object's annotations (`TotalAnnotationSizeLimitB`).
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// `ValidateAnnotations`: keys are qualified names (checked lowercased), at most
/// 256 KiB in all.
pub fn annotations(
    field: &str,
    annotations: Option<&BTreeMap<String, String>>,
    errors: &mut Vec<FieldError>,
) {
    let mut size = 0;
    for (key, value) in annotations.into_iter().flatten() {
        if let Some(reason) = rules::qualified_name(&key.to_lowercase()) {
            errors.push(invalid(field, key, reason));
        }
        size += key.len() + value.len();
    }
    if size > ANNOTATIONS_LIMIT {
        errors.push(too_long(field, ANNOTATIONS_LIMIT));
    }
}

/// SidecarSet containers (`validateContainersForSidecarSet`): init containers and
/// containers with the set's volumes, checked as the spec of a pod holding them
/// (`ValidatePodCreate`), at the set's own paths (`spec.containers[0]`). A set with
/// no containers is checked with a stand-in app container, as OpenKruise does.
pub fn sidecar_containers(
    init: &[Container],
    app: &[Container],
    volumes: &[Volume],
    errors: &mut Vec<FieldError>,
) {
    let stand_in = || {
        vec![Container {
            name: "test".into(),
            image: Some("busybox".into()),
            image_pull_policy: Some("IfNotPresent".into()),
            termination_message_policy: Some("File".into()),
            ..Default::default()
        }]
    };
    let spec = PodSpec {
        dns_policy: Some("ClusterFirst".into()),
        restart_policy: Some("Always".into()),
        init_containers: Some(init.to_vec()),
        containers: if app.is_empty() { stand_in() } else { app.to_vec() },
        volumes: Some(volumes.to_vec()),
        service_account_name: Some("default".into()),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    pod_spec("spec", &spec, errors);
    // `validateContainersOnlyForPod`: a pod's images carry no surrounding whitespace
    containers::image_whitespace("spec", &spec, errors);
}

/// `ValidatePodSpec`: volumes, containers, init containers, restartPolicy,
/// dnsPolicy, nodeSelector, affinity, readiness gates, names, activeDeadlineSeconds
/// and tolerations.
pub fn pod_spec(field: &str, spec: &PodSpec, errors: &mut Vec<FieldError>) {
    decoding::spec(field, spec, errors);
    let names =
        volumes::volumes(&format!("{field}.volumes"), spec.volumes.as_deref().unwrap_or_default(), errors);
    let grace = spec.termination_grace_period_seconds;
    containers::containers(field, spec, &names, grace, errors);
    match spec.restart_policy.as_deref().unwrap_or_default() {
        "Always" | "OnFailure" | "Never" => {}
        "" => errors.push(required(&format!("{field}.restartPolicy"), "")),
        other => errors.push(not_supported(
            &format!("{field}.restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns = spec.dns_policy.as_deref().unwrap_or_default();
    match dns {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errors.push(required(&format!("{field}.dnsPolicy"), "")),
        other => errors.push(not_supported(
            &format!("{field}.dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    if dns == "None" && spec.dns_config.is_none() {
        errors.push(required(
            &format!("{field}.dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    rules::labels(&format!("{field}.nodeSelector"), spec.node_selector.as_ref(), errors);
    affinity(&format!("{field}.affinity"), spec, errors);
    for (i, gate) in spec.readiness_gates.iter().flatten().enumerate() {
        if let Some(reason) = rules::qualified_name(&gate.condition_type) {
            errors.push(invalid(
                &format!("{field}.readinessGates[{i}].conditionType"),
                &gate.condition_type,
                reason,
            ));
        }
    }
    for (name, value, rule) in [
        ("serviceAccountName", &spec.service_account_name, rules::dns1123_subdomain as fn(&str) -> _),
        ("nodeName", &spec.node_name, rules::dns1123_subdomain),
        ("hostname", &spec.hostname, dns1123_label),
        ("subdomain", &spec.subdomain, dns1123_label),
        ("priorityClassName", &spec.priority_class_name, rules::dns1123_subdomain),
    ] {
        let value = value.as_deref().unwrap_or_default();
        if !value.is_empty()
            && let Some(reason) = rule(value)
        {
            errors.push(invalid(&format!("{field}.{name}"), value, reason));
        }
    }
    if let Some(d) = spec.active_deadline_seconds.filter(|d| !(1..=i64::from(i32::MAX)).contains(d)) {
        errors.push(invalid(
            &format!("{field}.activeDeadlineSeconds"),
            d,
            "must be between 1 and 2147483647",
        ));
    }
    if let Some(list) = &spec.tolerations {
        rules::tolerations(&format!("{field}.tolerations"), list, errors);
    }
}

/// `validateAffinity`: the node affinity's terms (at least one required term when
/// required is set), and a topology key on every pod (anti-)affinity term.
fn affinity(field: &str, spec: &PodSpec, errors: &mut Vec<FieldError>) {
    let Some(a) = &spec.affinity else { return };
    if let Some(node) = &a.node_affinity {
        let at = format!("{field}.nodeAffinity");
        if let Some(required_terms) = &node.required_during_scheduling_ignored_during_execution {
            let terms_at = format!("{at}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
            if required_terms.node_selector_terms.is_empty() {
                errors.push(required(&terms_at, "at least one node selector term"));
            }
            for (i, term) in required_terms.node_selector_terms.iter().enumerate() {
                rules::node_selector_term(&format!("{terms_at}[{i}]"), term, errors);
            }
        }
        if let Some(terms) = &node.preferred_during_scheduling_ignored_during_execution {
            rules::preferred_terms(
                &format!("{at}.preferredDuringSchedulingIgnoredDuringExecution"),
                terms,
                errors,
            );
        }
    }
    let pod_terms = [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ];
    for (name, terms) in pod_terms {
        let Some((hard, soft)) = terms else { continue };
        let hard =
            hard.iter().flatten().enumerate().map(|(i, t)| {
                (format!("{field}.{name}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"), t)
            });
        let soft = soft.iter().flatten().enumerate().map(|(i, t)| {
            (
                format!(
                    "{field}.{name}.preferredDuringSchedulingIgnoredDuringExecution[{i}].podAffinityTerm"
                ),
                &t.pod_affinity_term,
            )
        });
        for (at, term) in hard.chain(soft) {
            if term.topology_key.is_empty() {
                errors.push(required(&format!("{at}.topologyKey"), "can not be empty"));
            } else if let Some(reason) = rules::qualified_name(&term.topology_key) {
                errors.push(invalid(&format!("{at}.topologyKey"), &term.topology_key, reason));
            }
            if let Some(sel) = &term.label_selector {
                rules::label_selector(&format!("{at}.labelSelector"), sel, errors);
            }
        }
    }
}

/// A pod template with these labels and (name, image) containers; an empty image
/// is left unset.
#[cfg(test)]
pub(crate) fn test_template(label: &[(&str, &str)], containers: &[(&str, &str)]) -> PodTemplateSpec {
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
mod tests;
