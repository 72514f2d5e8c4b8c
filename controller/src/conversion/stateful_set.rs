//! Advanced StatefulSet. v1beta1 adds volumeClaimUpdateStrategy, reserveOrdinals,
//! lifecycle, scaleStrategy, persistentVolumeClaimRetentionPolicy and ordinals to the
//! spec, and updatedReadyReplicas, updatedAvailableReplicas and volumeClaims to the
//! status. Down-conversion drops them, as OpenKruise v1.9.0 does; every other field
//! is copied both ways.

use stevedore_proto::crd::stateful_set::{v1alpha1 as a1, v1beta1 as b1};

use super::{StepError, Versions, copied};

/// The Advanced StatefulSet's versions.
#[derive(Debug)]
pub struct StatefulSet;

impl Versions for StatefulSet {
    type Alpha = a1::StatefulSet;
    type Beta = b1::StatefulSet;

    fn to_beta(alpha: a1::StatefulSet) -> Result<b1::StatefulSet, StepError> {
        let spec = copied(alpha.spec)?;
        let status = alpha.status.map(copied).transpose()?;
        Ok(b1::StatefulSet { metadata: alpha.metadata, spec, status })
    }

    fn to_alpha(beta: b1::StatefulSet) -> Result<a1::StatefulSet, StepError> {
        let spec = copied(beta.spec)?;
        let status = beta.status.map(copied).transpose()?;
        Ok(a1::StatefulSet { metadata: beta.metadata, spec, status })
    }
}
