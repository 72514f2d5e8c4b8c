//! `deploy/webhooks.yaml` is what the controller's registry generates, and every
//! webhook in it points at an endpoint the controller serves.

use std::path::PathBuf;

#[test]
fn committed_webhook_configurations_match_the_registry() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/webhooks.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = stevedore_controller::upkeep::manifest(
        &stevedore_controller::registry(),
        &stevedore_proto::crd::all(),
    )
    .unwrap();
    assert!(
        committed == generated,
        "deploy/webhooks.yaml differs from what the registry generates: run `cargo run -p stevedore-controller --bin crdgen` and commit the result"
    );
}

#[test]
fn every_webhook_path_has_a_handler() {
    let registry = stevedore_controller::registry();
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/webhooks.yaml"))
            .unwrap();
    let paths: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("path: ")).collect();
    assert!(!paths.is_empty());
    for path in paths {
        assert!(registry.admission_handler(path).is_some(), "{path} has no handler");
    }
}
