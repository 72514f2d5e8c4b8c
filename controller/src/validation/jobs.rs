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

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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
    FieldError, Validator, always,
    field::{self, duplicate, forbidden, invalid, required, too_many},
    pod, rules,
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
    // The HTTP codes of OpenKruise's handlers: SidecarSet and BroadcastJob report
    // field errors as their own failure (500); the image kinds and WorkloadSpread
    // answer 400 (and an ImagePullJob's changed pullSecrets 403).
    let sidecar_set = Validator::new(sidecar_set).code(always::<500>);
    registry.admission(v, APPS_GROUP, "", "SidecarSet", Arc::new(sidecar_set));
    let broadcast_job = Validator::new(broadcast_job).code(always::<500>);
    registry.admission(v, APPS_GROUP, "", "BroadcastJob", Arc::new(broadcast_job));
    registry.admission(v, APPS_GROUP, "", "AdvancedCronJob", Arc::new(Validator::new(advanced_cron_job)));
    let image_pull_job = Validator::new(image_pull_job)
        .code(|_, errors| if errors.iter().any(|e| e.field == "spec.pullSecrets") { 403 } else { 400 });
    registry.admission(v, APPS_GROUP, "", "ImagePullJob", Arc::new(image_pull_job));
    let image_list_pull_job = Validator::new(image_list_pull_job).code(always::<400>);
    registry.admission(v, APPS_GROUP, "", "ImageListPullJob", Arc::new(image_list_pull_job));
    registry.admission(
        v,
        APPS_GROUP,
        "",
        "NodeImage",
        Arc::new(Validator::new(node_image).code(always::<400>)),
    );
    registry.admission(
        v,
        APPS_GROUP,
        "v1alpha1",
        "WorkloadSpread",
        Arc::new(Validator::new(workload_spread).code(always::<400>)),
    );
}

/// The labels a BroadcastJob's controller puts on its pods.
const BROADCAST_JOB_POD_LABELS: [&str; 2] = [keys::BROADCAST_JOB_NAME, keys::BROADCAST_JOB_CONTROLLER_UID];

/// A completion policy's deadline and TTL work only with `Always`.
fn only_with_always(policy: &CompletionPolicy, path: &str, errors: &mut Vec<FieldError>) {
    if policy.type_ == Some(CompletionPolicyType::Never) {
        if let Some(ttl) = policy.ttl_seconds_after_finished {
            errors.push(invalid(
                &format!("{path}.ttlSecondsAfterFinished"),
                ttl,
                "works only with the Always type",
            ));
        }
        if let Some(d) = policy.active_deadline_seconds {
            errors.push(invalid(
                &format!("{path}.activeDeadlineSeconds"),
                d,
                "works only with the Always type",
            ));
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
        errors.push(invalid("spec.template.spec.restartPolicy", restart, "must be Never or OnFailure"));
    }
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if let Some(preset) = BROADCAST_JOB_POD_LABELS
        .iter()
        .find(|k| labels.and_then(|l| l.get(**k)).is_some_and(|v| !v.is_empty()))
    {
        errors.push(invalid(
            "spec.template.metadata.labels",
            labels,
            format!("{preset:?} is set by the controller"),
        ));
    }
    // after the pod defaults, as OpenKruise's convertor applies them
    pod::template("spec.template", &spec.template, &mut errors);
    if let Some(p) = &spec.parallelism
        && let Err(e) = intstr::parse(p, Percent::Float)
    {
        errors.push(invalid("spec.parallelism", p, e.to_string()));
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
        errors.push(invalid("spec.schedule", "", "must not be empty"));
    } else if let Err(e) = cron::parse(&spec.schedule) {
        errors.push(invalid("spec.schedule", &spec.schedule, e.to_string()));
    }
    if spec.schedule.contains("TZ") && spec.time_zone.is_some() {
        errors.push(invalid("spec.schedule", &spec.schedule, "cannot use both timeZone and TZ or CRON_TZ"));
    }
    match spec.time_zone.as_deref() {
        None => {}
        Some("") => errors.push(invalid("spec.timeZone", "", "must be unset or a non-empty time zone")),
        Some(tz) if tz.eq_ignore_ascii_case("local") => {
            errors.push(invalid("spec.timeZone", tz, "must be an explicit IANA time zone, not Local"))
        }
        Some(tz) if !cron::is_zone_name(tz) => errors.push(invalid("spec.timeZone", tz, "unknown time zone")),
        Some(_) => {}
    }
    for (field, value) in [
        ("startingDeadlineSeconds", spec.starting_deadline_seconds),
        ("successfulJobsHistoryLimit", spec.successful_jobs_history_limit.map(i64::from)),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit.map(i64::from)),
    ] {
        if let Some(v) = value {
            rules::non_negative(&format!("spec.{field}"), v, &mut errors);
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
        0 => errors.push(forbidden(
            "spec.template",
            "one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate is required",
        )),
        1 => {}
        _ => errors.push(forbidden(
            "spec.template",
            "only one of jobTemplate, broadcastJobTemplate and imageListPullJobTemplate may be set",
        )),
    }
    if let Some(job) = &t.job_template {
        let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        pod::template_as_is("spec.template.jobTemplate.spec.template", &template, &mut errors);
    }
    if let Some(bcj) = &t.broadcast_job_template {
        let template = bcj.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        pod::template_as_is("spec.template.broadcastJobTemplate.spec.template", &template, &mut errors);
    }
    if let Some(ilpj) = &t.image_list_pull_job_template {
        if !matches!(spec.concurrency_policy, Some(ConcurrencyPolicy::Replace | ConcurrencyPolicy::Forbid)) {
            errors.push(invalid(
                "spec.concurrencyPolicy",
                &spec.concurrency_policy,
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
            errors.push(invalid(&format!("{path}.completionPolicy.type"), &policy.type_, "must be Always"));
        } else if let Some(ttl) = policy.ttl_seconds_after_finished {
            errors.push(invalid(
                &format!("{path}.completionPolicy.ttlSecondsAfterFinished"),
                ttl,
                "is not supported in an AdvancedCronJob",
            ));
        }
        if let Some(d) = deadline.filter(|d| *d > MAX_ACTIVE_DEADLINE_SECONDS) {
            errors.push(invalid(
                &format!("{path}.completionPolicy.activeDeadlineSeconds"),
                d,
                format!("must not be greater than {MAX_ACTIVE_DEADLINE_SECONDS}"),
            ));
        }
        let timeout = tpl.pull_policy.as_ref().and_then(|p| p.timeout_seconds);
        if let (Some(d), Some(timeout)) = (deadline, timeout)
            && i64::from(timeout) > d
        {
            errors.push(invalid(
                &format!("{path}.completionPolicy.activeDeadlineSeconds"),
                d,
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
            errors.push(forbidden(
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
                errors.push(invalid(
                    &format!("{path}.selector"),
                    sel,
                    "names and labels are mutually exclusive",
                ));
            }
            rules::label_selector(&format!("{path}.selector"), &labels, errors);
        }
        for name in rules::duplicates(sel.names.iter().flatten().map(String::as_str)) {
            errors.push(duplicate(&format!("{path}.selector.names"), name));
        }
    }
    if let Some(pods) = &t.pod_selector {
        if t.selector.is_some() {
            errors.push(forbidden(path, "selector and podSelector are mutually exclusive"));
        }
        rules::label_selector(&format!("{path}.podSelector"), pods, errors);
    }
}

/// An image list: 1 to 255 unique, valid references.
fn images(images: &[String], path: &str, errors: &mut Vec<FieldError>) {
    if images.is_empty() {
        errors.push(required(path, "at least one image"));
    }
    if images.len() > 255 {
        errors.push(too_many(path, images.len(), 255));
    }
    for image in rules::duplicates(images.iter().map(String::as_str)) {
        errors.push(duplicate(path, image));
    }
    for (i, image) in images.iter().enumerate() {
        if let Err(e) = rules::image_reference(image) {
            errors.push(invalid(&format!("{path}[{i}]"), image, e));
        }
    }
}

/// A completion policy of an image pull: a type, and a deadline and TTL only with
/// Always.
fn pull_completion(policy: &CompletionPolicy, errors: &mut Vec<FieldError>) {
    match &policy.type_ {
        None => errors.push(required("spec.completionPolicy.type", "")),
        Some(CompletionPolicyType::Other(other)) => {
            errors.push(invalid("spec.completionPolicy.type", other, "must be Always or Never"))
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
        // checked first, alone, and answered with 403, as OpenKruise's handler does
        return vec![forbidden("spec.pullSecrets", "is immutable")];
    }
    selectors(t, "spec", &mut errors);
    if new.spec.image.is_empty() {
        errors.push(required("spec.image", ""));
    } else if let Err(e) = rules::image_reference(&new.spec.image) {
        errors.push(invalid("spec.image", &new.spec.image, e));
    }
    match &t.parallelism {
        Some(IntOrString::String(s)) if s.ends_with('%') => {
            errors.push(invalid("spec.parallelism", s, "must not be a percentage"))
        }
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            Ok(v) if v < 0 => errors.push(invalid("spec.parallelism", s, "must not be negative")),
            Ok(_) => {}
            Err(_) => errors.push(invalid("spec.parallelism", s, "must be an integer")),
        },
        Some(IntOrString::Int(v)) if *v < 0 => {
            errors.push(invalid("spec.parallelism", v, "must not be negative"))
        }
        _ => {}
    }
    let policy = &t.completion_policy;
    pull_completion(policy, &mut errors);
    let timeout = t.pull_policy.as_ref().and_then(|p| p.timeout_seconds).unwrap_or(600);
    if policy.type_ == Some(CompletionPolicyType::Always)
        && policy.active_deadline_seconds.is_some_and(|d| i64::from(timeout) > d)
    {
        errors.push(invalid(
            "spec.completionPolicy.activeDeadlineSeconds",
            policy.active_deadline_seconds,
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
        errors.push(too_many("spec.images", images.len(), 256));
    }
    for (name, image) in &images {
        if name.is_empty() {
            errors.push(required("spec.images", "an image name must not be empty"));
        }
        let mut seen = HashSet::new();
        for (i, tag) in image.tags.iter().enumerate() {
            let path = format!("spec.images[{name}].tags[{i}]");
            if tag.tag.is_empty() {
                errors.push(required(&format!("{path}.tag"), ""));
                continue;
            }
            if !seen.insert(tag.tag.as_str()) {
                errors.push(duplicate(&format!("{path}.tag"), &tag.tag));
            }
            if tag.created_at.is_none() {
                errors.push(required(&format!("{path}.createdAt"), ""));
            }
            if let Some(v) = tag.version.filter(|v| *v < 0) {
                errors.push(invalid(&format!("{path}.version"), v, "must not be negative"));
            }
            match &tag.pull_policy {
                None => errors.push(required(&format!("{path}.pullPolicy"), "")),
                Some(p) if p.ttl_seconds_after_finished.is_none() => {
                    errors.push(required(&format!("{path}.pullPolicy.ttlSecondsAfterFinished"), ""))
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
            errors.push(forbidden("spec", "is immutable"));
        }
        for key in CRR_IMMUTABLE_LABELS {
            if new.labels().get(key) != old.labels().get(key) {
                errors.push(forbidden(&format!("metadata.labels[{key}]"), "is immutable"));
            }
        }
        let before = old.annotations().get(keys::CRR_UNREADY_ACQUIRED).filter(|v| !v.is_empty());
        if before.is_some_and(|b| new.annotations().get(keys::CRR_UNREADY_ACQUIRED) != Some(b)) {
            errors.push(forbidden(
                &format!("metadata.annotations[{}]", keys::CRR_UNREADY_ACQUIRED),
                "is immutable",
            ));
        }
        return errors;
    }
    let spec = &new.spec;
    if spec.pod_name.is_empty() {
        errors.push(required("spec.podName", ""));
    }
    if spec.containers.is_empty() {
        errors.push(required("spec.containers", ""));
    }
    for name in rules::duplicates(spec.containers.iter().map(|c| c.name.as_str())) {
        errors.push(duplicate("spec.containers", name));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        if c.pre_stop.is_some() || c.ports.is_some() || c.status_context.is_some() {
            errors.push(forbidden(
                &format!("spec.containers[{i}]"),
                "preStop, ports and statusContext are read-only",
            ));
        }
    }
    if let Some(d) = spec.active_deadline_seconds.filter(|d| *d < 3) {
        errors.push(invalid("spec.activeDeadlineSeconds", d, "must be at least 3"));
    }
    let strategy = spec.strategy.clone().unwrap_or_default();
    if let Some(policy) = strategy.failure_policy.as_ref().filter(|p| !p.is_known()) {
        errors.push(field::not_supported("spec.strategy.failurePolicy", policy, &["Fail", "Ignore"]));
    }
    for (field, value) in [
        ("terminationGracePeriodSeconds", strategy.termination_grace_period_seconds),
        ("unreadyGracePeriodSeconds", strategy.unready_grace_period_seconds),
    ] {
        if let Some(v) = value {
            rules::non_negative(&format!("spec.strategy.{field}"), v, &mut errors);
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
        errors.push(invalid("spec.targetRef", target, "apiVersion, kind and name are required"));
    } else {
        match SPREAD_TARGETS.iter().find(|(kind, _)| *kind == target.kind) {
            Some((kind, groups)) => {
                if !api_group(&target.api_version).is_some_and(|g| groups.contains(&g)) {
                    errors.push(invalid(
                        "spec.targetRef",
                        target,
                        format!("not a valid reference to a {kind}"),
                    ));
                }
            }
            None => errors.push(invalid("spec.targetRef", target, "the target's kind is not supported")),
        }
    }
    subsets(new, &mut errors);
    let strategy = spec.schedule_strategy.clone().unwrap_or_default();
    if let Some(adaptive) = &strategy.adaptive {
        let seconds = adaptive.reschedule_critical_seconds;
        if strategy.type_ != Some(WorkloadSpreadScheduleStrategyType::Adaptive) {
            errors.push(invalid(
                "spec.scheduleStrategy.type",
                seconds,
                "must be Adaptive to use an adaptive strategy",
            ));
        }
        let n = spec.subsets.len();
        if n > 1 && spec.subsets[n - 1].max_replicas.is_some() {
            errors.push(invalid(
                "spec.scheduleStrategy.adaptive",
                seconds,
                "the last subset must not set maxReplicas under an adaptive strategy",
            ));
        }
        let allowed = if n > 1 { 295 / (n as i32 - 1) } else { i32::MAX };
        if seconds.is_some_and(|s| !(0..=allowed).contains(&s)) {
            errors.push(invalid(
                "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds",
                seconds,
                format!("must be within 0..={allowed}"),
            ));
        }
    }
    if let Some(selector) = spec.target_filter.as_ref().and_then(|f| f.selector.as_ref()) {
        rules::label_selector("spec.targetFilter.selector", selector, &mut errors);
    }
    if let Some(old) = old {
        let o = &old.spec.target_reference;
        if api_group(&o.api_version) != api_group(&target.api_version)
            || o.kind != target.kind
            || o.name != target.name
        {
            errors.push(forbidden("spec.targetRef", "may not change"));
        }
    }
    errors
}

fn subsets(ws: &WorkloadSpread, errors: &mut Vec<FieldError>) {
    let subsets = &ws.spec.subsets;
    if subsets.is_empty() {
        errors.push(required("spec.subsets", "at least one subset"));
        return;
    }
    let mut names = HashSet::new();
    let mut first_is_int = None;
    let mut percent_sum = 0;
    for (i, subset) in subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if subset.name.is_empty() {
            errors.push(invalid(&format!("{path}.name"), "", "must not be empty"));
        } else if !names.insert(subset.name.as_str()) {
            errors.push(invalid(&format!("{path}.name"), &subset.name, "duplicate subset name"));
        }
        if let Some(term) = &subset.required_node_selector_term {
            rules::node_selector_term(&format!("{path}.requiredNodeSelectorTerm"), term, errors);
        }
        if let Some(terms) = &subset.preferred_node_selector_terms {
            rules::preferred_terms(&format!("{path}.preferredNodeSelectorTerms"), terms, errors);
        }
        if let Some(list) = &subset.tolerations {
            rules::tolerations(&format!("{path}.tolerations"), list, errors);
        }
        let Some(max) = &subset.max_replicas else { continue };
        let is_int = matches!(max, IntOrString::Int(_));
        let field = format!("{path}.maxReplicas");
        if *first_is_int.get_or_insert(is_int) != is_int {
            errors.push(invalid(&field, max, "all subsets' maxReplicas must be of the same type"));
            return;
        }
        if ws.spec.target_reference.kind == "StatefulSet" && !is_int {
            errors.push(invalid(&field, max, "must be an integer for a StatefulSet"));
            return;
        }
        match intstr::parse(max, Percent::Integer) {
            Ok(IntOrPercent::Percent(p)) => {
                percent_sum += p as i64;
                if percent_sum > 100 {
                    errors.push(invalid(&field, max, "the subsets' maxReplicas add up to more than 100%"));
                    return;
                }
            }
            Ok(IntOrPercent::Int(_)) => {}
            Err(e) => {
                errors.push(invalid(&field, max, e.to_string()));
                return;
            }
        }
    }
    if first_is_int == Some(false) && percent_sum < 100 && subsets[subsets.len() - 1].max_replicas.is_some() {
        errors.push(invalid(
            "spec.subsets[0].maxReplicas",
            percent_sum,
            "percentages must add up to 100% when the last subset sets one",
        ));
    }
}
