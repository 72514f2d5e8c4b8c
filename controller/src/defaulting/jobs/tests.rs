//! Each defaulter's patch, and each kind through the registry.

use kube::core::{DynamicObject, admission::AdmissionResponse};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::*;
use crate::{defaulting::Defaults, validation::jobs::tests::review};

/// The JSON patch `defaults` makes to `object`, as JSON.
fn patch_of<K: DeserializeOwned + Serialize>(defaults: Defaults<K>, object: Value) -> Value {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    serde_json::to_value(crate::defaulting::patch(&object, None, defaults).unwrap()).unwrap()
}

fn add(path: &str, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

fn object(api_version: &str, kind: &str, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": spec})
}

#[test]
fn sidecar_set_defaults() {
    let set = object(
        "apps.kruise.io/v1alpha1",
        "SidecarSet",
        json!({
            "selector": {"matchLabels": {"a": "b"}},
            "initContainers": [{"name": "init", "image": "init@sha256:1ff6c18fbef2045af6b9c16bf034cc421a29027b800e4f9b68ae9b1cb3e9ae07"}],
            "containers": [{"name": "proxy", "image": "proxy:1.0", "ports": [{"containerPort": 80}],
                            "readinessProbe": {"httpGet": {"port": 80}},
                            "transferEnv": [{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.name"}}, "envName": "E"}]}],
            "volumes": [{"name": "certs", "secret": {"secretName": "c"}}],
            "injectionStrategy": {"revision": {"customVersion": "v1"}},
            "patchPodMetadata": [{"annotations": {"k": "v"}}]
        }),
    );
    let patch = patch_of(sidecar_set, set);
    let ops = patch.as_array().unwrap();
    for want in [
        add("/spec/updateStrategy", json!({"type": "RollingUpdate", "partition": 0, "maxUnavailable": 1})),
        add("/spec/revisionHistoryLimit", json!(10)),
        add("/spec/patchPodMetadata/0/patchPolicy", json!("Retain")),
        add("/spec/injectionStrategy/revision/policy", json!("Always")),
        add("/spec/initContainers/0/podInjectPolicy", json!("AfterAppContainer")),
        add("/spec/initContainers/0/imagePullPolicy", json!("IfNotPresent")),
        add("/spec/containers/0/podInjectPolicy", json!("BeforeAppContainer")),
        add("/spec/containers/0/upgradeStrategy", json!({"upgradeType": "ColdUpgrade"})),
        add("/spec/containers/0/shareVolumePolicy", json!({"type": "disabled"})),
        add("/spec/containers/0/imagePullPolicy", json!("IfNotPresent")),
        add("/spec/containers/0/terminationMessagePath", json!("/dev/termination-log")),
        add("/spec/containers/0/terminationMessagePolicy", json!("File")),
        add("/spec/containers/0/ports/0/protocol", json!("TCP")),
        add("/spec/containers/0/readinessProbe/httpGet/path", json!("/")),
        add("/spec/containers/0/readinessProbe/periodSeconds", json!(10)),
        add("/spec/containers/0/transferEnv/0/sourceContainerNameFrom/fieldRef/apiVersion", json!("v1")),
        add("/spec/volumes/0/secret/defaultMode", json!(420)),
    ] {
        assert!(ops.contains(&want), "missing {want} in {patch:#}");
    }
}

#[test]
fn broadcast_job_defaults() {
    let job =
        object("apps.kruise.io/v1alpha1", "BroadcastJob", json!({"template": {}, "completionPolicy": {}}));
    assert_eq!(
        patch_of(broadcast_job, job),
        json!([
            add("/spec/completionPolicy/type", json!("Always")),
            add("/spec/failurePolicy", json!({"type": "FailFast"})),
            add("/spec/parallelism", json!(2_147_483_647)),
        ])
    );
}

#[test]
fn advanced_cron_job_defaults() {
    let acj = object(
        "apps.kruise.io/v1beta1",
        "AdvancedCronJob",
        json!({"schedule": "@daily", "template": {"jobTemplate": {"spec": {"template": {}}}}}),
    );
    assert_eq!(
        patch_of(advanced_cron_job, acj),
        json!([
            add("/spec/concurrencyPolicy", json!("Allow")),
            add("/spec/failedJobsHistoryLimit", json!(1)),
            add("/spec/paused", json!(false)),
            add("/spec/successfulJobsHistoryLimit", json!(3)),
        ])
    );
    let with_ilpj = object(
        "apps.kruise.io/v1beta1",
        "AdvancedCronJob",
        json!({"schedule": "@daily", "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1, "paused": true,
               "template": {"imageListPullJobTemplate": {"spec": {"images": ["nginx"], "completionPolicy": {}}}}}),
    );
    assert_eq!(
        patch_of(advanced_cron_job, with_ilpj),
        json!([
            add("/spec/concurrencyPolicy", json!("Replace")),
            add("/spec/template/imageListPullJobTemplate/spec/completionPolicy/type", json!("Always")),
            add("/spec/template/imageListPullJobTemplate/spec/imagePullPolicy", json!("IfNotPresent")),
            add(
                "/spec/template/imageListPullJobTemplate/spec/pullPolicy",
                json!({"timeoutSeconds": 600, "backoffLimit": 3})
            ),
        ])
    );
}

#[test]
fn image_pull_job_defaults() {
    let job =
        object("apps.kruise.io/v1alpha1", "ImagePullJob", json!({"image": "nginx", "completionPolicy": {}}));
    let defaults = json!([
        add("/spec/completionPolicy/type", json!("Always")),
        add("/spec/imagePullPolicy", json!("IfNotPresent")),
        add("/spec/pullPolicy", json!({"timeoutSeconds": 600, "backoffLimit": 3})),
    ]);
    assert_eq!(patch_of(image_pull_job, job.clone()), defaults);
    let mut on_create = vec![add("/metadata/finalizers", json!(["apps.kruise.io/deletion-protection"]))];
    on_create.extend(defaults.as_array().unwrap().iter().cloned());
    assert_eq!(patch_of(image_pull_job_v1alpha1, job), Value::Array(on_create));
}

#[test]
fn image_list_pull_job_defaults() {
    let job = object(
        "apps.kruise.io/v1beta1",
        "ImageListPullJob",
        json!({"images": ["nginx"], "completionPolicy": {"type": "Never"}, "pullPolicy": {"backoffLimit": 1}}),
    );
    assert_eq!(
        patch_of(image_list_pull_job, job),
        json!([add("/spec/pullPolicy/timeoutSeconds", json!(600))])
    );
}

#[test]
fn node_image_defaults() {
    let ni = object(
        "apps.kruise.io/v1beta1",
        "NodeImage",
        json!({"images": {"nginx": {"tags": [
            {"tag": "1.28", "createdAt": "2025-01-01T00:00:00Z", "pullPolicy": {"ttlSecondsAfterFinished": 1}},
            {"tag": "1.27", "createdAt": "2025-01-01T00:00:00Z", "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 1}}]}}}),
    );
    let mut patched = ni.clone();
    let patch: json_patch::Patch = serde_json::from_value(patch_of(node_image, ni)).unwrap();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(
        patched["spec"]["images"]["nginx"]["tags"],
        json!([
            {"tag": "1.27", "createdAt": "2025-01-01T00:00:00Z", "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 1}},
            {"tag": "1.28", "createdAt": "2025-01-01T00:00:00Z",
             "pullPolicy": {"ttlSecondsAfterFinished": 1, "timeoutSeconds": 600, "backoffLimit": 3}}
        ])
    );
    let fresh =
        object("apps.kruise.io/v1beta1", "NodeImage", json!({"images": {"nginx": {"tags": [{"tag": "1"}]}}}));
    let patch = patch_of(node_image, fresh);
    let created =
        patch.as_array().unwrap().iter().find(|op| op["path"] == "/spec/images/nginx/tags/0/createdAt");
    assert!(created.is_some_and(|op| op["value"].is_string()), "{patch:#}");
}

#[test]
fn container_recreate_request_defaults() {
    let crr = object(
        "apps.kruise.io/v1alpha1",
        "ContainerRecreateRequest",
        json!({"podName": "web-0", "containers": [{"name": "app"}]}),
    );
    assert_eq!(
        patch_of(container_recreate_request, crr),
        json!([
            add("/metadata/labels", json!({"crr.apps.kruise.io/active": "true"})),
            add("/spec/strategy", json!({"failurePolicy": "Fail"})),
        ])
    );
}

/// The patch an admission answer carries, as JSON.
fn answer_patch(resp: &AdmissionResponse) -> Value {
    resp.patch.as_ref().map_or(Value::Null, |p| serde_json::from_slice(p).unwrap())
}

/// Each kind through the registry at OpenKruise's path and every served version.
#[test]
fn every_kind_is_defaulted_at_openkruises_paths() {
    let mut registry = Registry::default();
    crate::defaulting::register(&mut registry);
    for (path, kind, versions, spec, first_op) in [
        (
            "/mutate-apps-kruise-io-sidecarset",
            "SidecarSet",
            &["v1alpha1", "v1beta1"][..],
            json!({"selector": {"matchLabels": {"a": "b"}}, "namespace": "shop",
                "updateStrategy": {"type": "NotUpdate", "partition": 0, "maxUnavailable": 1}}),
            add("/spec/revisionHistoryLimit", json!(10)),
        ),
        (
            "/mutate-apps-kruise-io-broadcastjob",
            "BroadcastJob",
            &["v1alpha1", "v1beta1"],
            json!({"template": {}, "completionPolicy": {"type": "Never"}, "parallelism": 1}),
            add("/spec/failurePolicy", json!({"type": "FailFast"})),
        ),
        (
            "/mutate-apps-kruise-io-advancedcronjob",
            "AdvancedCronJob",
            &["v1alpha1", "v1beta1"],
            json!({"schedule": "@daily", "template": {}, "concurrencyPolicy": "Forbid", "paused": false, "successfulJobsHistoryLimit": 1}),
            add("/spec/failedJobsHistoryLimit", json!(1)),
        ),
        (
            "/mutate-apps-kruise-io-imagelistpulljob",
            "ImageListPullJob",
            &["v1alpha1", "v1beta1"],
            json!({"images": ["a"], "completionPolicy": {"type": "Always"}}),
            add("/spec/pullPolicy", json!({"timeoutSeconds": 600, "backoffLimit": 3})),
        ),
        (
            "/mutate-apps-kruise-io-nodeimage",
            "NodeImage",
            &["v1alpha1", "v1beta1"],
            json!({"images": {"a": {"tags": [{"tag": "1", "createdAt": "2025-01-01T00:00:00Z"}]}}}),
            add("/spec/images/a/tags/0/pullPolicy", json!({"timeoutSeconds": 600, "backoffLimit": 3})),
        ),
    ] {
        let handler = registry.admission_handler(path).unwrap_or_else(|| panic!("nothing at {path}"));
        for version in versions {
            let obj = object(&format!("{APPS_GROUP}/{version}"), kind, spec.clone());
            let resp = handler.admit(&review(kind, version, "CREATE", obj.clone(), Value::Null));
            assert!(resp.allowed, "{kind} {version}: {}", resp.result.message);
            assert_eq!(answer_patch(&resp), json!([first_op]), "{kind} {version}");
        }
    }

    // ImagePullJob: the finalizer only on CREATE
    let handler = registry.admission_handler("/mutate-apps-kruise-io-imagepulljob").unwrap();
    let ipj = object(
        "apps.kruise.io/v1alpha1",
        "ImagePullJob",
        json!({"image": "a", "completionPolicy": {"type": "Always"}, "imagePullPolicy": "Always", "pullPolicy": {"timeoutSeconds": 1, "backoffLimit": 1}}),
    );
    let created = handler.admit(&review("ImagePullJob", "v1alpha1", "CREATE", ipj.clone(), Value::Null));
    assert_eq!(answer_patch(&created), json!([add("/metadata/finalizers", json!([PROTECTION_FINALIZER]))]));
    let updated = handler.admit(&review("ImagePullJob", "v1alpha1", "UPDATE", ipj.clone(), ipj));
    assert!(updated.allowed && updated.patch.is_none());
}
