//! The workloads' validating webhooks, as OpenKruise v1.9.0 checks them: CloneSet,
//! Advanced StatefulSet, UnitedDeployment and Advanced DaemonSet.
//!
//! They judge objects as the API server sends them, after the defaulting webhooks
//! have run: a field the defaults always fill (a StatefulSet's
//! `podManagementPolicy`, a CloneSet's `updateStrategy.type`) is required here.
//! Rules that need the API server are left out: that the pods in a CloneSet's
//! `podsToDelete` exist and are its own, and the StorageClass check of a
//! StatefulSet whose claims resize on rolling update (the `StatefulSetAutoResizePVC`
//! gate, off by default). So is deletion protection (the
//! `ResourcesDeletionProtection` gate, off by default).

mod clone_set;
mod daemon_set;
mod stateful_set;
mod united_deployment;

use std::sync::Arc;

use stevedore_proto::crd::{
    APPS_GROUP,
    daemon_set::{v1alpha1 as ds_a1, v1beta1 as ds_b1},
    stateful_set::v1beta1 as sts_b1,
};

use kube::core::admission::Operation as AdmissionOperation;

use super::{FieldError, Validator};
use crate::webhook::{ByVersion, Operation, Registry};

/// Registers the workloads' validators at OpenKruise's paths. StatefulSet and
/// DaemonSet have one endpoint for both versions, as in OpenKruise; a v1alpha1
/// StatefulSet is judged as the v1beta1 one it converts to (its fields are a
/// subset), as OpenKruise does.
pub fn register(registry: &mut Registry) {
    // OpenKruise's DaemonSet handler reports field errors on create as its own
    // failure (500) and answers 422 on update
    let ds =
        |op: &AdmissionOperation, _: &[FieldError]| if *op == AdmissionOperation::Create { 500 } else { 422 };
    registry.admission(
        Operation::Validate,
        APPS_GROUP,
        "v1alpha1",
        "CloneSet",
        Arc::new(Validator::new(clone_set::clone_set)),
    );
    registry.admission(
        Operation::Validate,
        APPS_GROUP,
        "v1alpha1",
        "UnitedDeployment",
        Arc::new(Validator::new(united_deployment::united_deployment)),
    );
    let sts = Arc::new(Validator::<sts_b1::StatefulSet>::new(stateful_set::stateful_set));
    registry.admission(
        Operation::Validate,
        APPS_GROUP,
        "",
        "StatefulSet",
        Arc::new(ByVersion::new().version("v1alpha1", sts.clone()).version("v1beta1", sts)),
    );
    registry.admission(
        Operation::Validate,
        APPS_GROUP,
        "",
        "DaemonSet",
        Arc::new(
            ByVersion::new()
                .version(
                    "v1alpha1",
                    Arc::new(Validator::<ds_a1::DaemonSet>::new(daemon_set::v1alpha1).code(ds)),
                )
                .version(
                    "v1beta1",
                    Arc::new(Validator::<ds_b1::DaemonSet>::new(daemon_set::v1beta1).code(ds)),
                ),
        ),
    );
}

/// What the kinds' tests share.
#[cfg(test)]
mod fixtures {
    use kube::core::{DynamicObject, admission::AdmissionRequest};
    use serde_json::{Value, json};

    use super::super::FieldError;

    /// The errors as `field: reason` strings.
    pub fn fields(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    /// An AdmissionReview request for `apps.kruise.io/<version>` `kind`.
    pub fn review(
        version: &str,
        kind: &str,
        operation: &str,
        object: Value,
        old: Value,
    ) -> AdmissionRequest<DynamicObject> {
        let review: kube::core::admission::AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "1", "operation": operation, "name": "web", "namespace": "shop",
                "kind": {"group": "apps.kruise.io", "version": version, "kind": kind},
                "resource": {"group": "apps.kruise.io", "version": version,
                             "resource": format!("{}s", kind.to_lowercase())},
                "userInfo": {}, "object": object, "oldObject": old, "dryRun": false
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    /// A defaulted pod template labelled `app: web` with one nginx container.
    pub fn template_json() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
        })
    }
}
