//! NodeImage. The versions differ only in an image's pull secrets: v1beta1 adds
//! `mode`, which down-conversion drops, as OpenKruise v1.9.0 does (v1alpha1 readers
//! see the secret's namespace and name). Every other field is copied.

use stevedore_proto::crd::node_image::{v1alpha1 as a1, v1beta1 as b1};

use super::{StepError, Versions, copied};

/// The NodeImage's versions.
#[derive(Debug)]
pub struct NodeImage;

impl Versions for NodeImage {
    type Alpha = a1::NodeImage;
    type Beta = b1::NodeImage;

    fn to_beta(alpha: a1::NodeImage) -> Result<b1::NodeImage, StepError> {
        Ok(b1::NodeImage { metadata: alpha.metadata, spec: copied(alpha.spec)?, status: alpha.status })
    }

    fn to_alpha(beta: b1::NodeImage) -> Result<a1::NodeImage, StepError> {
        Ok(a1::NodeImage { metadata: beta.metadata, spec: copied(beta.spec)?, status: beta.status })
    }
}
