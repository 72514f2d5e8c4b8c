//! Image pre-download before an in-place rollout (OpenKruise v1.9.0's
//! `createImagePullJobsForInPlaceUpdate`): when a new revision can be rolled in place
//! over more than one batch, an ImagePullJob per changed container image, named
//! `<revision>-<container>` and owned by the set, pulls it onto the nodes of the pods
//! not yet on that revision, so kubelet finds it there when their pod is patched. The
//! revision is labelled `apps.kruise.io/pre-predownload-created` (or
//! `apps.kruise.io/image-predownload-ignored`, with the reason logged) so this happens
//! once per revision. OpenKruise runs it behind its `PreDownloadImageForInPlaceUpdate`
//! gate (off by default); here it is always on.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::apps::v1::ControllerRevision,
    apimachinery::pkg::{apis::meta::v1::LabelSelectorRequirement, util::intstr::IntOrString},
};
use kube::{
    Api, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;
use stevedore_proto::{
    crd::{
        clone_set::{CloneSet, CloneSetUpdateStrategyType},
        common::{CompletionPolicy, CompletionPolicyType},
        image_pull_job::{ImagePullJobTemplate, PullPolicy, SandboxConfig, v1beta1::ImagePullJob},
    },
    inplace::{self, Eligibility},
    revision,
};
use tracing::info;

use super::{super::revisions, Error};
use crate::runtime::Events;

/// The revision label: jobs were created for it.
pub const CREATED: &str = "apps.kruise.io/pre-predownload-created";
/// The revision label: no jobs for it.
pub const IGNORED: &str = "apps.kruise.io/image-predownload-ignored";
/// Set annotation: the jobs' parallelism (default 1).
pub const PARALLELISM: &str = "apps.kruise.io/image-predownload-parallelism";
/// Set annotation: each pull's timeout (default 300 s).
pub const TIMEOUT_SECONDS: &str = "apps.kruise.io/image-predownload-timeout-seconds";
/// Set annotation: updated ready pods needed before the jobs are made (default 0).
pub const MIN_UPDATED_READY_PODS: &str = "apps.kruise.io/image-predownload-min-updated-ready-pods";

/// Sets of at most this many replicas roll in one go anyway.
const MINIMUM_REPLICAS: i64 = 3;

/// What to do for a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Already decided (labelled), or the threshold of updated ready pods is not met.
    Nothing,
    /// No jobs, for this reason.
    Ignore(&'static str),
    /// Jobs for these images, by container.
    Pull(BTreeMap<String, String>),
}

fn annotation_int(cs: &CloneSet, key: &str) -> Option<i64> {
    cs.annotations().get(key).and_then(|v| v.trim().parse().ok())
}

/// Decides for the move from `current` to `update` (their templates given), at the
/// set's `partition` and scaled `max_unavailable`.
pub fn decide(
    cs: &CloneSet,
    update_labels: &BTreeMap<String, String>,
    current: &k8s_openapi::api::core::v1::PodTemplateSpec,
    update: &k8s_openapi::api::core::v1::PodTemplateSpec,
    partition: i64,
    max_unavailable: i64,
) -> Decision {
    if update_labels.contains_key(CREATED) || update_labels.contains_key(IGNORED) {
        return Decision::Nothing;
    }
    let min_ready = annotation_int(cs, MIN_UPDATED_READY_PODS).unwrap_or(0);
    let updated_ready = cs.status.as_ref().map_or(0, |s| s.updated_ready_replicas);
    if i64::from(updated_ready) < min_ready {
        return Decision::Nothing;
    }
    let strategy = cs.spec.update_strategy.as_ref().and_then(|u| u.type_.clone()).unwrap_or_default();
    if strategy == CloneSetUpdateStrategyType::ReCreate {
        return Decision::Ignore("updateStrategy.type is ReCreate");
    }
    let replicas = i64::from(cs.spec.replicas.unwrap_or(1));
    if replicas <= MINIMUM_REPLICAS {
        return Decision::Ignore("3 replicas or fewer");
    }
    if partition == 0 && max_unavailable >= replicas {
        return Decision::Ignore("every pod updates in one batch");
    }
    match inplace::plan("", current, update) {
        Eligibility::InPlace(spec) if !spec.container_images.is_empty() => {
            Decision::Pull(spec.container_images)
        }
        Eligibility::InPlace(_) => Decision::Ignore("no image changes"),
        Eligibility::Recreate(_) => Decision::Ignore("the change cannot be made in place"),
    }
}

/// The job for one container's image.
pub fn job(cs: &CloneSet, update: &ControllerRevision, container: &str, image: &str) -> ImagePullJob {
    let hash = update.labels().get(revision::CONTROLLER_REVISION_HASH_LABEL).cloned().unwrap_or_default();
    let mut selector = cs.spec.selector.clone();
    selector.match_expressions.get_or_insert_with(Vec::new).push(LabelSelectorRequirement {
        key: stevedore_proto::keys::CONTROLLER_REVISION_HASH.to_owned(),
        operator: "NotIn".to_owned(),
        values: Some(vec![update.name_any(), hash.clone()]),
    });
    let mut labels = cs.spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(revision::CONTROLLER_REVISION_HASH_LABEL.to_owned(), hash);
    let parallelism = annotation_int(cs, PARALLELISM).and_then(|p| i32::try_from(p).ok()).unwrap_or(1);
    let timeout = annotation_int(cs, TIMEOUT_SECONDS).and_then(|p| i32::try_from(p).ok()).unwrap_or(300);
    let pull_secrets: Vec<String> = cs
        .spec
        .template
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|s| s.name.clone())
        .collect();
    ImagePullJob {
        metadata: ObjectMeta {
            name: Some(format!("{}-{container}", update.name_any())),
            namespace: cs.namespace(),
            labels: Some(labels.clone()),
            owner_references: revisions::owner(cs).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: stevedore_proto::crd::image_pull_job::v1beta1::ImagePullJobSpec {
            image: image.to_owned(),
            template: ImagePullJobTemplate {
                pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
                pod_selector: Some(selector),
                parallelism: Some(IntOrString::Int(parallelism)),
                pull_policy: Some(PullPolicy { timeout_seconds: Some(timeout), backoff_limit: Some(1) }),
                completion_policy: CompletionPolicy {
                    type_: Some(CompletionPolicyType::Always),
                    active_deadline_seconds: None,
                    ttl_seconds_after_finished: Some(600),
                },
                sandbox_config: Some(SandboxConfig { labels: Some(labels), annotations: None }),
                ..ImagePullJobTemplate::default()
            },
        },
        status: None,
    }
}

/// Decides and acts for the set's update revision.
pub async fn run(
    client: &kube::Client,
    events: &Events,
    cs: &CloneSet,
    revs: &revisions::Revisions,
    partition: i64,
    max_unavailable: i64,
) -> Result<(), Error> {
    let labels = revs.update.labels();
    if revs.update.name_any() == revs.current.name_any()
        || labels.contains_key(CREATED)
        || labels.contains_key(IGNORED)
    {
        return Ok(()); // nothing to move to, or decided already: no templates to read
    }
    let ns = cs.namespace().unwrap_or_default();
    let (current, update) = (revisions::template(&revs.current)?, revisions::template(&revs.update)?);
    let label = match decide(cs, labels, &current, &update, partition, max_unavailable) {
        Decision::Nothing => return Ok(()),
        Decision::Ignore(reason) => {
            info!(revision = %revs.update.name_any(), reason, "no image pre-download");
            IGNORED
        }
        Decision::Pull(images) => {
            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            for (container, image) in &images {
                let j = job(cs, &revs.update, container, image);
                let name = j.name_any();
                match jobs.create(&PostParams::default(), &j).await {
                    Ok(_) => {
                        info!(job = %name, %image, "image pre-download job created");
                        events
                            .publish(
                                cs,
                                false,
                                "CreatedImagePullJob",
                                format!("created ImagePullJob {name} for image: {image}"),
                            )
                            .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => {
                        events
                            .publish(
                                cs,
                                false,
                                "FailedCreateImagePullJob",
                                format!("failed to create ImagePullJob {name}: {e}"),
                            )
                            .await;
                        return Err(e.into());
                    }
                }
            }
            CREATED
        }
    };
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let body = json!({"metadata": {"labels": {label: "true"}}});
    api.patch(&revs.update.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn set(v: Value) -> CloneSet {
        let mut base = json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "a:1"}]}},
                "updateStrategy": {"type": "InPlaceIfPossible"}}});
        json_patch::merge(&mut base, &v);
        serde_json::from_value(base).unwrap()
    }

    fn template(image: &str, args: Option<&str>) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        let mut c = json!({"name": "app", "image": image});
        if let Some(a) = args {
            c["args"] = json!([a]);
        }
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}}))
            .unwrap()
    }

    #[test]
    fn openkruise_thresholds() {
        let none = BTreeMap::new();
        let (old, new) = (template("a:1", None), template("a:2", None));
        let images = BTreeMap::from([("app".to_owned(), "a:2".to_owned())]);
        assert_eq!(decide(&set(json!({})), &none, &old, &new, 0, 2), Decision::Pull(images.clone()));
        assert_eq!(
            decide(&set(json!({})), &none, &old, &new, 0, 10),
            Decision::Ignore("every pod updates in one batch")
        );
        assert_eq!(
            decide(&set(json!({})), &none, &old, &new, 1, 10),
            Decision::Pull(images),
            "a partition makes batches"
        );
        let small = set(json!({"spec": {"replicas": 3}}));
        assert_eq!(decide(&small, &none, &old, &new, 0, 1), Decision::Ignore("3 replicas or fewer"));
        let recreate = set(json!({"spec": {"updateStrategy": {"type": "ReCreate"}}}));
        assert_eq!(
            decide(&recreate, &none, &old, &new, 0, 1),
            Decision::Ignore("updateStrategy.type is ReCreate")
        );
        let args = template("a:2", Some("--x"));
        assert_eq!(
            decide(&set(json!({})), &none, &old, &args, 0, 1),
            Decision::Ignore("the change cannot be made in place")
        );
        let done = BTreeMap::from([(CREATED.to_owned(), "true".to_owned())]);
        assert_eq!(decide(&set(json!({})), &done, &old, &new, 0, 1), Decision::Nothing);
        let waiting = set(json!({"metadata": {"annotations": {MIN_UPDATED_READY_PODS: "2"}}}));
        assert_eq!(decide(&waiting, &none, &old, &new, 0, 1), Decision::Nothing, "no updated ready pods yet");
    }

    #[test]
    fn the_job_targets_the_pods_not_yet_updated() {
        let cs = set(json!({"metadata": {"annotations": {PARALLELISM: "3", TIMEOUT_SECONDS: "120"}}}));
        let rev: ControllerRevision = serde_json::from_value(json!({"metadata": {"name": "web-abc", "labels": {"controller.kubernetes.io/hash": "abc"}}, "revision": 2})).unwrap();
        let j = job(&cs, &rev, "app", "a:2");
        assert_eq!(j.name_any(), "web-abc-app");
        assert_eq!(j.spec.image, "a:2");
        assert_eq!(j.owner_references()[0].name, "web");
        let sel = j.spec.template.pod_selector.clone().unwrap();
        assert_eq!(sel.match_labels.unwrap()["app"], "web");
        let expr = &sel.match_expressions.unwrap()[0];
        assert_eq!((expr.key.as_str(), expr.operator.as_str()), ("controller-revision-hash", "NotIn"));
        assert_eq!(expr.values.as_deref().unwrap(), ["web-abc", "abc"]);
        assert_eq!(j.spec.template.parallelism, Some(IntOrString::Int(3)));
        assert_eq!(j.spec.template.pull_policy.unwrap().timeout_seconds, Some(120));
    }
}
