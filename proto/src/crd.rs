//! The custom resources: OpenKruise's kinds (`apps.kruise.io`, `policy.kruise.io`)
//! with OpenKruise v1.9.0's names, versions, fields and printer columns, and
//! Stevedore's own node-local `NodeState` (`stevedore.dev`). The CRDs under
//! `deploy/crds/` are generated from these types ([`all`], [`to_yaml`]).

pub mod common;
pub mod container_recreate_request;
pub mod daemon_set;
pub mod node_state;
pub mod sidecar_set;
pub mod stateful_set;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResourceExt, core::crd::merge_crds};

/// OpenKruise's workload group.
pub const APPS_GROUP: &str = "apps.kruise.io";
/// OpenKruise's policy group.
pub const POLICY_GROUP: &str = "policy.kruise.io";
/// Stevedore's own group.
pub const STEVEDORE_GROUP: &str = "stevedore.dev";

/// Why a CRD could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// YAML serialisation failed.
    #[error("cannot render the CRD {name} as YAML: {source}")]
    Yaml {
        /// The CRD's name.
        name: String,
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
}

/// Every CRD Stevedore installs, one per kind with all its served versions.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        container_recreate_request::ContainerRecreateRequest::crd(),
        node_state::NodeState::crd(),
        merge_crds(
            vec![stateful_set::v1alpha1::StatefulSet::crd(), stateful_set::v1beta1::StatefulSet::crd()],
            "v1beta1",
        )
        .expect("the StatefulSet versions merge"),
        merge_crds(
            vec![daemon_set::v1alpha1::DaemonSet::crd(), daemon_set::v1beta1::DaemonSet::crd()],
            "v1beta1",
        )
        .expect("the DaemonSet versions merge"),
        merge_crds(
            vec![sidecar_set::v1alpha1::SidecarSet::crd(), sidecar_set::v1beta1::SidecarSet::crd()],
            "v1beta1",
        )
        .expect("the SidecarSet versions merge"),
    ]
}

/// The file a CRD is written to: `<group>_<plural>.yaml`, as controller-gen names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// A CRD as YAML, with a header saying it is generated.
///
/// # Errors
/// When serialisation fails.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, Error> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let body = serde_yaml::to_string(crd).map_err(|source| Error::Yaml { name, source })?;
    Ok(format!(
        "# Generated from the Rust types in proto/src/crd/ by `cargo run -p stevedore-controller --bin crdgen`.\n# Do not edit: change the types and regenerate.\n---\n{body}"
    ))
}
