//! The CRDs in `deploy/crds/` are what the types generate, and every example in
//! `deploy/examples/` survives a trip through the types without losing a field.

use std::{collections::BTreeSet, path::PathBuf};

use kube::core::DynamicObject;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use stevedore_proto::crd::{
    self, advanced_cron_job::v1alpha1::AdvancedCronJob, broadcast_job::v1alpha1::BroadcastJob,
    clone_set::CloneSet, container_recreate_request::ContainerRecreateRequest, daemon_set,
    image_list_pull_job, image_pull_job, node_image, node_state::NodeState,
    pod_unavailable_budget::PodUnavailableBudget, sidecar_set, stateful_set,
    united_deployment::UnitedDeployment, workload_spread::WorkloadSpread,
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
    round_trip::<CloneSet>("cloneset.yaml");
    round_trip::<ContainerRecreateRequest>("containerrecreaterequest.yaml");
    round_trip::<NodeState>("nodestate.yaml");
    round_trip::<UnitedDeployment>("uniteddeployment.yaml");
    round_trip::<WorkloadSpread>("workloadspread.yaml");
    round_trip::<image_pull_job::v1alpha1::ImagePullJob>("imagepulljob.yaml");
    round_trip::<image_list_pull_job::v1alpha1::ImageListPullJob>("imagelistpulljob.yaml");
    round_trip::<node_image::v1alpha1::NodeImage>("nodeimage.yaml");
    round_trip::<AdvancedCronJob>("advancedcronjob.yaml");
    round_trip::<BroadcastJob>("broadcastjob.yaml");
    round_trip::<PodUnavailableBudget>("podunavailablebudget.yaml");
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
