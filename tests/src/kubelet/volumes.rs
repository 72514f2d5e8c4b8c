//! The pod's volumes: emptyDir and hostPath are made real (an emptyDir is a dir under
//! `<root>/pods/<uid>/volumes/kubernetes.io~empty-dir/`, removed with the pod); every
//! other kind is accepted and listed as not mounted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use stevedore_proto::cri::{Mount, MountPropagation};

use super::{Error, Result};

/// The pod's volumes on the host: name → host path, and the names not mounted.
#[derive(Debug, Default, Clone)]
pub struct PodVolumes {
    /// Mountable volumes.
    pub paths: HashMap<String, PathBuf>,
    /// Volumes of other kinds (configMap, secret, projected, PVC…), not mounted.
    pub unmounted: Vec<String>,
}

/// `<root>/pods/<uid>`.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |err| Error::Io { path: path.to_owned(), err }
}

/// Makes the pod's emptyDirs and the hostPaths whose type asks for creation.
pub fn prepare(root: &Path, pod: &Pod) -> Result<PodVolumes> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut out = PodVolumes::default();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if v.empty_dir.is_some() {
            let dir = pod_dir(root, uid).join("volumes/kubernetes.io~empty-dir").join(&v.name);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            out.paths.insert(v.name.clone(), dir);
        } else if let Some(hp) = &v.host_path {
            let path = PathBuf::from(&hp.path);
            match hp.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(io(&path))?,
                "FileOrCreate" if !path.exists() => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(io(parent))?;
                    }
                    std::fs::write(&path, b"").map_err(io(&path))?;
                }
                _ => {}
            }
            out.paths.insert(v.name.clone(), path);
        } else {
            out.unmounted.push(v.name.clone());
        }
    }
    Ok(out)
}

/// The CRI mounts of a container (subPath joined; unknown volumes skipped).
pub fn mounts(c: &Container, vols: &PodVolumes) -> Vec<Mount> {
    c.volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let base = vols.paths.get(&m.name)?;
            let host = match m.sub_path.as_deref() {
                Some(sp) if !sp.is_empty() => {
                    let p = base.join(sp);
                    let _ = std::fs::create_dir_all(&p);
                    p
                }
                _ => base.clone(),
            };
            let propagation = match m.mount_propagation.as_deref() {
                Some("HostToContainer") => MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => MountPropagation::PropagationBidirectional,
                _ => MountPropagation::PropagationPrivate,
            };
            Some(Mount {
                container_path: m.mount_path.clone(),
                host_path: host.display().to_string(),
                readonly: m.read_only.unwrap_or(false),
                propagation: propagation as i32,
                ..Default::default()
            })
        })
        .collect()
}

/// Removes the pod's dir (its emptyDirs).
pub fn remove(root: &Path, uid: &str) -> Result<()> {
    let dir = pod_dir(root, uid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::Io { path: dir, err }),
    }
}
