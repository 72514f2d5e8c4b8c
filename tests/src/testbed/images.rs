//! The bed's images, built once per machine (no Docker: gcc, umoci, skopeo) into a
//! cache dir, and pushed once into a registry storage root that every bed's registry
//! then serves read-only.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{cleanup, config, procs};

/// Bump when the images or the layout of the cache change.
const CACHE_VERSION: u32 = 1;
const CACHE_BASE: &str = "/var/tmp/stevedore-testbed";
/// Written last (then the build dir is renamed into place): a cache without it is
/// half-built (killed run) and is rebuilt.
const MARKER: &str = "complete";
/// Size of `big:v1`'s random payload, split over two layers.
const BIG_MB: u64 = 80;

const PAUSE_C: &str = include_str!("../../bed/pause.c");

/// `(tag in the OCI layout, repository:tag in the registry)`.
const IMAGES: &[(&str, &str)] =
    &[("pause-1", "pause:1"), ("app-v1", "app:v1"), ("app-v2", "app:v2"), ("big-v1", "big:v1")];

/// The built cache.
#[derive(Debug, Clone)]
pub(crate) struct ImageCache {
    dir: PathBuf,
}

impl ImageCache {
    /// The registry storage root the images were pushed into (serve it read-only).
    pub(crate) fn registry_root(&self) -> PathBuf {
        self.dir.join("registry")
    }

    /// A docker-archive of the pause image, tagged [`config::PAUSE_IMAGE`].
    pub(crate) fn pause_tar(&self) -> PathBuf {
        self.dir.join("pause.tar")
    }
}

/// Returns the cache, building it first (under an exclusive lock) if needed. Blocking.
pub(crate) fn ensure() -> anyhow::Result<ImageCache> {
    let base = Path::new(CACHE_BASE);
    let dir = base.join(format!("cache-{CACHE_VERSION}"));
    let cache = ImageCache { dir: dir.clone() };
    if dir.join(MARKER).is_file() {
        return Ok(cache);
    }
    fs::create_dir_all(base).with_context(|| format!("creating {}", base.display()))?;
    let lock_path = base.join(format!("cache-{CACHE_VERSION}.lock"));
    let lock = File::create(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    if dir.join(MARKER).is_file() {
        return Ok(cache); // another process built it while we waited
    }
    let t0 = Instant::now();
    eprintln!("testbed: building the image cache in {}", dir.display());
    // Leftovers of killed builds: their children (umoci, skopeo, the push registry)
    // may still be writing there, so each build uses its own dir, renamed when done.
    let prefix = format!("cache-{CACHE_VERSION}.build-");
    for e in fs::read_dir(base)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            cleanup::stop_recorded(&e.path(), "push-registry", Duration::from_secs(5));
            let _ = fs::remove_dir_all(e.path());
        }
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing half-built {}", dir.display()))?;
    }
    let work = base.join(format!("{prefix}{}", std::process::id()));
    fs::create_dir_all(&work)?;
    build(&work).with_context(|| format!("building the test bed image cache in {}", work.display()))?;
    fs::write(work.join(MARKER), format!("cache version {CACHE_VERSION}\n"))?;
    fs::rename(&work, &dir).with_context(|| format!("renaming {} to {}", work.display(), dir.display()))?;
    eprintln!("testbed: image cache built in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(cache)
}

fn build(dir: &Path) -> anyhow::Result<()> {
    let src = dir.join("pause.c");
    fs::write(&src, PAUSE_C)?;
    let pause = dir.join("pause");
    procs::run(Command::new("gcc").args(["-static", "-O2", "-s", "-o"]).arg(&pause).arg(&src))?;

    let oci = dir.join("oci");
    let layout = oci.display().to_string();
    procs::run(Command::new("umoci").args(["init", "--layout", &layout]))?;
    procs::run(Command::new("umoci").args(["new", "--image", &format!("{layout}:empty")]))?;

    let b = Builder { layout: &layout, bundle: dir.join("bundle") };
    b.image(
        "pause-1",
        "empty",
        |r| install(&pause, &r.join("pause")),
        &["--config.entrypoint=/pause", "--clear=config.cmd"],
    )?;
    b.image("base", "empty", fill_busybox, &["--config.cmd=sh"])?;
    let app_cmd =
        r#"trap "exit 0" TERM INT; echo "app $(cat /etc/app-version) started"; sleep 1000000 & wait"#;
    for v in ["v1", "v2"] {
        let cmd = format!("--config.cmd={app_cmd}");
        b.image(
            &format!("app-{v}"),
            "base",
            |r| fill_version(r, v),
            &["--config.entrypoint=/bin/sh", "--config.entrypoint=-c", "--clear=config.cmd", &cmd],
        )?;
    }
    b.image("big-half", "app-v1", |r| fill_random(r, "blob1", BIG_MB / 2), &[])?;
    b.image("big-v1", "big-half", |r| fill_random(r, "blob2", BIG_MB - BIG_MB / 2), &[])?;
    procs::run(Command::new("umoci").args(["gc", "--layout", &layout]))?;

    // The sandbox image, for `ctr images import` (sandboxes then start without the registry).
    let tar = dir.join("pause.tar");
    procs::run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{layout}:pause-1"),
        &format!("docker-archive:{}:{}", tar.display(), config::PAUSE_IMAGE),
    ]))?;
    push_all(dir, &layout)
}

/// Pushes every image into `dir/registry` through a temporary registry.
fn push_all(dir: &Path, layout: &str) -> anyhow::Result<()> {
    let root = dir.join("registry");
    fs::create_dir_all(&root)?;
    let addr = format!("127.0.0.1:{}", procs::free_port()?);
    let yml = dir.join("push-registry.yml");
    fs::write(&yml, config::registry_yml(&root, &addr, false))?;
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&yml);
    let log = dir.join("push-registry.log");
    let mut reg = procs::Daemon::spawn("docker-registry", cmd, &log, &dir.join("push-registry.pid"))?;
    let pushed = wait_registry(&mut reg, &addr, &log).and_then(|()| {
        for (tag, name) in IMAGES {
            procs::run(Command::new("skopeo").args([
                "copy",
                "-q",
                "--dest-tls-verify=false",
                &format!("oci:{layout}:{tag}"),
                &format!("docker://{addr}/{name}"),
            ]))?;
        }
        Ok(())
    });
    reg.stop_blocking(Duration::from_secs(10));
    pushed
}

/// Waits (10 s at most) until the registry at `addr` answers `/v2/`.
pub(crate) fn wait_registry(reg: &mut procs::Daemon, addr: &str, log: &Path) -> anyhow::Result<()> {
    let sock = addr.parse()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if procs::http_ok(sock, "/v2/") {
            return Ok(());
        }
        if reg.exited() {
            bail!("docker-registry exited at start: {}", procs::tail(log, 20));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("docker-registry on {addr} did not answer within 10 s: {}", procs::tail(log, 20))
}

/// Unpacks `from`, fills its rootfs, repacks as `tag`, then sets its config.
struct Builder<'a> {
    layout: &'a str,
    bundle: PathBuf,
}

impl Builder<'_> {
    fn image(
        &self,
        tag: &str,
        from: &str,
        fill: impl FnOnce(&Path) -> io::Result<()>,
        config: &[&str],
    ) -> anyhow::Result<()> {
        let image = format!("{}:{tag}", self.layout);
        let _ = fs::remove_dir_all(&self.bundle);
        procs::run(
            Command::new("umoci")
                .args(["unpack", "--image", &format!("{}:{from}", self.layout)])
                .arg(&self.bundle),
        )?;
        fill(&self.bundle.join("rootfs")).with_context(|| format!("filling image {tag}"))?;
        procs::run(Command::new("umoci").args(["repack", "--image", &image]).arg(&self.bundle))?;
        if !config.is_empty() {
            procs::run(Command::new("umoci").args(["config", "--image", &image, "--tag", tag]).args(config))?;
        }
        fs::remove_dir_all(&self.bundle)?;
        Ok(())
    }
}

fn install(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))
}

fn fill_busybox(root: &Path) -> io::Result<()> {
    for d in ["bin", "etc", "tmp"] {
        fs::create_dir_all(root.join(d))?;
    }
    install(Path::new("/bin/busybox"), &root.join("bin/busybox"))?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(root.join("etc/group"), "root:x:0:\n")
}

fn fill_version(root: &Path, version: &str) -> io::Result<()> {
    fs::write(root.join("etc/app-version"), format!("{version}\n"))
}

fn fill_random(root: &Path, name: &str, mb: u64) -> io::Result<()> {
    fs::create_dir_all(root.join("data"))?;
    let mut out = File::create(root.join("data").join(name))?;
    io::copy(&mut io::Read::take(File::open("/dev/urandom")?, mb << 20), &mut out)?;
    Ok(())
}
