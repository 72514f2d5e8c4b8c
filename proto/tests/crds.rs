//! The CRDs in `deploy/crds/` are what the types generate, and every example in
//! `deploy/examples/` survives a trip through the types without losing a field.

use std::{collections::BTreeSet, path::PathBuf};

use kube::core::DynamicObject;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use stevedore_proto::crd::{
    self, container_recreate_request::ContainerRecreateRequest, daemon_set, node_state::NodeState,
    sidecar_set, stateful_set,
};

fn deploy(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(sub)
}

#[test]
fn committed_crds_match_the_types() {
    let dir = deploy("crds");
    let mut expected = BTreeSet::new();
    for crd in crd::all() {
        let name = crd::file_name(&crd);
        let generated = crd::to_yaml(&crd).unwrap();
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "deploy/crds/{name} differs from what the types generate: run `cargo run -p stevedore-controller --bin crdgen` and commit the result"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(present, expected, "deploy/crds/ holds files no type generates");
}

/// Parses `file` as `K`, writes it back, and compares the two documents.
fn round_trip<K: DeserializeOwned + serde::Serialize>(file: &str) {
    let text = std::fs::read_to_string(deploy("examples").join(file)).unwrap();
    let original: Value = serde_yaml::from_str(&text).unwrap();
    let typed: K = serde_yaml::from_value(original.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_yaml::to_value(&typed).unwrap();
    assert_eq!(back, original, "{file} lost or changed fields on a trip through the types");
}

#[test]
fn examples_round_trip_without_losing_a_field() {
    round_trip::<ContainerRecreateRequest>("containerrecreaterequest.yaml");
    round_trip::<NodeState>("nodestate.yaml");
    round_trip::<stateful_set::v1beta1::StatefulSet>("statefulset.yaml");
    round_trip::<daemon_set::v1alpha1::DaemonSet>("daemonset.yaml");
    round_trip::<sidecar_set::v1alpha1::SidecarSet>("sidecarset.yaml");
}

#[test]
fn every_kind_has_an_example() {
    let kinds: BTreeSet<String> = crd::all().iter().map(|c| c.spec.names.kind.to_lowercase()).collect();
    for kind in &kinds {
        let path = deploy("examples").join(format!("{kind}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {}", path.display()));
        let obj: DynamicObject = serde_yaml::from_str(&text).unwrap();
        assert_eq!(obj.types.unwrap().kind.to_lowercase(), *kind);
    }
}
