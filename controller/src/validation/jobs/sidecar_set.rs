//! SidecarSet's rules.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Volume};
use stevedore_proto::{
    crd::{
        common::UpdatePriorityStrategy,
        sidecar_set::{
            PodInjectPolicy, ShareVolumePolicyType, SidecarContainer, SidecarContainerUpgradeType,
            SidecarSetUpdateStrategy, SidecarSetUpdateStrategyType, v1beta1::SidecarSet,
        },
    },
    intstr::{self, Percent},
};

use super::super::{
    FieldError, err,
    rules::{self, Wording},
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
        errors.push(err(
            "spec.updateStrategy",
            "init containers with restartPolicy Always cannot be updated in place",
        ));
    }
    match &spec.selector {
        None => errors.push(err("spec.selector", "is required")),
        Some(sel) => selector(sel, "spec.selector", &mut errors),
    }
    if let Some(sel) = &spec.namespace_selector {
        selector(sel, "spec.namespaceSelector", &mut errors);
    }
    if let Some(revision) = spec.injection_strategy.as_ref().and_then(|s| s.revision.as_ref())
        && revision.revision_name.is_none()
        && revision.custom_version.is_none()
    {
        errors.push(err(
            "spec.injectionStrategy.revision",
            "one of revisionName and customVersion is required",
        ));
    }
    if rolling {
        update_strategy(&strategy, &mut errors);
    }
    if init.is_empty() && containers.is_empty() {
        errors.push(err("spec", "at least one container or init container is required"));
    }
    for (i, c) in init.iter().enumerate() {
        if c.resources_policy.is_some() {
            let path = format!("spec.initContainers[{i}].resourcesPolicy");
            if !is_native_sidecar(&c.container) {
                errors.push(err(&path, "is only supported on init containers with restartPolicy Always"));
            }
            resources_policy(c, &path, &mut errors);
        }
    }
    for (i, c) in containers.iter().enumerate() {
        // the values OpenKruise checks after its defaults (on containers; init
        // containers' are left alone)
        if let Some(policy) = c.pod_inject_policy.as_ref().filter(|p| !p.is_known()) {
            errors.push(err(
                &format!("spec.containers[{i}].podInjectPolicy"),
                format!("{:?} is not one of {:?}", policy.as_str(), PodInjectPolicy::VALUES),
            ));
        }
        let share = c.share_volume_policy.as_ref().and_then(|p| p.type_.as_ref());
        if let Some(share) = share.filter(|t| !t.is_known()) {
            errors.push(err(
                &format!("spec.containers[{i}].shareVolumePolicy.type"),
                format!("{:?} is not one of {:?}", share.as_str(), ShareVolumePolicyType::VALUES),
            ));
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
    let volumes: Vec<Volume> = spec.volumes.iter().flatten().map(|v| v.0.clone()).collect();
    rules::containers(&core(init), &core(containers), &volumes, "spec", &mut errors);
    let mut keys = HashSet::new();
    for (i, patch) in spec.patch_pod_metadata.iter().flatten().enumerate() {
        let path = format!("spec.patchPodMetadata[{i}]");
        let annotations = patch.annotations.clone().unwrap_or_default();
        if annotations.is_empty() {
            errors.push(err(&format!("{path}.annotations"), "must not be empty"));
        }
        if patch.patch_policy.is_none() {
            errors.push(err(&format!("{path}.patchPolicy"), "is required"));
        }
        for key in annotations.keys() {
            if !rules::is_qualified_name(&key.to_lowercase()) {
                errors.push(err(
                    &format!("{path}.annotations"),
                    format!("{key:?} is not a valid annotation key"),
                ));
            }
            if !keys.insert(key.clone()) {
                errors.push(err(
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
                None => errors.push(err(
                    &format!("spec.containers[{i}].name"),
                    format!("container {:?} is new: containers cannot be added", c.container.name),
                )),
                Some(Some(was)) if now.as_ref() != Some(was) => errors.push(err(
                    &format!("spec.containers[{i}].upgradeStrategy.upgradeType"),
                    format!("container {:?}: upgradeType is immutable", c.container.name),
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
    rules::label_selector(Wording::Jobs, path, sel, e);
    if rules::selector_is_empty(sel) {
        e.push(err(path, "an empty selector is not valid for a SidecarSet"));
    }
}

fn update_strategy(s: &SidecarSetUpdateStrategy, errors: &mut Vec<FieldError>) {
    let partition_set = match &s.partition {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)) | None => false,
        Some(_) => true,
    };
    if partition_set && s.selector.is_some() {
        errors.push(err("spec.updateStrategy", "partition and selector cannot be used together"));
    }
    if let Some(sel) = &s.selector {
        selector(sel, "spec.updateStrategy.selector", errors);
    }
    for (field, value) in [("partition", &s.partition), ("maxUnavailable", &s.max_unavailable)] {
        if let Some(v) = value
            && let Err(e) = intstr::parse(v, Percent::Integer)
        {
            errors.push(err(&format!("spec.updateStrategy.{field}"), e.to_string()));
        }
    }
    if let Some(p) = &s.priority_strategy {
        priority_strategy(p, errors);
    }
    let mut seen = HashSet::new();
    for (i, term) in s.scatter_strategy.iter().flatten().enumerate() {
        let path = format!("spec.updateStrategy.scatterStrategy[{i}]");
        if term.key.is_empty() || term.value.is_empty() {
            errors.push(err(&path, "key and value must not be empty"));
        } else if !seen.insert((term.key.as_str(), term.value.as_str())) {
            errors.push(err(&path, format!("duplicate term {}={}", term.key, term.value)));
        }
    }
}

fn priority_strategy(p: &UpdatePriorityStrategy, errors: &mut Vec<FieldError>) {
    let path = "spec.updateStrategy.priorityStrategy";
    let weights = p.weight_priority.as_deref().unwrap_or_default();
    let orders = p.order_priority.as_deref().unwrap_or_default();
    if !weights.is_empty() && !orders.is_empty() {
        errors.push(err(path, "only one of weightPriority and orderPriority can be used"));
    }
    for (i, w) in weights.iter().enumerate() {
        let at = format!("{path}.weightPriority[{i}]");
        if !(0..=100).contains(&w.weight) {
            errors.push(err(&format!("{at}.weight"), "must be in the range 0-100"));
        }
        if rules::selector_is_empty(&w.match_selector) {
            errors.push(err(&format!("{at}.matchSelector"), "must not be empty"));
        }
        rules::label_selector(Wording::Jobs, &format!("{at}.matchSelector"), &w.match_selector, errors);
    }
    for (i, o) in orders.iter().enumerate() {
        if o.ordered_key.is_empty() {
            errors.push(err(&format!("{path}.orderPriority[{i}].orderedKey"), "must not be empty"));
        }
    }
}

fn resources_policy(c: &SidecarContainer, path: &str, errors: &mut Vec<FieldError>) {
    let Some(policy) = &c.resources_policy else { return };
    let resources = c.container.resources.clone().unwrap_or_default();
    if resources.limits.is_some_and(|l| !l.is_empty()) || resources.requests.is_some_and(|r| !r.is_empty()) {
        errors.push(err(path, "resourcesPolicy and resources cannot be configured together"));
        return;
    }
    if policy.target_containers_name_regex.as_deref() == Some("") {
        errors.push(err(&format!("{path}.targetContainersNameRegex"), "must not be empty"));
    }
    if policy.resources_expr.limits.is_none() && policy.resources_expr.requests.is_none() {
        errors.push(err(
            &format!("{path}.resourcesExpr"),
            "at least one of limits or requests must be configured",
        ));
    }
}

/// A transferEnv source: `metadata.name`, `metadata.labels` or
/// `metadata.annotations`, or one label or annotation by key.
fn field_ref(f: &ObjectFieldSelector, path: &str, errors: &mut Vec<FieldError>) {
    if f.api_version.as_deref().is_none_or(str::is_empty) {
        errors.push(err(&format!("{path}.apiVersion"), "is required"));
        return;
    }
    if f.field_path.is_empty() {
        errors.push(err(&format!("{path}.fieldPath"), "is required"));
        return;
    }
    let subscripted = f.field_path.strip_suffix("']").and_then(|p| p.split_once("['"));
    match subscripted {
        Some(("metadata.labels", key)) if !rules::is_qualified_name(key) => {
            errors.push(err(path, format!("{key:?} is not a valid label key")))
        }
        Some(("metadata.annotations", key)) if !rules::is_qualified_name(&key.to_lowercase()) => {
            errors.push(err(path, format!("{key:?} is not a valid annotation key")))
        }
        Some(("metadata.labels" | "metadata.annotations", _)) => {}
        Some((other, _)) => errors.push(err(path, format!("{other:?} does not support subscript"))),
        None if ["metadata.name", "metadata.labels", "metadata.annotations"]
            .contains(&f.field_path.as_str()) => {}
        None => errors.push(err(
            &format!("{path}.fieldPath"),
            format!(
                "{:?} is not supported (metadata.annotations, metadata.labels, metadata.name)",
                f.field_path
            ),
        )),
    }
}
