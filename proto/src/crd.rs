//! The custom resources: OpenKruise's kinds (`apps.kruise.io`, `policy.kruise.io`)
//! with OpenKruise v1.9.0's names, versions, fields and printer columns, and
//! Stevedore's own node-local `NodeState` (`stevedore.dev`). The CRDs under
//! `deploy/crds/` are generated from these types ([`all`], [`to_yaml`]).

pub mod advanced_cron_job;
pub mod broadcast_job;
pub mod clone_set;
pub mod common;
pub mod container_recreate_request;
pub mod core_schema;
pub mod daemon_set;
pub mod image_list_pull_job;
pub mod image_pull_job;
pub mod node_image;
pub mod node_state;
pub mod pod_unavailable_budget;
pub mod sidecar_set;
pub mod stateful_set;
pub mod strings;
pub mod united_deployment;
pub mod workload_spread;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
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

/// Every CRD Stevedore installs, one per kind with all its served versions, with
/// the schemas of the Kubernetes types in them ([`core_schema`]); a kind's own
/// `crd()` has placeholders for those.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = generated();
    core_schema::expand(&mut crds);
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
                drop_zero_defaults(schema);
            }
        }
    }
    crds
}

/// Every CRD's identity (name, group, kind, plural, scope, the versions served and
/// stored) without schemas: what the controller needs to point webhooks and
/// conversion at the kinds, without holding [`all`]'s expanded schemas (tens of
/// megabytes while they are built).
pub fn skeletons() -> Vec<CustomResourceDefinition> {
    let mut crds = generated();
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            version.schema = None;
        }
    }
    crds
}

/// Removes the `default: {}`, `0` and `false` schemars derives from `#[serde(default)]`:
/// OpenKruise's CRDs have none, and an API server would otherwise write them into
/// every object (`completionPolicy: {}`, `status.active: 0`) where OpenKruise leaves
/// the field out. Also drops the `null` schemars adds to optional enums.
fn drop_zero_defaults(schema: &mut JSONSchemaProps) {
    let zero = |v: &serde_json::Value| match v {
        serde_json::Value::Object(m) => m.is_empty(),
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if schema.default.as_ref().is_some_and(|d| zero(&d.0)) {
        schema.default = None;
    }
    // schemars lists `null` among an optional field's enum values; the CRD says
    // `nullable` instead, as OpenKruise's do.
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    let nested = schema.properties.iter_mut().flat_map(|p| p.values_mut());
    let items: Vec<&mut JSONSchemaProps> = match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => vec![s.as_mut()],
        Some(JSONSchemaPropsOrArray::Schemas(v)) => v.iter_mut().collect(),
        None => Vec::new(),
    };
    let additional = match schema.additional_properties.as_mut() {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_mut()),
        _ => None,
    };
    let combined = [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flat_map(|v| v.iter_mut().flatten());
    for child in nested.chain(items).chain(additional).chain(combined).chain(schema.not.as_deref_mut()) {
        drop_zero_defaults(child);
    }
}

fn generated() -> Vec<CustomResourceDefinition> {
    use advanced_cron_job as acj;
    use broadcast_job as bcj;
    use image_list_pull_job as ilpj;
    use image_pull_job as ipj;
    vec![
        merged(vec![acj::v1alpha1::AdvancedCronJob::crd(), acj::v1beta1::AdvancedCronJob::crd()], "v1beta1"),
        merged(vec![bcj::v1alpha1::BroadcastJob::crd(), bcj::v1beta1::BroadcastJob::crd()], "v1beta1"),
        clone_set::CloneSet::crd(),
        container_recreate_request::ContainerRecreateRequest::crd(),
        merged(
            vec![ilpj::v1alpha1::ImageListPullJob::crd(), ilpj::v1beta1::ImageListPullJob::crd()],
            "v1beta1",
        ),
        merged(vec![ipj::v1alpha1::ImagePullJob::crd(), ipj::v1beta1::ImagePullJob::crd()], "v1beta1"),
        merged(
            vec![node_image::v1alpha1::NodeImage::crd(), node_image::v1beta1::NodeImage::crd()],
            "v1beta1",
        ),
        merged(
            vec![daemon_set::v1alpha1::DaemonSet::crd(), daemon_set::v1beta1::DaemonSet::crd()],
            "v1beta1",
        ),
        node_state::NodeState::crd(),
        pod_unavailable_budget::PodUnavailableBudget::crd(),
        merged(
            vec![sidecar_set::v1alpha1::SidecarSet::crd(), sidecar_set::v1beta1::SidecarSet::crd()],
            "v1beta1",
        ),
        merged(
            vec![stateful_set::v1alpha1::StatefulSet::crd(), stateful_set::v1beta1::StatefulSet::crd()],
            "v1beta1",
        ),
        united_deployment::UnitedDeployment::crd(),
        workload_spread::WorkloadSpread::crd(),
    ]
}

/// One CRD from the single-version CRDs of a kind's versions, `storage` stored.
fn merged(versions: Vec<CustomResourceDefinition>, storage: &str) -> CustomResourceDefinition {
    let kind = versions.first().map(|c| c.spec.names.kind.clone()).unwrap_or_default();
    merge_crds(versions, storage).unwrap_or_else(|e| panic!("the versions of {kind} do not merge: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_defaults(crds: &[CustomResourceDefinition]) -> usize {
        let yaml: String = crds.iter().map(|c| serde_yaml::to_string(c).unwrap()).collect();
        yaml.lines().filter(|l| matches!(l.trim(), "default: {}" | "default: 0" | "default: false")).count()
    }

    #[test]
    fn zero_defaults_from_serde_are_dropped_and_others_kept() {
        assert!(zero_defaults(&generated()) > 0, "schemars derives them from #[serde(default)]");
        assert_eq!(zero_defaults(&all()), 0);
        let sidecarset = all().into_iter().find(|c| c.spec.names.kind == "SidecarSet").unwrap();
        assert!(serde_yaml::to_string(&sidecarset).unwrap().contains("default: .*"), "OpenKruise's own stay");
    }

    /// Where some schema below `node` lists an `enum`.
    fn enums(node: &serde_json::Value, at: &str, found: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(map) => {
                if map.contains_key("enum") {
                    found.push(at.to_owned());
                }
                for (k, v) in map {
                    enums(v, &format!("{at}.{k}"), found);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| enums(v, at, found)),
            _ => {}
        }
    }

    #[test]
    fn no_enum_on_status_as_in_openkruise() {
        let mut found = Vec::new();
        for crd in all() {
            for version in &crd.spec.versions {
                let schema = serde_json::to_value(&version.schema).unwrap();
                let status = &schema["openAPIV3Schema"]["properties"]["status"];
                enums(status, &format!("{}/{}: status", crd.spec.names.plural, version.name), &mut found);
            }
        }
        assert!(found.is_empty(), "status enums: {found:#?}");
        // (the walk finds them where they are: spec enums OpenKruise has)
        let sidecarset = all().into_iter().find(|c| c.spec.names.kind == "SidecarSet").unwrap();
        let mut spec = Vec::new();
        enums(&serde_json::to_value(&sidecarset.spec.versions[0].schema).unwrap(), "", &mut spec);
        assert!(!spec.is_empty());
    }

    #[test]
    fn skeletons_are_the_crds_without_schemas() {
        let mut full = all();
        for crd in &mut full {
            for version in &mut crd.spec.versions {
                version.schema = None;
            }
        }
        assert_eq!(skeletons(), full);
    }
}
