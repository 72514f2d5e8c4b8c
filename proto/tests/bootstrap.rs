//! The control API's generated code is committed (users need no protoc); this test
//! regenerates it from `proto/stevedore/control/v1/control.proto` and fails when the
//! committed file differs. To update it after changing the .proto:
//! `STEVEDORE_BOOTSTRAP=overwrite cargo test -p stevedore-proto --test bootstrap`.

use std::path::PathBuf;

#[test]
fn generated_control_api_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .out_dir(out.path())
        .compile_protos(&[root.join("proto/stevedore/control/v1/control.proto")], &[root.join("proto")])
        .expect("protoc and tonic-prost-build (apt-get install protobuf-compiler)");
    let generated = std::fs::read_to_string(out.path().join("stevedore.control.v1.rs")).unwrap();
    let committed_path = root.join("src/gen/stevedore.control.v1.rs");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if std::env::var("STEVEDORE_BOOTSTRAP").as_deref() == Ok("overwrite") {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "{} is stale: run `STEVEDORE_BOOTSTRAP=overwrite cargo test -p stevedore-proto --test bootstrap`",
        committed_path.display()
    );
}
