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

use super::{Refusal, Versions};

/// The v1alpha1 annotation that v1beta1's `scaleStrategy.partitionedScaling` replaces.
pub const PROGRESSIVE_CREATE_POD_ANNOTATION: &str = "daemonset.kruise.io/progressive-create-pod";

/// The Advanced DaemonSet's versions.
#[derive(Debug)]
pub struct DaemonSet;

impl Versions for DaemonSet {
    type Alpha = a1::DaemonSet;
    type Beta = b1::DaemonSet;

    fn to_beta(alpha: a1::DaemonSet) -> b1::DaemonSet {
        let progressive = alpha
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROGRESSIVE_CREATE_POD_ANNOTATION))
            .is_some_and(|v| v == "true");
        let s = alpha.spec;
        let spec = b1::DaemonSetSpec {
            selector: s.selector,
            template: s.template,
            update_strategy: s.update_strategy.map(without_surging),
            min_ready_seconds: s.min_ready_seconds,
            burst_replicas: s.burst_replicas,
            revision_history_limit: s.revision_history_limit,
            lifecycle: s.lifecycle,
            scale_strategy: progressive.then_some(DaemonSetScaleStrategy { partitioned_scaling: Some(true) }),
        };
        let status = alpha.status.map(|t| b1::DaemonSetStatus {
            current_number_scheduled: t.current_number_scheduled,
            number_misscheduled: t.number_misscheduled,
            desired_number_scheduled: t.desired_number_scheduled,
            number_ready: t.number_ready,
            observed_generation: t.observed_generation,
            updated_number_scheduled: t.updated_number_scheduled,
            number_available: t.number_available,
            number_unavailable: t.number_unavailable,
            collision_count: t.collision_count,
            conditions: t.conditions,
            update_revision: t.daemon_set_hash,
        });
        b1::DaemonSet { metadata: alpha.metadata, spec, status }
    }

    fn to_alpha(beta: b1::DaemonSet) -> Result<a1::DaemonSet, Refusal> {
        let mut metadata = beta.metadata;
        let s = beta.spec;
        if s.scale_strategy.is_some_and(|p| p.partitioned_scaling == Some(true)) {
            metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(PROGRESSIVE_CREATE_POD_ANNOTATION.to_owned(), "true".to_owned());
        }
        let spec = a1::DaemonSetSpec {
            selector: s.selector,
            template: s.template,
            update_strategy: s.update_strategy,
            min_ready_seconds: s.min_ready_seconds,
            burst_replicas: s.burst_replicas,
            revision_history_limit: s.revision_history_limit,
            lifecycle: s.lifecycle,
        };
        let status = beta.status.map(|t| a1::DaemonSetStatus {
            current_number_scheduled: t.current_number_scheduled,
            number_misscheduled: t.number_misscheduled,
            desired_number_scheduled: t.desired_number_scheduled,
            number_ready: t.number_ready,
            observed_generation: t.observed_generation,
            updated_number_scheduled: t.updated_number_scheduled,
            number_available: t.number_available,
            number_unavailable: t.number_unavailable,
            collision_count: t.collision_count,
            conditions: t.conditions,
            daemon_set_hash: t.update_revision,
        });
        Ok(a1::DaemonSet { metadata, spec, status })
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
