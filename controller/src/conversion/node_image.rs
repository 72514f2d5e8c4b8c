//! NodeImage. The versions differ only in an image's pull secrets: v1beta1 adds
//! `mode`, which down-conversion drops, as OpenKruise v1.9.0 does (v1alpha1 readers
//! see the secret's namespace and name). Every other field is copied.

use std::collections::BTreeMap;

use stevedore_proto::crd::node_image::{v1alpha1 as a1, v1beta1 as b1};

use super::{Refusal, Versions};

/// The NodeImage's versions.
#[derive(Debug)]
pub struct NodeImage;

impl Versions for NodeImage {
    type Alpha = a1::NodeImage;
    type Beta = b1::NodeImage;

    fn to_beta(alpha: a1::NodeImage) -> b1::NodeImage {
        let images = alpha.spec.images.map(|images| {
            images
                .into_iter()
                .map(|(name, image)| {
                    let pull_secrets = image.pull_secrets.map(|secrets| {
                        secrets
                            .into_iter()
                            .map(|r| b1::ReferenceObject { namespace: r.namespace, name: r.name, mode: None })
                            .collect()
                    });
                    let image = b1::ImageSpec {
                        pull_secrets,
                        tags: image.tags,
                        sandbox_config: image.sandbox_config,
                    };
                    (name, image)
                })
                .collect::<BTreeMap<_, _>>()
        });
        b1::NodeImage { metadata: alpha.metadata, spec: b1::NodeImageSpec { images }, status: alpha.status }
    }

    fn to_alpha(beta: b1::NodeImage) -> Result<a1::NodeImage, Refusal> {
        let images = beta.spec.images.map(|images| {
            images
                .into_iter()
                .map(|(name, image)| {
                    let pull_secrets = image.pull_secrets.map(|secrets| {
                        secrets
                            .into_iter()
                            .map(|r| a1::ReferenceObject { namespace: r.namespace, name: r.name })
                            .collect()
                    });
                    let image = a1::ImageSpec {
                        pull_secrets,
                        tags: image.tags,
                        sandbox_config: image.sandbox_config,
                    };
                    (name, image)
                })
                .collect::<BTreeMap<_, _>>()
        });
        Ok(a1::NodeImage { metadata: beta.metadata, spec: a1::NodeImageSpec { images }, status: beta.status })
    }
}
