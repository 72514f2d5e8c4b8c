//! Prerequisites of a bed: root, the Debian packages' binaries, capabilities and the
//! snapshotter. Checked, never installed (see `tests/bed/install-deps.sh`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::bail;

use super::procs;

/// Commands looked up in PATH, with the Debian package(s) that provide them.
const COMMANDS: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("runc", "runc"),
    ("umoci", "umoci"),
    ("skopeo", "skopeo"),
    ("docker-registry", "docker-registry"),
    ("gcc", "gcc libc6-dev"),
    ("ip", "iproute2"),
    ("umount", "mount"),
];

/// Files needed at fixed paths, with their Debian packages.
const FILES: &[(&str, &str)] = &[
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ("/usr/lib/cni/host-local", "containernetworking-plugins"),
    ("/bin/busybox", "busybox-static"),
];

/// Fails naming the first missing prerequisite and the package to install.
pub(crate) fn check() -> anyhow::Result<()> {
    if effective_uid() != Some(0) {
        bail!("the containerd test bed must run as root (it runs containerd, mounts, and creates bridges)");
    }
    let mut missing = Vec::new();
    for (cmd, pkg) in COMMANDS {
        if procs::which(cmd).is_none() {
            missing.push((cmd.to_string(), *pkg));
        }
    }
    for (file, pkg) in FILES {
        if !Path::new(file).is_file() {
            missing.push((file.to_string(), *pkg));
        }
    }
    if !missing.is_empty() {
        let what: Vec<&str> = missing.iter().map(|(w, _)| w.as_str()).collect();
        let mut pkgs: Vec<&str> = missing.iter().flat_map(|(_, p)| p.split_whitespace()).collect();
        pkgs.sort_unstable();
        pkgs.dedup();
        bail!(
            "the containerd test bed needs {} (missing); install with: apt-get install {} \
             (or run tests/bed/install-deps.sh as root)",
            what.join(", "),
            pkgs.join(" ")
        );
    }
    Ok(())
}

/// The effective uid, from /proc/self/status.
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24 of CapEff).
pub(crate) fn has_cap_sys_resource() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// `overlayfs` if an overlay mount works in `scratch` (a new dir on the beds'
/// filesystem), else `native`. Tested once per process.
pub(crate) fn snapshotter(scratch: &Path) -> &'static str {
    static SNAPSHOTTER: OnceLock<&'static str> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let works = overlay_mounts(scratch);
        let _ = fs::remove_dir_all(scratch);
        if works { "overlayfs" } else { "native" }
    })
}

fn overlay_mounts(t: &Path) -> bool {
    for sub in ["l", "u", "w", "m"] {
        if fs::create_dir_all(t.join(sub)).is_err() {
            return false;
        }
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        t.join("l").display(),
        t.join("u").display(),
        t.join("w").display()
    );
    let mounted =
        procs::run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(t.join("m")))
            .is_ok();
    if mounted {
        let _ = procs::run(Command::new("umount").arg(t.join("m")));
    }
    mounted
}
