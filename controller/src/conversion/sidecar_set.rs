//! SidecarSet, as OpenKruise v1.9.0 converts it:
//! - v1alpha1's `spec.namespace: X` becomes the v1beta1 `spec.namespaceSelector`
//!   `matchLabels: {kubernetes.io/metadata.name: X}`, replacing any namespaceSelector
//!   it also had; going down, the selector is copied and `namespace` stays unset;
//! - the v1alpha1 label `apps.kruise.io/sidecarset-custom-version` becomes
//!   `spec.customVersion` (and leaves the labels) going up, and a non-empty
//!   `spec.customVersion` sets the label going down.
//!
//! Every other field is the same type in both versions and is copied.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use stevedore_proto::crd::sidecar_set::{v1alpha1 as a1, v1beta1 as b1};

use super::{StepError, Versions, copied};

/// The v1alpha1 label that v1beta1's `spec.customVersion` replaces.
pub use stevedore_proto::keys::SIDECARSET_CUSTOM_VERSION as CUSTOM_VERSION_LABEL;

/// The label every namespace carries with its own name (Kubernetes 1.21+).
pub use stevedore_proto::keys::NAMESPACE_NAME as METADATA_NAME_LABEL;

/// The SidecarSet's versions.
#[derive(Debug)]
pub struct SidecarSet;

impl Versions for SidecarSet {
    type Alpha = a1::SidecarSet;
    type Beta = b1::SidecarSet;

    fn to_beta(alpha: a1::SidecarSet) -> Result<b1::SidecarSet, StepError> {
        let mut metadata = alpha.metadata;
        let custom_version = metadata.labels.as_mut().and_then(|l| l.remove(CUSTOM_VERSION_LABEL));
        // Go leaves an empty map, which it never writes.
        if metadata.labels.as_ref().is_some_and(BTreeMap::is_empty) && custom_version.is_some() {
            metadata.labels = None;
        }
        let s = alpha.spec;
        let namespace_selector = match s.namespace.clone().filter(|n| !n.is_empty()) {
            Some(namespace) => Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(METADATA_NAME_LABEL.to_owned(), namespace)])),
                match_expressions: None,
            }),
            None => s.namespace_selector.clone(),
        };
        let spec = b1::SidecarSetSpec {
            namespace_selector,
            custom_version: custom_version.filter(|v| !v.is_empty()),
            ..copied(s)?
        };
        Ok(b1::SidecarSet { metadata, spec, status: alpha.status })
    }

    fn to_alpha(beta: b1::SidecarSet) -> Result<a1::SidecarSet, StepError> {
        let mut metadata = beta.metadata;
        let s = beta.spec;
        if let Some(version) = s.custom_version.clone().filter(|v| !v.is_empty()) {
            metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(CUSTOM_VERSION_LABEL.to_owned(), version);
        }
        let spec = a1::SidecarSetSpec { namespace: None, ..copied(s)? };
        Ok(a1::SidecarSet { metadata, spec, status: beta.status })
    }
}
