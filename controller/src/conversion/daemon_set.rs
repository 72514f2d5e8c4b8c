//! Advanced DaemonSet, as OpenKruise v1.9.0 converts it:
//! - the v1alpha1 annotation `daemonset.kruise.io/progressive-create-pod: "true"`
//!   becomes `spec.scaleStrategy.partitionedScaling: true` going up, and
//!   `partitionedScaling: true` sets it going down (the annotation itself is kept);
//! - the deprecated rolling update type `Surging` becomes `Standard` going up;
//! - `status.daemonSetHash` (v1alpha1) is `status.updateRevision` (v1beta1).

use std::collections::BTreeMap;

use stevedore_proto::crd::daemon_set::{
    DaemonSetScaleStrategy, DaemonSetUpdateStrategy, RollingUpdateDaemonSet, RollingUpdateType,
    v1alpha1 as a1, v1beta1 as b1,
};

use super::{StepError, Versions, copied};

/// The v1alpha1 annotation that v1beta1's `scaleStrategy.partitionedScaling` replaces.
pub use stevedore_proto::keys::PROGRESSIVE_CREATE_POD as PROGRESSIVE_CREATE_POD_ANNOTATION;

/// The Advanced DaemonSet's versions.
#[derive(Debug)]
pub struct DaemonSet;

impl Versions for DaemonSet {
    type Alpha = a1::DaemonSet;
    type Beta = b1::DaemonSet;

    fn to_beta(alpha: a1::DaemonSet) -> Result<b1::DaemonSet, StepError> {
        let progressive = alpha
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROGRESSIVE_CREATE_POD_ANNOTATION))
            .is_some_and(|v| v == "true");
        let mut spec: b1::DaemonSetSpec = copied(alpha.spec)?;
        spec.update_strategy = spec.update_strategy.map(without_surging);
        spec.scale_strategy =
            progressive.then_some(DaemonSetScaleStrategy { partitioned_scaling: Some(true) });
        let status = alpha.status.map(|t| {
            let update_revision = t.daemon_set_hash.clone();
            copied(t).map(|t| b1::DaemonSetStatus { update_revision, ..t })
        });
        Ok(b1::DaemonSet { metadata: alpha.metadata, spec, status: status.transpose()? })
    }

    fn to_alpha(beta: b1::DaemonSet) -> Result<a1::DaemonSet, StepError> {
        let mut metadata = beta.metadata;
        if beta.spec.scale_strategy.as_ref().is_some_and(|p| p.partitioned_scaling == Some(true)) {
            metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(PROGRESSIVE_CREATE_POD_ANNOTATION.to_owned(), "true".to_owned());
        }
        let status = beta.status.map(|t| {
            let daemon_set_hash = t.update_revision.clone();
            copied(t).map(|t| a1::DaemonSetStatus { daemon_set_hash, ..t })
        });
        Ok(a1::DaemonSet { metadata, spec: copied(beta.spec)?, status: status.transpose()? })
    }
}

/// The update strategy with the deprecated `Surging` rolling update read as `Standard`.
fn without_surging(strategy: DaemonSetUpdateStrategy) -> DaemonSetUpdateStrategy {
    DaemonSetUpdateStrategy {
        type_: strategy.type_,
        rolling_update: strategy.rolling_update.map(|r| RollingUpdateDaemonSet {
            type_: r.type_.map(|t| match t {
                RollingUpdateType::Surging => RollingUpdateType::Standard,
                other => other,
            }),
            ..r
        }),
    }
}
