//! The defaults of SidecarSet, BroadcastJob, AdvancedCronJob, ImagePullJob,
//! ImageListPullJob, NodeImage and ContainerRecreateRequest, as OpenKruise v1.9.0's
//! mutating webhooks set them (`apis/apps/defaults`).
//!
//! As with validation, the kinds served at two versions are defaulted as their
//! v1beta1 hub type, which reads either version: the patch only touches the fields
//! the defaults changed, which both versions share. Not yet here: the Kubernetes pod
//! defaults OpenKruise applies to job templates (and the volume defaults beyond
//! `defaultMode`), and the SidecarSet hash annotations, which come with the
//! SidecarSet controller.

use std::sync::Arc;

use k8s_openapi::{
    api::core::v1::{Container, HTTPGetAction, ObjectFieldSelector, Probe},
    apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString},
    jiff::Timestamp,
};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation as AdmissionOperation},
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

use super::Defaulter;
use crate::{
    validation::{Validator, jobs::container_recreate_request as crr_rules},
    webhook::{Admit, Operation, Registry},
};

#[cfg(test)]
mod tests;

/// Registers the defaulters of these kinds at OpenKruise's paths.
pub fn register(registry: &mut Registry) {
    let m = Operation::Mutate;
    registry.admission(m, APPS_GROUP, "", "SidecarSet", Arc::new(Defaulter::new(sidecar_set)));
    registry.admission(m, APPS_GROUP, "", "BroadcastJob", Arc::new(Defaulter::new(broadcast_job)));
    registry.admission(m, APPS_GROUP, "", "AdvancedCronJob", Arc::new(Defaulter::new(advanced_cron_job)));
    let ipj = ByOperation {
        create: Arc::new(Defaulter::new(image_pull_job_on_create)),
        other: Arc::new(Defaulter::new(image_pull_job)),
    };
    registry.admission(m, APPS_GROUP, "", "ImagePullJob", Arc::new(ipj));
    registry.admission(m, APPS_GROUP, "", "ImageListPullJob", Arc::new(Defaulter::new(image_list_pull_job)));
    registry.admission(m, APPS_GROUP, "", "NodeImage", Arc::new(Defaulter::new(node_image)));
    let crr = CheckedOnCreate {
        // 400 for a bad request, 403 for a change to what may not change
        rules: Validator::new(crr_rules)
            .code(|op, _| if *op == AdmissionOperation::Update { 403 } else { 400 }),
        defaulter: Defaulter::new(container_recreate_request),
    };
    registry.admission(m, APPS_GROUP, "v1alpha1", "ContainerRecreateRequest", Arc::new(crr));
}

/// One handler for CREATE, another for every other operation.
struct ByOperation {
    create: Arc<dyn Admit>,
    other: Arc<dyn Admit>,
}

impl Admit for ByOperation {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if req.operation == AdmissionOperation::Create { &self.create } else { &self.other }.admit(req)
    }
}

/// A mutating webhook that also refuses, as ContainerRecreateRequest's does in
/// OpenKruise: the rules first, then, on CREATE only, the defaults.
struct CheckedOnCreate<K> {
    rules: Validator<K>,
    defaulter: Defaulter<K>,
}

impl<K: serde::de::DeserializeOwned + serde::Serialize + 'static> Admit for CheckedOnCreate<K> {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let checked = self.rules.admit(req);
        if !checked.allowed || req.operation != AdmissionOperation::Create {
            return checked;
        }
        self.defaulter.admit(req)
    }
}

/// SidecarSet: updateStrategy RollingUpdate with partition 0 and maxUnavailable 1;
/// per container podInjectPolicy (BeforeAppContainer, AfterAppContainer for init
/// containers), upgradeType ColdUpgrade, shareVolumePolicy disabled and the
/// Kubernetes container defaults; secret and configMap volumes' defaultMode 0644;
/// revisionHistoryLimit 10; patchPolicy Retain; an injection revision's policy
/// Always.
pub fn sidecar_set(set: &mut SidecarSet) {
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
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(s) = v.0.secret.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(c) = v.0.config_map.as_mut() {
            c.default_mode.get_or_insert(0o644);
        }
    }
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
            field_selector(f);
        }
    }
    container(&mut c.container);
}

/// Kubernetes' container defaults (`SetDefaults_Container` and the probe, port,
/// field selector and HTTP action defaults OpenKruise applies to sidecars).
pub(crate) fn container(c: &mut Container) {
    c.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy.get_or_insert_with(|| "File".into());
    if c.image_pull_policy.is_none() {
        let image = c.image.as_deref().unwrap_or_default();
        let name = image.rsplit('/').next().unwrap_or_default();
        let tag = if image.contains('@') { None } else { name.split_once(':').map(|(_, t)| t) };
        let latest = !image.contains('@') && tag.is_none_or(|t| t == "latest");
        c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
    }
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            field_selector(f);
        }
    }
    for probe in [&mut c.liveness_probe, &mut c.readiness_probe].into_iter().flatten() {
        self::probe(probe);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            if let Some(get) = h.http_get.as_mut() {
                http_get(get);
            }
        }
    }
}

fn field_selector(f: &mut ObjectFieldSelector) {
    f.api_version.get_or_insert_with(|| "v1".into());
}

fn probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(get) = p.http_get.as_mut() {
        http_get(get);
    }
}

fn http_get(get: &mut HTTPGetAction) {
    get.path.get_or_insert_with(|| "/".into());
    get.scheme.get_or_insert_with(|| "HTTP".into());
}

/// BroadcastJob: completionPolicy Always, parallelism 2147483647 (every node at
/// once), failurePolicy FailFast.
pub fn broadcast_job(job: &mut BroadcastJob) {
    let spec = &mut job.spec;
    spec.completion_policy.type_.get_or_insert(CompletionPolicyType::Always);
    spec.parallelism.get_or_insert(IntOrString::Int(i32::MAX));
    spec.failure_policy
        .get_or_insert_with(FailurePolicy::default)
        .type_
        .get_or_insert(FailurePolicyType::FailFast);
}

/// AdvancedCronJob: concurrencyPolicy Allow (Replace with an image-list template),
/// paused false, 3 successful and 1 failed job kept; an image-list template without
/// a completion type gets Always, a pull timeout of 600s, 3 retries and
/// imagePullPolicy IfNotPresent.
pub fn advanced_cron_job(acj: &mut AdvancedCronJob) {
    let spec = &mut acj.spec;
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

/// ImagePullJob: completionPolicy Always, a pull timeout of 600s and 3 retries,
/// imagePullPolicy IfNotPresent.
pub fn image_pull_job(job: &mut ImagePullJob) {
    let t = &mut job.spec.template;
    t.completion_policy.type_.get_or_insert(CompletionPolicyType::Always);
    pull_policy(t);
    t.image_pull_policy.get_or_insert(ImagePullPolicy::IfNotPresent);
}

/// ImagePullJob on CREATE: [`image_pull_job`] plus the [`PROTECTION_FINALIZER`].
pub fn image_pull_job_on_create(job: &mut ImagePullJob) {
    image_pull_job(job);
    let finalizers = job.metadata.finalizers.get_or_insert_default();
    if !finalizers.iter().any(|f| f == PROTECTION_FINALIZER) {
        finalizers.push(PROTECTION_FINALIZER.into());
    }
}

/// ImageListPullJob: completionPolicy Always, a pull timeout of 600s and 3 retries.
pub fn image_list_pull_job(job: &mut ImageListPullJob) {
    let t = &mut job.spec.template;
    t.completion_policy.type_.get_or_insert(CompletionPolicyType::Always);
    pull_policy(t);
}

/// NodeImage: every tag gets createdAt (now) and a pull policy with a 600s timeout
/// and 3 retries; tags are sorted by name, in the spec and the status.
pub fn node_image(ni: &mut NodeImage) {
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
/// and the containers' preStop, ports and statusContext are filled in from the pod,
/// which needs the API server.)
pub fn container_recreate_request(crr: &mut ContainerRecreateRequest) {
    crr.metadata.labels.get_or_insert_default().insert(keys::CRR_ACTIVE.into(), "true".into());
    crr.spec.strategy.get_or_insert_default().failure_policy.get_or_insert(CrrFailurePolicy::Fail);
}
