//! Every rule accepting and rejecting, and each kind through the registry.

use kube::core::{DynamicObject, admission::AdmissionRequest};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::validation::Rules;

mod jobs;
mod nodes;
mod sidecar_set;
mod workload_spread;

use jobs::{acj, ipj};
use sidecar_set::sidecar_set_object;
use workload_spread::ws;

/// The broken rules of `new` (and `old`), as `field: reason`.
pub(super) fn check<K: DeserializeOwned>(rules: Rules<K>, new: &Value, old: Option<&Value>) -> Vec<String> {
    let new: K = serde_json::from_value(new.clone()).unwrap();
    let old: Option<K> = old.map(|o| serde_json::from_value(o.clone()).unwrap());
    rules(&new, old.as_ref()).iter().map(ToString::to_string).collect()
}

/// An edit of an object's JSON.
pub(super) type Change = fn(&mut Value);

/// Asserts `good` passes, each variant passes, and each breakage yields exactly its error.
pub(super) fn table<K: DeserializeOwned>(
    rules: Rules<K>,
    good: &Value,
    accepted: Vec<Change>,
    rejected: Vec<(Change, &str)>,
) {
    assert_eq!(check(rules, good, None), Vec::<String>::new(), "the good object");
    for (i, change) in accepted.into_iter().enumerate() {
        let mut v = good.clone();
        change(&mut v);
        assert_eq!(check(rules, &v, None), Vec::<String>::new(), "accepted variant {i}: {v}");
    }
    for (change, want) in rejected {
        let mut v = good.clone();
        change(&mut v);
        assert_eq!(check(rules, &v, None), [want], "{v}");
    }
}

pub(super) fn push(list: &mut Value, item: Value) {
    list.as_array_mut().unwrap().push(item);
}

/// A pod template as the mutating webhook leaves it (the fields Kubernetes' pod
/// validation requires are defaulted).
pub(super) fn pod_template() -> Value {
    json!({"metadata": {"labels": {"app": "x"}},
           "spec": {"restartPolicy": "Never", "dnsPolicy": "ClusterFirst",
                    "containers": [{"name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                                    "terminationMessagePolicy": "File"}]}})
}

pub(super) fn bcj() -> Value {
    json!({"metadata": {"name": "warm-up"}, "spec": {
        "parallelism": "50%", "template": pod_template(),
        "completionPolicy": {"type": "Always", "ttlSecondsAfterFinished": 60, "activeDeadlineSeconds": 600}}})
}

/// An AdmissionRequest for `kind` at `version`.
pub(crate) fn review(
    kind: &str,
    version: &str,
    operation: &str,
    object: Value,
    old: Value,
) -> AdmissionRequest<DynamicObject> {
    let plural = format!("{}s", kind.to_lowercase());
    let review: kube::core::admission::AdmissionReview<DynamicObject> = serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "1", "operation": operation, "name": "x", "namespace": "shop",
            "kind": {"group": APPS_GROUP, "version": version, "kind": kind},
            "resource": {"group": APPS_GROUP, "version": version, "resource": plural},
            "userInfo": {}, "object": object, "oldObject": old, "dryRun": false
        }
    }))
    .unwrap();
    review.try_into().unwrap()
}

/// Each kind through the registry at OpenKruise's path, at every version it serves:
/// a good object is allowed, a broken one denied with its rule.
#[test]
fn every_kind_is_served_at_openkruises_paths() {
    let mut registry = Registry::default();
    crate::validation::register(&mut registry);
    let mut bad_bcj = bcj();
    bad_bcj["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let mut bad_acj = acj();
    bad_acj["spec"]["schedule"] = json!("every day");
    let mut bad_ipj = ipj();
    bad_ipj["spec"]["parallelism"] = json!("10%");
    let ilpj = json!({"metadata": {"name": "p"}, "spec": {"images": ["nginx"], "completionPolicy": {"type": "Always"}}});
    let mut bad_ilpj = ilpj.clone();
    bad_ilpj["spec"]["images"] = json!([]);
    let ni = json!({"metadata": {"name": "node-a"}, "spec": {"images": {"nginx": {"tags": [
        {"tag": "1", "createdAt": "2025-01-01T00:00:00Z", "pullPolicy": {"ttlSecondsAfterFinished": 1}}]}}}});
    let mut bad_ni = ni.clone();
    bad_ni["spec"]["images"]["nginx"]["tags"][0]["version"] = json!(-1);
    let mut bad_ws = ws();
    bad_ws["spec"]["subsets"] = json!([]);
    let mut bad_ss = sidecar_set_object();
    bad_ss["spec"]["selector"] = json!({});
    for (path, kind, versions, good, bad, reason) in [
        (
            "/validate-apps-kruise-io-sidecarset",
            "SidecarSet",
            &["v1alpha1", "v1beta1"][..],
            sidecar_set_object(),
            bad_ss,
            "spec.selector: Invalid value: {}: an empty selector is not valid for a SidecarSet",
        ),
        (
            "/validate-apps-kruise-io-broadcastjob",
            "BroadcastJob",
            &["v1alpha1", "v1beta1"],
            bcj(),
            bad_bcj,
            "spec.template.spec.restartPolicy: Invalid value: \"Always\": must be Never or OnFailure",
        ),
        (
            "/validate-apps-kruise-io-advancedcronjob",
            "AdvancedCronJob",
            &["v1alpha1", "v1beta1"],
            acj(),
            bad_acj,
            "spec.schedule: Invalid value: \"every day\": expected exactly 5 fields, found 2: \"every day\"",
        ),
        (
            "/validate-apps-kruise-io-imagepulljob",
            "ImagePullJob",
            &["v1alpha1", "v1beta1"],
            ipj(),
            bad_ipj,
            "spec.parallelism: Invalid value: \"10%\": must not be a percentage",
        ),
        (
            "/validate-apps-kruise-io-imagelistpulljob",
            "ImageListPullJob",
            &["v1alpha1", "v1beta1"],
            ilpj,
            bad_ilpj,
            "spec.images: Required value: at least one image",
        ),
        (
            "/validate-apps-kruise-io-nodeimage",
            "NodeImage",
            &["v1alpha1", "v1beta1"],
            ni,
            bad_ni,
            "spec.images[nginx].tags[0].version: Invalid value: -1: must not be negative",
        ),
        (
            "/validate-apps-kruise-io-v1alpha1-workloadspread",
            "WorkloadSpread",
            &["v1alpha1"],
            ws(),
            bad_ws,
            "spec.subsets: Required value: at least one subset",
        ),
    ] {
        let handler = registry.admission_handler(path).unwrap_or_else(|| panic!("nothing at {path}"));
        for version in versions {
            let with_version = |mut v: Value| {
                v["apiVersion"] = json!(format!("{APPS_GROUP}/{version}"));
                v["kind"] = json!(kind);
                v
            };
            let allowed =
                handler.admit(&review(kind, version, "CREATE", with_version(good.clone()), Value::Null));
            assert!(allowed.allowed, "{kind} {version}: {}", allowed.result.message);
            let denied =
                handler.admit(&review(kind, version, "CREATE", with_version(bad.clone()), Value::Null));
            assert!(!denied.allowed, "{kind} {version}");
            assert_eq!(denied.result.message, reason, "{kind} {version}");
        }
    }
}
