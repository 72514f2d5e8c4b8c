//! SidecarSet's rules.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Volume};
use stevedore_proto::crd::sidecar_set::{
    PodInjectPolicy, ShareVolumePolicyType, SidecarContainer, SidecarContainerUpgradeType,
    SidecarSetUpdateStrategy, SidecarSetUpdateStrategyType, v1beta1::SidecarSet,
};

use super::super::{
    FieldError,
    field::{invalid, required},
    pod, rules,
};

/// SidecarSet: the object name rule; a valid, non-empty selector (and
/// namespaceSelector when set); at least one container or init container, passing
/// pod validation together with the set's volumes (names unique across both lists);
/// no native-sidecar init container under RollingUpdate; resourcesPolicy only on
/// containers or native-sidecar init containers, never with resources, with some
/// limits or requests; transferEnv fieldRefs to metadata.name, labels or
/// annotations; an injection revision naming a revisionName or customVersion;
/// under RollingUpdate, not both a non-zero partition and a selector, a valid update
/// selector, partition and maxUnavailable as ints or whole percentages, and valid
/// priority and scatter strategies; patchPodMetadata with annotations, a policy and
/// no key twice. On update, no new container names and no upgradeType change.
pub fn sidecar_set(new: &SidecarSet, old: Option<&SidecarSet>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    rules::short_object_name(new.metadata.name.as_deref(), &mut errors);
    let spec = &new.spec;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let containers = spec.containers.as_deref().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.clone().unwrap_or_default() == SidecarSetUpdateStrategyType::RollingUpdate;
    if rolling && init.iter().any(|c| is_native_sidecar(&c.container)) {
        errors.push(required(
            "spec.updateStrategy",
            "init containers with restartPolicy Always cannot be updated in place",
        ));
    }
    match &spec.selector {
        None => errors.push(required("spec.selector", "")),
        Some(sel) => selector(sel, "spec.selector", &mut errors),
    }
    if let Some(sel) = &spec.namespace_selector {
        selector(sel, "spec.namespaceSelector", &mut errors);
    }
    if let Some(revision) = spec.injection_strategy.as_ref().and_then(|s| s.revision.as_ref())
        && revision.revision_name.is_none()
        && revision.custom_version.is_none()
    {
        errors.push(invalid(
            "spec.injectionStrategy.revision",
            revision,
            "one of revisionName and customVersion is required",
        ));
    }
    if rolling {
        update_strategy(&strategy, &mut errors);
    }
    if init.is_empty() && containers.is_empty() {
        errors.push(required("spec", "at least one container or init container"));
    }
    for (i, c) in init.iter().enumerate() {
        if c.resources_policy.is_some() {
            let path = format!("spec.initContainers[{i}].resourcesPolicy");
            if !is_native_sidecar(&c.container) {
                errors.push(invalid(
                    &path,
                    &c.resources_policy,
                    "is only supported on init containers with restartPolicy Always",
                ));
            }
            resources_policy(c, &path, &mut errors);
        }
    }
    for (i, c) in containers.iter().enumerate() {
        // the values OpenKruise checks after its defaults (on containers; init
        // containers' are left alone)
        if let Some(policy) = c.pod_inject_policy.as_ref().filter(|p| !p.is_known()) {
            let why = format!("must be one of {}", PodInjectPolicy::VALUES.join(", "));
            errors.push(invalid(&format!("spec.containers[{i}].podInjectPolicy"), policy, why));
        }
        let share = c.share_volume_policy.as_ref().and_then(|p| p.type_.as_ref());
        if let Some(share) = share.filter(|t| !t.is_known()) {
            let why = format!("must be one of {}", ShareVolumePolicyType::VALUES.join(", "));
            errors.push(invalid(&format!("spec.containers[{i}].shareVolumePolicy.type"), share, why));
        }
        for (j, env) in c.transfer_env.iter().flatten().enumerate() {
            if let Some(f) = env.source_container_name_from.as_ref().and_then(|s| s.field_ref.as_ref()) {
                let path = format!("spec.containers[{i}].transferEnv[{j}].sourceContainerNameFrom.fieldRef");
                field_ref(f, &path, &mut errors);
            }
        }
        if c.resources_policy.is_some() {
            resources_policy(c, &format!("spec.containers[{i}].resourcesPolicy"), &mut errors);
        }
    }
    let core = |list: &[SidecarContainer]| list.iter().map(|c| c.container.clone()).collect::<Vec<_>>();
    let volumes: Vec<Volume> = spec.volumes.iter().flatten().cloned().collect();
    pod::sidecar_containers(&core(init), &core(containers), &volumes, &mut errors);
    let mut keys = HashSet::new();
    for (i, patch) in spec.patch_pod_metadata.iter().flatten().enumerate() {
        let path = format!("spec.patchPodMetadata[{i}]");
        let annotations = patch.annotations.clone().unwrap_or_default();
        if annotations.is_empty() {
            errors.push(required(&format!("{path}.annotations"), "at least one annotation"));
        }
        if patch.patch_policy.is_none() {
            errors.push(required(&format!("{path}.patchPolicy"), ""));
        }
        for key in annotations.keys() {
            if let Some(reason) = rules::qualified_name(&key.to_lowercase()) {
                errors.push(invalid(&format!("{path}.annotations"), key, reason));
            }
            if !keys.insert(key.clone()) {
                errors.push(required(
                    &format!("{path}.annotations"),
                    format!("annotation {key:?} is patched twice"),
                ));
            }
        }
    }
    if let Some(old) = old {
        let before: HashMap<&str, Option<SidecarContainerUpgradeType>> = old
            .spec
            .containers
            .iter()
            .flatten()
            .map(|c| {
                (c.container.name.as_str(), c.upgrade_strategy.as_ref().and_then(|u| u.upgrade_type.clone()))
            })
            .collect();
        for (i, c) in containers.iter().enumerate() {
            let now = c.upgrade_strategy.as_ref().and_then(|u| u.upgrade_type.clone());
            match before.get(c.container.name.as_str()) {
                None => errors.push(invalid(
                    &format!("spec.containers[{i}].name"),
                    &c.container.name,
                    "a new container: containers cannot be added",
                )),
                Some(Some(was)) if now.as_ref() != Some(was) => errors.push(invalid(
                    &format!("spec.containers[{i}].upgradeStrategy.upgradeType"),
                    &c.container.name,
                    "upgradeType may not change",
                )),
                Some(_) => {}
            }
        }
    }
    errors
}

/// An init container that keeps running beside the app (a native sidecar).
fn is_native_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn selector(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    path: &str,
    e: &mut Vec<FieldError>,
) {
    rules::label_selector(path, sel, e);
    if rules::selector_is_empty(sel) {
        e.push(invalid(path, sel, "an empty selector is not valid for a SidecarSet"));
    }
}

/// A RollingUpdate strategy (`validateSidecarSetUpdateStrategy`).
fn update_strategy(s: &SidecarSetUpdateStrategy, errors: &mut Vec<FieldError>) {
    let partition_set = match &s.partition {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)) | None => false,
        Some(_) => true,
    };
    if partition_set && s.selector.is_some() {
        errors.push(invalid("spec.updateStrategy", s, "partition and selector cannot be used together"));
    }
    if let Some(sel) = &s.selector {
        selector(sel, "spec.updateStrategy.selector", errors);
    }
    for (field, value) in [("partition", &s.partition), ("maxUnavailable", &s.max_unavailable)] {
        if let Some(v) = value {
            rules::whole_int_or_percent(&format!("spec.updateStrategy.{field}"), v, false, errors);
        }
    }
    if let Some(p) = &s.priority_strategy {
        rules::priority_strategy("spec.updateStrategy.priorityStrategy", p, errors);
    }
    if let Some(terms) = &s.scatter_strategy {
        rules::scatter_strategy("spec.updateStrategy.scatterStrategy", terms, errors);
    }
}

fn resources_policy(c: &SidecarContainer, path: &str, errors: &mut Vec<FieldError>) {
    let Some(policy) = &c.resources_policy else { return };
    let resources = c.container.resources.clone().unwrap_or_default();
    if resources.limits.is_some_and(|l| !l.is_empty()) || resources.requests.is_some_and(|r| !r.is_empty()) {
        errors.push(invalid(path, policy, "resourcesPolicy and resources cannot be configured together"));
        return;
    }
    if policy.target_containers_name_regex.as_deref() == Some("") {
        errors.push(required(&format!("{path}.targetContainersNameRegex"), "must not be empty"));
    }
    if policy.resources_expr.limits.is_none() && policy.resources_expr.requests.is_none() {
        errors.push(invalid(
            &format!("{path}.resourcesExpr"),
            &policy.resources_expr,
            "at least one of limits or requests must be configured",
        ));
    }
}

/// A transferEnv source (`validateDownwardAPI`): apiVersion `v1` and a label or an
/// annotation of the pod, by key (`metadata.labels['app']`). (OpenKruise lists
/// `metadata.name` among the allowed paths, but its conversion refuses any path
/// without a key first.)
fn field_ref(f: &ObjectFieldSelector, path: &str, errors: &mut Vec<FieldError>) {
    let api_version = f.api_version.as_deref().unwrap_or_default();
    if api_version.is_empty() {
        errors.push(required(&format!("{path}.apiVersion"), ""));
        return;
    }
    if f.field_path.is_empty() {
        errors.push(required(&format!("{path}.fieldPath"), ""));
        return;
    }
    let field_path = &f.field_path;
    if api_version != "v1" {
        let why = format!("unsupported pod API version {api_version:?}: only v1");
        errors.push(invalid(&format!("{path}.fieldPath"), field_path, why));
        return;
    }
    let subscripted = field_path.strip_suffix("']").and_then(|p| p.split_once("['"));
    match subscripted {
        Some(("metadata.labels", key)) => {
            if let Some(reason) = rules::qualified_name(key) {
                errors.push(invalid(path, key, reason));
            }
        }
        Some(("metadata.annotations", key)) => {
            if let Some(reason) = rules::qualified_name(&key.to_lowercase()) {
                errors.push(invalid(path, key, reason));
            }
        }
        Some((other, _)) => errors.push(invalid(
            &format!("{path}.fieldPath"),
            field_path,
            format!("{other} cannot be read by key"),
        )),
        None => errors.push(invalid(
            &format!("{path}.fieldPath"),
            field_path,
            "only metadata.labels['<key>'] and metadata.annotations['<key>'] are supported",
        )),
    }
}
