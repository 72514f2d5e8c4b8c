//! The rules of BroadcastJob, AdvancedCronJob, ImagePullJob, ImageListPullJob,
//! NodeImage, ContainerRecreateRequest, SidecarSet and WorkloadSpread, as OpenKruise
//! v1.9.0's webhooks check them.
//!
//! The kinds served at two versions are checked as their v1beta1 hub type, which
//! reads a v1alpha1 object too (their fields are the same, or v1beta1's a superset),
//! as OpenKruise converts to the hub before checking. The rules that need the API
//! server (another SidecarSet or WorkloadSpread claiming the same pods, the injection
//! revision existing, the annotation whitelist, the target workload's template) are
//! left to the controllers that will hold a client.

use std::{collections::HashSet, sync::Arc};

use k8s_openapi::{
    api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodTemplateSpec, Toleration},
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::ResourceExt;
use stevedore_proto::{
    crd::{
        APPS_GROUP,
        advanced_cron_job::{ConcurrencyPolicy, v1beta1::AdvancedCronJob},
        broadcast_job::v1beta1::BroadcastJob,
        common::{CompletionPolicy, CompletionPolicyType},
        container_recreate_request::ContainerRecreateRequest,
        image_list_pull_job::v1beta1::ImageListPullJob,
        image_pull_job::{ImagePullJobTemplate, v1beta1::ImagePullJob},
        node_image::v1beta1::NodeImage,
        workload_spread::{WorkloadSpread, WorkloadSpreadScheduleStrategyType},
    },
    cron,
    intstr::{self, IntOrPercent, Percent},
    keys,
};

use super::{
    FieldError, Validator, err,
    rules::{self, Wording},
};
use crate::webhook::{Operation, Registry};

mod sidecar_set;
#[cfg(test)]
pub(crate) mod tests;

pub use sidecar_set::sidecar_set;

/// Registers the validators of these kinds at OpenKruise's paths: one version-less
/// path for the kinds served at v1alpha1 and v1beta1, `v1alpha1` in the path for
/// WorkloadSpread. (ContainerRecreateRequest has no validating webhook in
/// OpenKruise: its mutating one refuses bad requests, see `defaulting::jobs`.)
pub fn register(registry: &mut Registry) {
    let v = Operation::Validate;
    registry.admission(v, APPS_GROUP, "", "SidecarSet", Arc::new(Validator::new(sidecar_set)));
    registry.admission(v, APPS_GROUP, "", "BroadcastJob", Arc::new(Validator::new(broadcast_job)));
    registry.admission(v, APPS_GROUP, "", "AdvancedCronJob", Arc::new(Validator::new(advanced_cron_job)));
    registry.admission(v, APPS_GROUP, "", "ImagePullJob", Arc::new(Validator::new(image_pull_job)));
    registry.admission(v, APPS_GROUP, "", "ImageListPullJob", Arc::new(Validator::new(image_list_pull_job)));
    registry.admission(v, APPS_GROUP, "", "NodeImage", Arc::new(Validator::new(node_image)));
    registry.admission(
        v,
        APPS_GROUP,
        "v1alpha1",
        "WorkloadSpread",
        Arc::new(Validator::new(workload_spread)),
    );
}

/// The labels a BroadcastJob's controller puts on its pods.
const BROADCAST_JOB_POD_LABELS: [&str; 2] = ["broadcastjob-name", "broadcastjob-controller-uid"];

/// A pod template's spec, checked as Kubernetes checks a template.
fn pod_template(template: &PodTemplateSpec, path: &str, errors: &mut Vec<FieldError>) {
    let spec = template.spec.clone().unwrap_or_default();
    rules::pod_spec(&spec, &format!("{path}.spec"), errors);
}

/// A completion policy's deadline and TTL work only with `Always`.
fn only_with_always(policy: &CompletionPolicy, path: &str, errors: &mut Vec<FieldError>) {
    if policy.type_ == Some(CompletionPolicyType::Never) {
        if policy.ttl_seconds_after_finished.is_some() {
            errors.push(err(&format!("{path}.ttlSecondsAfterFinished"), "works only with the Always type"));
        }
        if policy.active_deadline_seconds.is_some() {
            errors.push(err(&format!("{path}.activeDeadlineSeconds"), "works only with the Always type"));
        }
    }
}

/// BroadcastJob: the object name rule; a template restartPolicy of Never or
/// OnFailure, without the labels the controller sets, that passes pod validation;
/// completionPolicy's TTL and deadline only with Always; and (Stevedore, where
/// OpenKruise leaves it to the controller) a parallelism that is an int or a
/// percentage.
pub fn broadcast_job(new: &BroadcastJob, _old: Option<&BroadcastJob>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    rules::short_object_name(new.metadata.name.as_deref(), &mut errors);
    let spec = &new.spec;
    only_with_always(&spec.completion_policy, "spec.completionPolicy", &mut errors);
    let restart = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or_default();
    if restart != "Never" && restart != "OnFailure" {
        errors
            .push(err("spec.template.spec.restartPolicy", format!("{restart:?} must be Never or OnFailure")));
    }
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if let Some(preset) = BROADCAST_JOB_POD_LABELS
        .iter()
        .find(|k| labels.and_then(|l| l.get(**k)).is_some_and(|v| !v.is_empty()))
    {
        errors.push(err("spec.template.metadata.labels", format!("{preset:?} is set by the controller")));
    }
    pod_template(&spec.template, "spec.template", &mut errors);
    if let Some(p) = &spec.parallelism
        && let Err(e) = intstr::parse(p, Percent::Float)
    {
        errors.push(err("spec.parallelism", e.to_string()));
    }
    errors
}

/// The most an image-list pull made by an AdvancedCronJob may run.
const MAX_ACTIVE_DEADLINE_SECONDS: i64 = 24 * 3600;

/// AdvancedCronJob: the object name rule; a schedule that parses as standard cron
/// and names no `TZ` when timeZone is set; a timeZone that is a zone name other than
/// `Local`; non-negative startingDeadlineSeconds and history limits; exactly one
/// template, a job or broadcast-job template passing pod validation, an image-list
/// template following ImageListPullJob's rules with concurrencyPolicy Replace or
/// Forbid, an Always completion policy without TTL and a deadline of at most a day
/// and at least the pull timeout. On update only the schedule, concurrencyPolicy,
/// the history limits, startingDeadlineSeconds, paused, timeZone and an existing
/// image-list template may change.
pub fn advanced_cron_job(new: &AdvancedCronJob, old: Option<&AdvancedCronJob>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if old.is_none() {
        rules::short_object_name(new.metadata.name.as_deref(), &mut errors);
    }
    let spec = &new.spec;
    if spec.schedule.is_empty() {
        errors.push(err("spec.schedule", "must not be empty"));
    } else if let Err(e) = cron::parse(&spec.schedule) {
        errors.push(err("spec.schedule", format!("{:?} is not a cron schedule: {e}", spec.schedule)));
    }
    if spec.schedule.contains("TZ") && spec.time_zone.is_some() {
        errors.push(err("spec.schedule", "cannot use both timeZone field and TZ or CRON_TZ in schedule"));
    }
    match spec.time_zone.as_deref() {
        None => {}
        Some("") => errors.push(err("spec.timeZone", "must be unset or a non-empty time zone")),
        Some(tz) if tz.eq_ignore_ascii_case("local") => {
            errors.push(err("spec.timeZone", "must be an explicit IANA time zone, not Local"))
        }
        Some(tz) if !cron::is_zone_name(tz) => {
            errors.push(err("spec.timeZone", format!("{tz:?} is not an IANA time zone name")))
        }
        Some(_) => {}
    }
    for (field, value) in [
        ("startingDeadlineSeconds", spec.starting_deadline_seconds),
        ("successfulJobsHistoryLimit", spec.successful_jobs_history_limit.map(i64::from)),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit.map(i64::from)),
    ] {
        if value.is_some_and(|v| v < 0) {
            errors.push(err(&format!("spec.{field}"), "must be greater than or equal to 0"));
        }
    }
    let t = &spec.template;
    match [
        t.job_template.is_some(),
        t.broadcast_job_template.is_some(),
        t.image_list_pull_job_template.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count()
    {
        0 => errors.push(err(
            "spec.template",
            "one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate is required",
        )),
        1 => {}
        _ => errors.push(err(
            "spec.template",
            "only one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate may be set",
        )),
    }
    if let Some(job) = &t.job_template {
        let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        pod_template(&template, "spec.template.jobTemplate.spec.template", &mut errors);
    }
    if let Some(bcj) = &t.broadcast_job_template {
        let template = bcj.spec.as_ref().map(|s| s.template.0.clone()).unwrap_or_default();
        pod_template(&template, "spec.template.broadcastJobTemplate.spec.template", &mut errors);
    }
    if let Some(ilpj) = &t.image_list_pull_job_template {
        if !matches!(spec.concurrency_policy, Some(ConcurrencyPolicy::Replace | ConcurrencyPolicy::Forbid)) {
            errors.push(err(
                "spec.concurrencyPolicy",
                "must be Replace or Forbid with an imageListPullJobTemplate",
            ));
        }
        let path = "spec.template.imageListPullJobTemplate.spec";
        let ilpj = ilpj.spec.clone().unwrap_or_default();
        images(&ilpj.images, &format!("{path}.images"), &mut errors);
        let tpl = &ilpj.template;
        selectors(tpl, path, &mut errors);
        let policy = &tpl.completion_policy;
        let deadline = policy.active_deadline_seconds;
        if policy.type_ != Some(CompletionPolicyType::Always) {
            errors.push(err(&format!("{path}.completionPolicy.type"), "must be Always"));
        } else if policy.ttl_seconds_after_finished.is_some() {
            errors.push(err(
                &format!("{path}.completionPolicy.ttlSecondsAfterFinished"),
                "is not supported in an AdvancedCronJob",
            ));
        }
        if deadline.is_some_and(|d| d > MAX_ACTIVE_DEADLINE_SECONDS) {
            errors.push(err(
                &format!("{path}.completionPolicy.activeDeadlineSeconds"),
                format!("must not be greater than {MAX_ACTIVE_DEADLINE_SECONDS}"),
            ));
        }
        let timeout = tpl.pull_policy.as_ref().and_then(|p| p.timeout_seconds);
        if let (Some(d), Some(timeout)) = (deadline, timeout)
            && i64::from(timeout) > d
        {
            errors.push(err(
                &format!("{path}.completionPolicy.activeDeadlineSeconds"),
                format!("must be greater than pullPolicy.timeoutSeconds ({timeout})"),
            ));
        }
    }
    if let Some(old) = old {
        let mut kept = new.spec.clone();
        kept.schedule.clone_from(&old.spec.schedule);
        kept.concurrency_policy.clone_from(&old.spec.concurrency_policy);
        kept.successful_jobs_history_limit = old.spec.successful_jobs_history_limit;
        kept.failed_jobs_history_limit = old.spec.failed_jobs_history_limit;
        kept.starting_deadline_seconds = old.spec.starting_deadline_seconds;
        kept.paused = old.spec.paused;
        kept.time_zone.clone_from(&old.spec.time_zone);
        if old.spec.template.image_list_pull_job_template.is_some() {
            kept.template
                .image_list_pull_job_template
                .clone_from(&old.spec.template.image_list_pull_job_template);
        }
        if kept != old.spec {
            errors.push(err(
                "spec",
                "only schedule, concurrencyPolicy, successfulJobsHistoryLimit, failedJobsHistoryLimit, \
                 startingDeadlineSeconds, paused, timeZone and imageListPullJobTemplate may change",
            ));
        }
    }
    errors
}

/// The node selector and pod selector of an image pull: not both; within the node
/// selector not both names and labels; valid label selectors; unique names.
fn selectors(t: &ImagePullJobTemplate, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(sel) = &t.selector {
        if let Some(labels) = sel.label_selector() {
            if sel.names.is_some() {
                errors.push(err(&format!("{path}.selector"), "names and labels are mutually exclusive"));
            }
            rules::label_selector(Wording::Jobs, &format!("{path}.selector"), &labels, errors);
        }
        for name in rules::duplicates(sel.names.iter().flatten().map(String::as_str)) {
            errors.push(err(&format!("{path}.selector.names"), format!("duplicate name {name:?}")));
        }
    }
    if let Some(pods) = &t.pod_selector {
        if t.selector.is_some() {
            errors.push(err(path, "selector and podSelector are mutually exclusive"));
        }
        rules::label_selector(Wording::Jobs, &format!("{path}.podSelector"), pods, errors);
    }
}

/// An image list: 1 to 255 unique, valid references.
fn images(images: &[String], path: &str, errors: &mut Vec<FieldError>) {
    if images.is_empty() {
        errors.push(err(path, "must not be empty"));
    }
    if images.len() > 255 {
        errors.push(err(path, "must not hold more than 255 images"));
    }
    for image in rules::duplicates(images.iter().map(String::as_str)) {
        errors.push(err(path, format!("duplicate image {image:?}")));
    }
    for (i, image) in images.iter().enumerate() {
        if let Err(e) = rules::image_reference(image) {
            errors.push(err(&format!("{path}[{i}]"), format!("invalid image {image:?}: {e}")));
        }
    }
}

/// A completion policy of an image pull: a type, and a deadline and TTL only with
/// Always.
fn pull_completion(policy: &CompletionPolicy, errors: &mut Vec<FieldError>) {
    match &policy.type_ {
        None => errors.push(err("spec.completionPolicy.type", "is required")),
        Some(CompletionPolicyType::Other(other)) => {
            errors.push(err("spec.completionPolicy.type", format!("{other:?} must be Always or Never")))
        }
        Some(_) => {}
    }
    only_with_always(policy, "spec.completionPolicy", errors);
}

/// ImagePullJob: a valid image reference; the selector rules; a parallelism that is
/// a non-negative integer (also as a string), never a percentage; a completion
/// policy whose deadline exceeds the pull timeout (600s by default); pullSecrets
/// that never change.
pub fn image_pull_job(new: &ImagePullJob, old: Option<&ImagePullJob>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let t = &new.spec.template;
    if old.is_some_and(|o| o.spec.template.pull_secrets != t.pull_secrets) {
        errors.push(err("spec.pullSecrets", "is immutable"));
    }
    selectors(t, "spec", &mut errors);
    if new.spec.image.is_empty() {
        errors.push(err("spec.image", "must not be empty"));
    } else if let Err(e) = rules::image_reference(&new.spec.image) {
        errors.push(err("spec.image", format!("invalid image {:?}: {e}", new.spec.image)));
    }
    match &t.parallelism {
        Some(IntOrString::String(s)) if s.ends_with('%') => {
            errors.push(err("spec.parallelism", "must not be a percentage"))
        }
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            Ok(v) if v < 0 => errors.push(err("spec.parallelism", "must not be negative")),
            Ok(_) => {}
            Err(_) => errors.push(err("spec.parallelism", format!("{s:?} is not an integer"))),
        },
        Some(IntOrString::Int(v)) if *v < 0 => errors.push(err("spec.parallelism", "must not be negative")),
        _ => {}
    }
    let policy = &t.completion_policy;
    pull_completion(policy, &mut errors);
    let timeout = t.pull_policy.as_ref().and_then(|p| p.timeout_seconds).unwrap_or(600);
    if policy.type_ == Some(CompletionPolicyType::Always)
        && policy.active_deadline_seconds.is_some_and(|d| i64::from(timeout) > d)
    {
        errors.push(err(
            "spec.completionPolicy.activeDeadlineSeconds",
            format!("must be greater than pullPolicy.timeoutSeconds ({timeout})"),
        ));
    }
    errors
}

/// ImageListPullJob: 1 to 255 unique, valid image references; the selector rules; a
/// completion policy with a type, and a deadline and TTL only with Always.
pub fn image_list_pull_job(new: &ImageListPullJob, _old: Option<&ImageListPullJob>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    selectors(&new.spec.template, "spec", &mut errors);
    images(&new.spec.images, "spec.images", &mut errors);
    pull_completion(&new.spec.template.completion_policy, &mut errors);
    errors
}

/// NodeImage: at most 256 images with non-empty names; per image, non-empty unique
/// tags, each with createdAt, a non-negative version and a pull policy carrying
/// ttlSecondsAfterFinished.
pub fn node_image(new: &NodeImage, _old: Option<&NodeImage>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let images = new.spec.images.clone().unwrap_or_default();
    if images.len() > 256 {
        errors.push(err("spec.images", format!("{} images, more than 256", images.len())));
    }
    for (name, image) in &images {
        if name.is_empty() {
            errors.push(err("spec.images", "an image name must not be empty"));
        }
        let mut seen = HashSet::new();
        for (i, tag) in image.tags.iter().enumerate() {
            let path = format!("spec.images[{name}].tags[{i}]");
            if tag.tag.is_empty() {
                errors.push(err(&format!("{path}.tag"), "must not be empty"));
                continue;
            }
            if !seen.insert(tag.tag.as_str()) {
                errors.push(err(&format!("{path}.tag"), format!("duplicate tag {:?}", tag.tag)));
            }
            if tag.created_at.is_none() {
                errors.push(err(&format!("{path}.createdAt"), "is required"));
            }
            if tag.version.is_some_and(|v| v < 0) {
                errors.push(err(&format!("{path}.version"), "must not be negative"));
            }
            match &tag.pull_policy {
                None => errors.push(err(&format!("{path}.pullPolicy"), "is required")),
                Some(p) if p.ttl_seconds_after_finished.is_none() => {
                    errors.push(err(&format!("{path}.pullPolicy.ttlSecondsAfterFinished"), "is required"))
                }
                Some(_) => {}
            }
        }
    }
    errors
}

/// The labels of a ContainerRecreateRequest that never change once set.
const CRR_IMMUTABLE_LABELS: [&str; 2] = [keys::CRR_POD_UID, keys::CRR_NODE_NAME];

/// ContainerRecreateRequest (checked by its mutating webhook, as in OpenKruise): on
/// create, a podName; at least one container, each named once, without the
/// read-only preStop, ports and statusContext; activeDeadlineSeconds of at least 3;
/// non-negative grace periods. On update the spec, the pod-uid and node-name labels
/// and a set unready-acquired annotation never change. (That the pod is active and
/// scheduled and has the containers needs the API server.)
pub fn container_recreate_request(
    new: &ContainerRecreateRequest,
    old: Option<&ContainerRecreateRequest>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(old) = old {
        if new.spec != old.spec {
            errors.push(err("spec", "is immutable"));
        }
        for key in CRR_IMMUTABLE_LABELS {
            if new.labels().get(key) != old.labels().get(key) {
                errors.push(err(&format!("metadata.labels[{key}]"), "is immutable"));
            }
        }
        let before = old.annotations().get(keys::CRR_UNREADY_ACQUIRED).filter(|v| !v.is_empty());
        if before.is_some_and(|b| new.annotations().get(keys::CRR_UNREADY_ACQUIRED) != Some(b)) {
            errors
                .push(err(&format!("metadata.annotations[{}]", keys::CRR_UNREADY_ACQUIRED), "is immutable"));
        }
        return errors;
    }
    let spec = &new.spec;
    if spec.pod_name.is_empty() {
        errors.push(err("spec.podName", "must not be empty"));
    }
    if spec.containers.is_empty() {
        errors.push(err("spec.containers", "must not be empty"));
    }
    for name in rules::duplicates(spec.containers.iter().map(|c| c.name.as_str())) {
        errors.push(err("spec.containers", format!("container {name:?} is listed more than once")));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        if c.pre_stop.is_some() || c.ports.is_some() || c.status_context.is_some() {
            errors.push(err(
                &format!("spec.containers[{i}]"),
                "preStop, ports and statusContext are read-only",
            ));
        }
    }
    if spec.active_deadline_seconds.is_some_and(|d| d < 3) {
        errors.push(err("spec.activeDeadlineSeconds", "must be at least 3"));
    }
    let strategy = spec.strategy.clone().unwrap_or_default();
    if let Some(policy) = strategy.failure_policy.as_ref().filter(|p| !p.is_known()) {
        errors.push(err(
            "spec.strategy.failurePolicy",
            format!("{:?} must be Fail or Ignore", policy.as_str()),
        ));
    }
    for (field, value) in [
        ("terminationGracePeriodSeconds", strategy.termination_grace_period_seconds),
        ("unreadyGracePeriodSeconds", strategy.unready_grace_period_seconds),
    ] {
        if value.is_some_and(|v| v < 0) {
            errors.push(err(&format!("spec.strategy.{field}"), "must not be negative"));
        }
    }
    errors
}

/// The workloads a WorkloadSpread may target: kind and the API groups it may come
/// from. (OpenKruise also admits the kinds of a whitelist ConfigMap.)
const SPREAD_TARGETS: [(&str, &[&str]); 5] = [
    ("CloneSet", &["apps.kruise.io"]),
    ("Deployment", &["apps"]),
    ("ReplicaSet", &["apps"]),
    ("Job", &["batch"]),
    ("StatefulSet", &["apps", "apps.kruise.io"]),
];

/// The group of an apiVersion (`apps/v1` → `apps`, `v1` → ``), or `None` when it is
/// malformed.
fn api_group(api_version: &str) -> Option<&str> {
    match api_version.split('/').collect::<Vec<_>>()[..] {
        [_] => Some(""),
        [group, _] => Some(group),
        _ => None,
    }
}

/// WorkloadSpread: a complete targetRef to a supported kind and group, whose group,
/// kind and name never change; at least one subset; unique non-empty subset names;
/// valid node selector terms and tolerations; maxReplicas all of one type (ints for
/// a StatefulSet), whole percentages summing to at most 100% and to exactly 100% when
/// the last subset has one; an adaptive strategy only with type Adaptive, with no
/// maxReplicas on the last subset and rescheduleCriticalSeconds within
/// 0..=295/(subsets-1); a valid targetFilter selector.
pub fn workload_spread(new: &WorkloadSpread, old: Option<&WorkloadSpread>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &new.spec;
    let target = &spec.target_reference;
    if target.api_version.is_empty() || target.kind.is_empty() || target.name.is_empty() {
        errors.push(err("spec.targetRef", "apiVersion, kind and name are required"));
    } else {
        match SPREAD_TARGETS.iter().find(|(kind, _)| *kind == target.kind) {
            Some((kind, groups)) => {
                if !api_group(&target.api_version).is_some_and(|g| groups.contains(&g)) {
                    errors.push(err(
                        "spec.targetRef",
                        format!("{:?} is not an API of {kind}", target.api_version),
                    ));
                }
            }
            None => errors.push(err("spec.targetRef", format!("kind {:?} is not supported", target.kind))),
        }
    }
    subsets(new, &mut errors);
    let strategy = spec.schedule_strategy.clone().unwrap_or_default();
    if let Some(adaptive) = &strategy.adaptive {
        if strategy.type_ != Some(WorkloadSpreadScheduleStrategyType::Adaptive) {
            errors.push(err("spec.scheduleStrategy.type", "must be Adaptive to use an adaptive strategy"));
        }
        let n = spec.subsets.len();
        if n > 1 && spec.subsets[n - 1].max_replicas.is_some() {
            errors.push(err(
                "spec.scheduleStrategy.adaptive",
                "the last subset must not set maxReplicas under an adaptive strategy",
            ));
        }
        let allowed = if n > 1 { 295 / (n as i32 - 1) } else { i32::MAX };
        if adaptive.reschedule_critical_seconds.is_some_and(|s| !(0..=allowed).contains(&s)) {
            errors.push(err(
                "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds",
                format!("must be within 0..={allowed}"),
            ));
        }
    }
    if let Some(selector) = spec.target_filter.as_ref().and_then(|f| f.selector.as_ref()) {
        rules::label_selector(Wording::Jobs, "spec.targetFilter.selector", selector, &mut errors);
    }
    if let Some(old) = old {
        let o = &old.spec.target_reference;
        if api_group(&o.api_version) != api_group(&target.api_version)
            || o.kind != target.kind
            || o.name != target.name
        {
            errors.push(err("spec.targetRef", "is immutable"));
        }
    }
    errors
}

fn subsets(ws: &WorkloadSpread, errors: &mut Vec<FieldError>) {
    let subsets = &ws.spec.subsets;
    if subsets.is_empty() {
        errors.push(err("spec.subsets", "at least one subset is required"));
        return;
    }
    let mut names = HashSet::new();
    let mut first_is_int = None;
    let mut percent_sum = 0;
    for (i, subset) in subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if subset.name.is_empty() {
            errors.push(err(&format!("{path}.name"), "must not be empty"));
        } else if !names.insert(subset.name.as_str()) {
            errors.push(err(&format!("{path}.name"), format!("duplicate subset name {:?}", subset.name)));
        }
        if let Some(term) = &subset.required_node_selector_term {
            node_selector_term(term, &format!("{path}.requiredNodeSelectorTerm"), errors);
        }
        for (j, term) in subset.preferred_node_selector_terms.iter().flatten().enumerate() {
            let at = format!("{path}.preferredNodeSelectorTerms[{j}]");
            if !(1..=100).contains(&term.weight) {
                errors.push(err(&format!("{at}.weight"), "must be in the range 1-100"));
            }
            node_selector_term(&term.preference, &format!("{at}.preference"), errors);
        }
        for (j, t) in subset.tolerations.iter().flatten().enumerate() {
            toleration(t, &format!("{path}.tolerations[{j}]"), errors);
        }
        let Some(max) = &subset.max_replicas else { continue };
        let is_int = matches!(max, IntOrString::Int(_));
        let field = format!("{path}.maxReplicas");
        if *first_is_int.get_or_insert(is_int) != is_int {
            errors.push(err(&field, "all subsets' maxReplicas must be of the same type"));
            return;
        }
        if ws.spec.target_reference.kind == "StatefulSet" && !is_int {
            errors.push(err(&field, "must be an integer for a StatefulSet"));
            return;
        }
        match intstr::parse(max, Percent::Integer) {
            Ok(IntOrPercent::Percent(p)) => {
                percent_sum += p as i64;
                if percent_sum > 100 {
                    errors.push(err(&field, "the subsets' maxReplicas add up to more than 100%"));
                    return;
                }
            }
            Ok(IntOrPercent::Int(_)) => {}
            Err(e) => {
                errors.push(err(&field, e.to_string()));
                return;
            }
        }
    }
    if first_is_int == Some(false) && percent_sum < 100 && subsets[subsets.len() - 1].max_replicas.is_some() {
        errors.push(err(
            "spec.subsets[0].maxReplicas",
            "percentages must add up to 100% when the last subset sets one",
        ));
    }
}

fn node_selector_term(term: &NodeSelectorTerm, path: &str, errors: &mut Vec<FieldError>) {
    for (i, r) in term.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        if !rules::is_qualified_name(&r.key) {
            errors.push(err(&format!("{at}.key"), format!("{:?} is not a valid label key", r.key)));
        }
        node_requirement(r, &at, errors);
    }
    for (i, r) in term.match_fields.iter().flatten().enumerate() {
        let at = format!("{path}.matchFields[{i}]");
        if r.key != "metadata.name" {
            errors.push(err(
                &format!("{at}.key"),
                format!("{:?} is not a supported field (metadata.name)", r.key),
            ));
        }
        let n = r.values.as_ref().map_or(0, Vec::len);
        if (r.operator == "In" || r.operator == "NotIn") && n != 1 {
            errors.push(err(&format!("{at}.values"), "must have one element"));
        } else if r.operator != "In" && r.operator != "NotIn" {
            errors.push(err(
                &format!("{at}.operator"),
                format!("{:?} is not supported (In, NotIn)", r.operator),
            ));
        }
    }
}

fn node_requirement(r: &NodeSelectorRequirement, at: &str, errors: &mut Vec<FieldError>) {
    let values = r.values.as_deref().unwrap_or_default();
    let field = format!("{at}.values");
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            errors.push(err(&field, "must be specified when `operator` is 'In' or 'NotIn'"))
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            errors.push(err(&field, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        }
        "Gt" | "Lt" if values.len() != 1 || values[0].parse::<i64>().is_err() => {
            errors.push(err(&field, "must be one integer when `operator` is 'Lt' or 'Gt'"))
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        op => errors
            .push(err(&format!("{at}.operator"), format!("{op:?} is not a valid node selector operator"))),
    }
}

fn toleration(t: &Toleration, at: &str, errors: &mut Vec<FieldError>) {
    let key = t.key.as_deref().unwrap_or_default();
    let op = t.operator.as_deref().unwrap_or_default();
    if !key.is_empty() && !rules::is_qualified_name(key) {
        errors.push(err(&format!("{at}.key"), format!("{key:?} is not a valid key")));
    }
    if key.is_empty() && op != "Exists" {
        errors.push(err(&format!("{at}.operator"), "must be Exists when `key` is empty"));
    }
    match op {
        "" | "Equal" => {
            if !rules::is_label_value(t.value.as_deref().unwrap_or_default()) {
                errors.push(err(&format!("{at}.value"), "is not a valid label value"));
            }
        }
        "Exists" if t.value.as_deref().is_some_and(|v| !v.is_empty()) => {
            errors.push(err(&format!("{at}.value"), "must be empty when `operator` is 'Exists'"))
        }
        "Exists" => {}
        other => {
            errors.push(err(&format!("{at}.operator"), format!("{other:?} is not supported (Equal, Exists)")))
        }
    }
    let effect = t.effect.as_deref().unwrap_or_default();
    if !["", "NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        errors.push(err(&format!("{at}.effect"), format!("{effect:?} is not supported")));
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        errors.push(err(&format!("{at}.effect"), "must be NoExecute when tolerationSeconds is set"));
    }
}
