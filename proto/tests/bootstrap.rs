//! The generated gRPC code is committed (users need no protoc); this test regenerates
//! it from `proto/` (the control API, and the subset of containerd's content service
//! the proxy reads) and fails when a committed file differs. To update it after
//! changing a .proto:
//! `STEVEDORE_BOOTSTRAP=overwrite cargo test -p stevedore-proto --test bootstrap`.

use std::path::PathBuf;

#[test]
fn generated_code_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    // The control API: client (the agent) and server (the proxy). containerd's
    // content service: the proxy only reads it, so the client alone.
    for (proto, server) in [
        ("stevedore/control/v1/control.proto", true),
        ("containerd/services/content/v1/content.proto", false),
    ] {
        tonic_prost_build::configure()
            .build_server(server)
            .build_client(true)
            .out_dir(out.path())
            .compile_protos(&[root.join("proto").join(proto)], &[root.join("proto")])
            .expect("protoc and tonic-prost-build (apt-get install protobuf-compiler)");
    }
    let overwrite = std::env::var("STEVEDORE_BOOTSTRAP").as_deref() == Ok("overwrite");
    for file in ["stevedore.control.v1.rs", "containerd.services.content.v1.rs"] {
        let generated = std::fs::read_to_string(out.path().join(file)).unwrap();
        let committed_path = root.join("src/gen").join(file);
        let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
        if overwrite {
            std::fs::write(&committed_path, &generated).unwrap();
            continue;
        }
        assert!(
            committed == generated,
            "{} is stale: run `STEVEDORE_BOOTSTRAP=overwrite cargo test -p stevedore-proto --test bootstrap`",
            committed_path.display()
        );
    }
}
