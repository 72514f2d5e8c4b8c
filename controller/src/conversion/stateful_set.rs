//! Advanced StatefulSet. v1beta1 adds volumeClaimUpdateStrategy, reserveOrdinals,
//! lifecycle, scaleStrategy, persistentVolumeClaimRetentionPolicy and ordinals to the
//! spec, and updatedReadyReplicas, updatedAvailableReplicas and volumeClaims to the
//! status. Down-conversion drops them, as OpenKruise v1.9.0 does; every other field
//! is copied both ways.

use stevedore_proto::crd::stateful_set::{v1alpha1 as a1, v1beta1 as b1};

use super::{Refusal, Versions};

/// The Advanced StatefulSet's versions.
#[derive(Debug)]
pub struct StatefulSet;

impl Versions for StatefulSet {
    type Alpha = a1::StatefulSet;
    type Beta = b1::StatefulSet;

    fn to_beta(alpha: a1::StatefulSet) -> b1::StatefulSet {
        let s = alpha.spec;
        let spec = b1::StatefulSetSpec {
            replicas: s.replicas,
            selector: s.selector,
            template: s.template,
            volume_claim_templates: s.volume_claim_templates,
            service_name: s.service_name,
            pod_management_policy: s.pod_management_policy,
            update_strategy: s.update_strategy,
            revision_history_limit: s.revision_history_limit,
            volume_claim_update_strategy: None,
            reserve_ordinals: None,
            lifecycle: None,
            scale_strategy: None,
            persistent_volume_claim_retention_policy: None,
            ordinals: None,
        };
        let status = alpha.status.map(|t| b1::StatefulSetStatus {
            observed_generation: t.observed_generation,
            replicas: t.replicas,
            ready_replicas: t.ready_replicas,
            available_replicas: t.available_replicas,
            current_replicas: t.current_replicas,
            updated_replicas: t.updated_replicas,
            current_revision: t.current_revision,
            update_revision: t.update_revision,
            collision_count: t.collision_count,
            conditions: t.conditions,
            label_selector: t.label_selector,
            updated_ready_replicas: None,
            updated_available_replicas: None,
            volume_claims: None,
        });
        b1::StatefulSet { metadata: alpha.metadata, spec, status }
    }

    fn to_alpha(beta: b1::StatefulSet) -> Result<a1::StatefulSet, Refusal> {
        let s = beta.spec;
        let spec = a1::StatefulSetSpec {
            replicas: s.replicas,
            selector: s.selector,
            template: s.template,
            volume_claim_templates: s.volume_claim_templates,
            service_name: s.service_name,
            pod_management_policy: s.pod_management_policy,
            update_strategy: s.update_strategy,
            revision_history_limit: s.revision_history_limit,
        };
        let status = beta.status.map(|t| a1::StatefulSetStatus {
            observed_generation: t.observed_generation,
            replicas: t.replicas,
            ready_replicas: t.ready_replicas,
            available_replicas: t.available_replicas,
            current_replicas: t.current_replicas,
            updated_replicas: t.updated_replicas,
            current_revision: t.current_revision,
            update_revision: t.update_revision,
            collision_count: t.collision_count,
            conditions: t.conditions,
            label_selector: t.label_selector,
        });
        Ok(a1::StatefulSet { metadata: beta.metadata, spec, status })
    }
}
