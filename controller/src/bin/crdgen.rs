//! `crdgen`: writes every CRD generated from `proto/` into `deploy/crds/` and the
//! webhook configurations generated from the controller's registry into
//! `deploy/webhooks.yaml` (or under the folder given as the first argument),
//! replacing what is there.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let deploy = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy"), PathBuf::from);
    let dir = deploy.join("crds");
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::remove_file(&path)?;
        }
    }
    let crds = stevedore_proto::crd::all();
    for crd in &crds {
        let path = dir.join(stevedore_proto::crd::file_name(crd));
        std::fs::write(&path, stevedore_proto::crd::to_yaml(crd)?)?;
        println!("wrote {}", path.display());
    }
    let path = deploy.join("webhooks.yaml");
    std::fs::write(&path, stevedore_controller::upkeep::manifest(&stevedore_controller::registry(), &crds)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
