//! Teardown of a bed, synchronous and best effort: used by `Drop` (also while a test
//! panics) and for the leftovers of a killed run found when a slot is acquired. It never
//! panics; what it cannot undo is reported on stderr.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::procs::{self, Daemon};

/// Where the CNI plugins cache their results (containerd 1.6 cannot move it), one file
/// per `<network>-<container id>-<ifname>`.
const CNI_RESULTS: &str = "/var/lib/cni/results";

/// What identifies a bed outside its dir.
#[derive(Debug)]
pub(crate) struct BedNames<'a> {
    pub dir: &'a Path,
    pub bridge: &'a str,
    pub network: &'a str,
}

/// Stops everything a bed started and removes what it created.
pub(crate) fn teardown(bed: &BedNames<'_>, containerd: Option<&mut Daemon>, registry: Option<&mut Daemon>) {
    let dir = bed.dir;
    // containerd first, so that it does not restart or recreate what we remove.
    if let Some(d) = containerd {
        d.stop_blocking(Duration::from_secs(10));
    }
    stop_recorded(dir, "containerd", Duration::from_secs(10));

    // Pods and containers (sandboxes included) that are still running.
    let runc_root = dir.join("runc/k8s.io");
    if runc_root.is_dir() {
        let list = Command::new("runc").arg("--root").arg(&runc_root).args(["list", "-q"]).output();
        if let Ok(list) = list {
            for id in String::from_utf8_lossy(&list.stdout).split_whitespace() {
                let deleted = Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "-f", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if !deleted.is_ok_and(|s| s.success()) {
                    warn(format_args!("runc delete -f {id} failed"));
                }
            }
        }
    }

    // Their shims, found by the containerd address on their command line.
    let address = dir.join("containerd.sock").display().to_string();
    let shims: Vec<u32> = procs::all_pids()
        .into_iter()
        .filter(|pid| {
            let args = procs::cmdline(*pid);
            args.first().is_some_and(|a| a.ends_with("containerd-shim-runc-v2"))
                && args.windows(2).any(|w| w[0] == "-address" && w[1] == address)
        })
        .collect();
    procs::stop_pids_blocking(&shims, Duration::from_secs(3));

    // Whatever they left mounted under the dir (rootfs, shm, netns), deepest first.
    let mut mounts = mounts_under(dir);
    mounts.sort();
    for m in mounts.iter().rev() {
        let ok = Command::new("umount").arg("-l").arg(m).stderr(Stdio::null()).status();
        if !ok.is_ok_and(|s| s.success()) {
            warn(format_args!("umount -l {m} failed"));
        }
    }

    if let Some(r) = registry {
        r.stop_blocking(Duration::from_secs(10));
    }
    stop_recorded(dir, "registry", Duration::from_secs(10));

    if Path::new("/sys/class/net").join(bed.bridge).exists() {
        let ok = Command::new("ip").args(["link", "del", bed.bridge]).stderr(Stdio::null()).status();
        if !ok.is_ok_and(|s| s.success()) {
            warn(format_args!("ip link del {} failed", bed.bridge));
        }
    }

    remove_cni_results(bed.network);

    if dir.exists()
        && let Err(e) = fs::remove_dir_all(dir)
    {
        warn(format_args!("removing {}: {e}", dir.display()));
    }
}

/// Removes the CNI plugins' cached results of the bed's network, and of the loopback
/// network (`cni-loopback`) that containerd adds for the same sandboxes.
fn remove_cni_results(network: &str) {
    let Ok(entries) = fs::read_dir(CNI_RESULTS) else {
        return;
    };
    let prefix = format!("{network}-");
    let names: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    for name in names.iter().filter(|n| n.starts_with(&prefix)) {
        // <network>-<sandbox id>-<ifname>; the id has no dashes.
        let id = name[prefix.len()..].split('-').next().unwrap_or_default();
        let loopback = format!("cni-loopback-{id}-");
        for n in names.iter().filter(|n| *n == name || (!id.is_empty() && n.starts_with(&loopback))) {
            let _ = fs::remove_file(Path::new(CNI_RESULTS).join(n));
        }
    }
}

/// Stops the process recorded in `<dir>/<name>.pid` if it is still alive and really is
/// ours (its command line mentions the dir: pids get reused).
pub(crate) fn stop_recorded(dir: &Path, name: &str, grace: Duration) {
    let pid_file = dir.join(format!("{name}.pid"));
    let Some(pid) = procs::read_pid_file(&pid_file) else {
        return;
    };
    let dir_str = dir.display().to_string();
    if procs::alive(pid) && procs::cmdline(pid).iter().any(|a| a.starts_with(&dir_str)) {
        procs::stop_pids_blocking(&[pid], grace);
    }
    let _ = fs::remove_file(pid_file);
}

/// Mount points at or under `dir`, from /proc/mounts (octal escapes decoded).
pub(crate) fn mounts_under(dir: &Path) -> Vec<String> {
    let Ok(table) = fs::read_to_string("/proc/mounts") else {
        return Vec::new();
    };
    let d = dir.display().to_string();
    let inside = format!("{d}/");
    table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(unescape)
        .filter(|m| *m == d || m.starts_with(&inside))
        .collect()
}

/// Decodes /proc/mounts' `\040`-style escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(o)) => {
                out.push(o.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reports on stderr, ignoring a failing stderr.
pub(crate) fn warn(msg: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "testbed: {msg}");
}
