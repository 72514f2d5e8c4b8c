//! The defaults of SidecarSet, BroadcastJob, AdvancedCronJob, ImagePullJob,
//! ImageListPullJob, NodeImage and ContainerRecreateRequest, as OpenKruise v1.9.0's
//! mutating webhooks set them (`apis/apps/defaults`).
//!
//! As with validation, the kinds served at two versions are defaulted as their
//! v1beta1 hub type, which reads either version: the patch only touches the fields
//! the defaults changed, which both versions share. Not yet here: the SidecarSet
//! hash annotations, which come with the SidecarSet controller.

use std::sync::Arc;

use k8s_openapi::{
    apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString},
    jiff::Timestamp,
};
use stevedore_proto::crd::{
    APPS_GROUP,
    advanced_cron_job::{ConcurrencyPolicy, v1beta1::AdvancedCronJob},
    broadcast_job::{FailurePolicy, FailurePolicyType, v1beta1::BroadcastJob},
    common::CompletionPolicyType,
    container_recreate_request::{ContainerRecreateRequest, FailurePolicy as CrrFailurePolicy},
    image_list_pull_job::v1beta1::ImageListPullJob,
    image_pull_job::{ImagePullJobTemplate, ImagePullPolicy, PullPolicy, v1beta1::ImagePullJob},
    node_image::{ImageTagPullPolicy, v1beta1::NodeImage},
    sidecar_set::{
        PodInjectPolicy, ShareVolumePolicy, ShareVolumePolicyType, SidecarContainer,
        SidecarContainerUpgradeStrategy, SidecarContainerUpgradeType, SidecarSetInjectRevisionPolicy,
        SidecarSetPatchPolicyType, SidecarSetUpdateStrategyType, v1beta1::SidecarSet,
    },
};
use stevedore_proto::keys;

use super::{Defaulter, pod};
use crate::webhook::{ByVersion, Operation, Registry};

#[cfg(test)]
mod tests;

/// Registers the defaulters of these kinds at OpenKruise's paths.
pub fn register(registry: &mut Registry) {
    let m = Operation::Mutate;
    registry.admission(m, APPS_GROUP, "", "SidecarSet", Arc::new(Defaulter::new(sidecar_set)));
    registry.admission(m, APPS_GROUP, "", "BroadcastJob", Arc::new(Defaulter::new(broadcast_job)));
    registry.admission(m, APPS_GROUP, "", "AdvancedCronJob", Arc::new(Defaulter::new(advanced_cron_job)));
    // v1alpha1 jobs get the deletion-protection finalizer on CREATE; v1beta1's
    // defaults do not add it
    let ipj = ByVersion::new()
        .version("v1alpha1", Arc::new(Defaulter::new(image_pull_job_v1alpha1)))
        .version("v1beta1", Arc::new(Defaulter::new(image_pull_job)));
    registry.admission(m, APPS_GROUP, "", "ImagePullJob", Arc::new(ipj));
    registry.admission(m, APPS_GROUP, "", "ImageListPullJob", Arc::new(Defaulter::new(image_list_pull_job)));
    registry.admission(m, APPS_GROUP, "", "NodeImage", Arc::new(Defaulter::new(node_image)));
    let crr = super::container_recreate_request::Admission::new(registry.cluster());
    registry.admission(m, APPS_GROUP, "v1alpha1", "ContainerRecreateRequest", Arc::new(crr));
}

/// SidecarSet (`SetDefaultsSidecarSet`): updateStrategy RollingUpdate with partition 0
/// and maxUnavailable 1; per container podInjectPolicy (BeforeAppContainer,
/// AfterAppContainer for init containers), upgradeType ColdUpgrade,
/// shareVolumePolicy disabled, transferEnv fieldRef apiVersion v1 and the container
/// defaults ([`pod::container`]); the volumes' defaults; revisionHistoryLimit 10;
/// patchPolicy Retain; an injection revision's policy Always.
pub fn sidecar_set(set: &mut SidecarSet, _old: Option<&SidecarSet>) {
    let spec = &mut set.spec;
    let strategy = spec.update_strategy.get_or_insert_default();
    strategy.type_.get_or_insert(SidecarSetUpdateStrategyType::RollingUpdate);
    strategy.max_unavailable.get_or_insert(IntOrString::Int(1));
    strategy.partition.get_or_insert(IntOrString::Int(0));
    for c in spec.init_containers.iter_mut().flatten() {
        sidecar_container(c, PodInjectPolicy::AfterAppContainer);
    }
    for c in spec.containers.iter_mut().flatten() {
        sidecar_container(c, PodInjectPolicy::BeforeAppContainer);
    }
    pod::volumes(spec.volumes.iter_mut().flatten());
    spec.revision_history_limit.get_or_insert(10);
    for patch in spec.patch_pod_metadata.iter_mut().flatten() {
        patch.patch_policy.get_or_insert(SidecarSetPatchPolicyType::Retain);
    }
    if let Some(revision) = spec.injection_strategy.as_mut().and_then(|s| s.revision.as_mut()) {
        revision.policy.get_or_insert(SidecarSetInjectRevisionPolicy::Always);
    }
}

fn sidecar_container(c: &mut SidecarContainer, inject: PodInjectPolicy) {
    c.pod_inject_policy.get_or_insert(inject);
    let upgrade = c.upgrade_strategy.get_or_insert_with(SidecarContainerUpgradeStrategy::default);
    upgrade.upgrade_type.get_or_insert(SidecarContainerUpgradeType::ColdUpgrade);
    c.share_volume_policy
        .get_or_insert_with(ShareVolumePolicy::default)
        .type_
        .get_or_insert(ShareVolumePolicyType::Disabled);
    for env in c.transfer_env.iter_mut().flatten() {
        if let Some(f) = env.source_container_name_from.as_mut().and_then(|s| s.field_ref.as_mut()) {
            pod::field_selector(f);
        }
    }
    pod::container(&mut c.container, pod::Role::Sidecar);
}

/// BroadcastJob (`SetDefaultsBroadcastJob`): the pod template's defaults on CREATE
/// or when it changed; completionPolicy Always, parallelism 2147483647 (every node
/// at once), failurePolicy FailFast.
pub fn broadcast_job(job: &mut BroadcastJob, old: Option<&BroadcastJob>) {
    let spec = &mut job.spec;
    if old.is_none_or(|o| o.spec.template != spec.template) {
        pod::template(&mut spec.template);
    }
    spec.completion_policy.type_.get_or_insert(CompletionPolicyType::Always);
    spec.parallelism.get_or_insert(IntOrString::Int(i32::MAX));
    spec.failure_policy
        .get_or_insert_with(FailurePolicy::default)
        .type_
        .get_or_insert(FailurePolicyType::FailFast);
}

/// AdvancedCronJob (`SetDefaultsAdvancedCronJob`): the job and broadcast-job
/// templates' pod defaults on CREATE or when the template changed;
/// concurrencyPolicy Allow (Replace with an image-list template), paused false, 3
/// successful and 1 failed job kept; an image-list template without a completion
/// type gets Always, a pull timeout of 600s, 3 retries and imagePullPolicy
/// IfNotPresent.
pub fn advanced_cron_job(acj: &mut AdvancedCronJob, old: Option<&AdvancedCronJob>) {
    let inject = old.is_none_or(|o| o.spec.template != acj.spec.template);
    let spec = &mut acj.spec;
    if inject {
        if let Some(job) = spec.template.job_template.as_mut().and_then(|t| t.spec.as_mut()) {
            pod::template(&mut job.template);
        }
        if let Some(bcj) = spec.template.broadcast_job_template.as_mut().and_then(|t| t.spec.as_mut()) {
            pod::template(&mut bcj.template);
        }
    }
    let ilpj = spec.template.image_list_pull_job_template.as_mut().map(|t| t.spec.get_or_insert_default());
    let has_ilpj = ilpj.is_some();
    if let Some(t) = ilpj.map(|s| &mut s.template)
        && t.completion_policy.type_.is_none()
    {
        t.completion_policy.type_ = Some(CompletionPolicyType::Always);
        pull_policy(t);
        t.image_pull_policy.get_or_insert(ImagePullPolicy::IfNotPresent);
    }
    spec.concurrency_policy.get_or_insert(if has_ilpj {
        ConcurrencyPolicy::Replace
    } else {
        ConcurrencyPolicy::Allow
    });
    spec.paused.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
}

fn pull_policy(t: &mut ImagePullJobTemplate) {
    let p = t.pull_policy.get_or_insert_with(PullPolicy::default);
    p.timeout_seconds.get_or_insert(600);
    p.backoff_limit.get_or_insert(3);
}

/// The finalizer that holds an ImagePullJob until its pulls are cleaned up.
pub use keys::DELETION_PROTECTION_FINALIZER as PROTECTION_FINALIZER;

/// v1beta1 ImagePullJob (`SetDefaultsImagePullJobV1beta1`): completionPolicy
/// Always, a pull timeout of 600s and 3 retries, imagePullPolicy IfNotPresent.
pub fn image_pull_job(job: &mut ImagePullJob, _old: Option<&ImagePullJob>) {
    let t = &mut job.spec.template;
    t.completion_policy.type_.get_or_insert(CompletionPolicyType::Always);
    pull_policy(t);
    t.image_pull_policy.get_or_insert(ImagePullPolicy::IfNotPresent);
}

/// v1alpha1 ImagePullJob (`SetDefaultsImagePullJob`): [`image_pull_job`] plus, on
/// CREATE, the [`PROTECTION_FINALIZER`].
pub fn image_pull_job_v1alpha1(job: &mut ImagePullJob, old: Option<&ImagePullJob>) {
    image_pull_job(job, old);
    if old.is_none() {
        let finalizers = job.metadata.finalizers.get_or_insert_default();
        if !finalizers.iter().any(|f| f == PROTECTION_FINALIZER) {
            finalizers.push(PROTECTION_FINALIZER.into());
        }
    }
}

/// ImageListPullJob: completionPolicy Always, a pull timeout of 600s and 3 retries.
pub fn image_list_pull_job(job: &mut ImageListPullJob, _old: Option<&ImageListPullJob>) {
    let t = &mut job.spec.template;
    t.completion_policy.type_.get_or_insert(CompletionPolicyType::Always);
    pull_policy(t);
}

/// NodeImage: every tag gets createdAt (now) and a pull policy with a 600s timeout
/// and 3 retries; tags are sorted by name, in the spec and the status.
pub fn node_image(ni: &mut NodeImage, _old: Option<&NodeImage>) {
    let now = Time(Timestamp::now());
    for image in ni.spec.images.iter_mut().flat_map(|m| m.values_mut()) {
        for tag in &mut image.tags {
            tag.created_at.get_or_insert_with(|| now.clone());
            let p = tag.pull_policy.get_or_insert_with(ImageTagPullPolicy::default);
            p.timeout_seconds.get_or_insert(600);
            p.backoff_limit.get_or_insert(3);
        }
        image.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    }
    let statuses =
        ni.status.iter_mut().flat_map(|s| s.image_statuses.iter_mut().flat_map(|m| m.values_mut()));
    for status in statuses {
        status.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    }
}

/// ContainerRecreateRequest on CREATE: the label `crr.apps.kruise.io/active=true`
/// and strategy.failurePolicy Fail. (The pod's uid and node labels, its grace period
/// and the containers' preStop, ports and statusContext are filled in from the pod:
/// [`super::container_recreate_request::fill_from_pod`].)
pub fn container_recreate_request(
    crr: &mut ContainerRecreateRequest,
    _old: Option<&ContainerRecreateRequest>,
) {
    crr.metadata.labels.get_or_insert_default().insert(keys::CRR_ACTIVE.into(), "true".into());
    crr.spec.strategy.get_or_insert_default().failure_policy.get_or_insert(CrrFailurePolicy::Fail);
}
