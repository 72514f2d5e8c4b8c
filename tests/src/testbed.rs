//! A real containerd (Debian's 1.6, CRI plugin) for tests, with its own local registry
//! and locally built images: `stevedore.test/{pause:1, app:v1, app:v2, big:v1}`.
//!
//! Every [`TestBed`] takes one of 64 slots (a file lock), which gives it a state dir
//! `/run/stevedore-testbed/<N>/`, a CNI bridge `sdtb<N>` on `10.234.<N>.0/24` and a
//! network name `stevedore-tb<N>`, so beds of parallel tests (threads or processes) do
//! not clash. Dropping the bed stops and removes everything it started, pods included.
//!
//! Needs root and Debian packages (see `tests/bed/install-deps.sh`); a missing one is an
//! error, never a silent skip. `STEVEDORE_TESTBED_LOG_LEVEL` sets containerd's log level
//! (default `warn`).

mod cleanup;
pub mod clients;
mod config;
mod images;
mod prereq;
pub(crate) mod procs;

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use stevedore_proto::cri::StatusRequest;

use self::cleanup::BedNames;
use self::procs::Daemon;

/// Parent of the slot locks and the beds' state dirs (short: unix socket paths are
/// limited to 108 bytes).
const RUN_BASE: &str = "/run/stevedore-testbed";
const SLOTS: u32 = 64;
/// How long containerd gets to become CRI-ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One running containerd with CRI, a registry, and the images; see the module docs.
#[derive(Debug)]
pub struct TestBed {
    slot: u32,
    dir: PathBuf,
    socket: PathBuf,
    bridge: String,
    network: String,
    registry_addr: String,
    containerd: Option<Daemon>,
    registry: Option<Daemon>,
    /// Held (locked) for the bed's life.
    _slot_lock: File,
}

impl TestBed {
    /// Checks prerequisites, builds/caches images, allocates a slot, starts a registry
    /// and containerd, and waits until CRI Status reports RuntimeReady and NetworkReady.
    pub async fn start() -> anyhow::Result<TestBed> {
        prereq::check()?;
        let log_level = std::env::var("STEVEDORE_TESTBED_LOG_LEVEL").unwrap_or_else(|_| "warn".to_owned());
        let cache = tokio::task::spawn_blocking(images::ensure).await??;
        let mut bed = tokio::task::spawn_blocking(TestBed::allocate).await??;
        let dir = bed.dir.clone();
        let snapshotter = prereq::snapshotter(&dir.join("overlay-test"));

        // The registry, serving the cached storage root read-only.
        for sub in ["logs", "cni/net.d", "certs.d", "containerd"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        bed.registry_addr = bed.start_registry(&cache)?;

        // containerd's config and the files it reads.
        let hosts = dir.join("certs.d").join(config::IMAGE_DOMAIN);
        fs::create_dir_all(&hosts)?;
        fs::write(hosts.join("hosts.toml"), config::hosts_toml(&bed.registry_addr))?;
        let subnet = format!("10.234.{}.0/24", bed.slot);
        fs::write(
            dir.join("cni/net.d/10-stevedore.conflist"),
            config::cni_conflist(&dir, &bed.network, &bed.bridge, &subnet),
        )?;
        let toml = config::containerd_toml(&config::ContainerdConfig {
            dir: &dir,
            snapshotter,
            restrict_oom_score_adj: !prereq::has_cap_sys_resource(),
            log_level: &log_level,
        });
        fs::write(dir.join("containerd.toml"), toml)?;
        bed.start_containerd().await?;

        // The sandbox image is imported, so sandboxes start even without the registry.
        let mut import = Command::new("ctr");
        import
            .arg("-a")
            .arg(&bed.socket)
            .args(["-n", "k8s.io", "images", "import", "--snapshotter", snapshotter])
            .arg(cache.pause_tar());
        tokio::task::spawn_blocking(move || procs::run(&mut import))
            .await?
            .context("importing the pause image")?;
        Ok(bed)
    }

    /// Takes the first free slot; cleans up after a killed run that held it. Blocking.
    fn allocate() -> anyhow::Result<TestBed> {
        fs::create_dir_all(RUN_BASE).with_context(|| format!("creating {RUN_BASE}"))?;
        for slot in 0..SLOTS {
            let path = Path::new(RUN_BASE).join(format!("slot-{slot}.lock"));
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
            let dir = Path::new(RUN_BASE).join(slot.to_string());
            let bed = TestBed {
                slot,
                socket: dir.join("containerd.sock"),
                dir,
                bridge: format!("sdtb{slot}"),
                network: format!("stevedore-tb{slot}"),
                registry_addr: String::new(),
                containerd: None,
                registry: None,
                _slot_lock: lock,
            };
            if bed.dir.exists() || Path::new("/sys/class/net").join(&bed.bridge).exists() {
                cleanup::warn(format_args!("slot {slot}: cleaning up after a killed run"));
                cleanup::teardown(&bed.names(), None, None);
            }
            fs::create_dir_all(&bed.dir)?;
            return Ok(bed);
        }
        bail!("all {SLOTS} test bed slots in {RUN_BASE} are taken")
    }

    /// Starts the bed's registry on a free port; returns its address. The port is free
    /// when picked but may be taken before the registry binds it: then it exits at once,
    /// and we try another.
    fn start_registry(&mut self, cache: &images::ImageCache) -> anyhow::Result<String> {
        let yml = self.dir.join("registry.yml");
        let log = self.dir.join("registry.log");
        let pid_file = self.dir.join("registry.pid");
        for _attempt in 0..3 {
            let addr = format!("127.0.0.1:{}", procs::free_port()?);
            fs::write(&yml, config::registry_yml(&cache.registry_root(), &addr, true))?;
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve").arg(&yml);
            let reg = self.registry.insert(Daemon::spawn("docker-registry", cmd, &log, &pid_file)?);
            let answered = images::wait_registry(reg, &addr, &log);
            // Answering is not enough: it could be another bed's registry on that port.
            if !reg.exited() {
                return answered.map(|()| addr);
            }
        }
        bail!("docker-registry keeps exiting at start: {}", procs::tail(&log, 20))
    }

    fn names(&self) -> BedNames<'_> {
        BedNames { dir: &self.dir, bridge: &self.bridge, network: &self.network }
    }

    /// The bed's slot N: state dir `/run/stevedore-testbed/<N>`, CNI bridge `sdtb<N>`,
    /// pod subnet `10.234.<N>.0/24`.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// containerd's CRI (and containerd API) socket.
    pub fn containerd_socket(&self) -> &Path {
        &self.socket
    }

    /// This bed's state dir, `/run/stevedore-testbed/<slot>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bed's registry, `127.0.0.1:PORT` (plain http).
    pub fn registry(&self) -> &str {
        &self.registry_addr
    }

    /// Makes containerd pull images named `domain/...` from `addr` (plain http), as it
    /// pulls `stevedore.test/...` from the bed's registry: a test puts its own
    /// registry front (throttled, counting, with auth; see [`crate::registry_front`])
    /// or an address that refuses or hangs behind a name of its own. containerd reads
    /// the hosts file at every pull.
    ///
    /// # Errors
    /// The hosts file cannot be written.
    pub fn serve_domain(&self, domain: &str, addr: &str) -> anyhow::Result<()> {
        let dir = self.dir.join("certs.d").join(domain);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("hosts.toml"), config::hosts_toml(addr)).context("writing hosts.toml")?;
        Ok(())
    }

    /// The name to pull a bed image by: `image("app:v1") == "stevedore.test/app:v1"`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", config::IMAGE_DOMAIN)
    }

    /// The CRI sandbox image, `stevedore.test/pause:1` (imported, not pulled).
    pub fn pause_image(&self) -> String {
        config::PAUSE_IMAGE.to_owned()
    }

    /// The running containerd's pid.
    pub fn containerd_pid(&self) -> Option<u32> {
        self.containerd.as_ref().map(Daemon::pid)
    }

    /// A dir for pods' CRI log dirs (`log_directory`), inside [`TestBed::dir`].
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Stops containerd (SIGTERM; SIGKILL after 10 s). Running pods keep running: their
    /// shims survive.
    pub async fn stop_containerd(&mut self) -> anyhow::Result<()> {
        if let Some(mut d) = self.containerd.take() {
            d.stop(STOP_GRACE).await;
        }
        let _ = fs::remove_file(self.dir.join("containerd.pid"));
        Ok(())
    }

    /// Starts containerd (again) with the same config and socket, and waits until CRI
    /// reports RuntimeReady and NetworkReady. Does nothing if it is running.
    pub async fn start_containerd(&mut self) -> anyhow::Result<()> {
        if self.containerd.as_mut().is_some_and(|d| !d.exited()) {
            return Ok(());
        }
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(self.dir.join("containerd.toml"));
        let log = self.dir.join("containerd.log");
        let d = Daemon::spawn("containerd", cmd, &log, &self.dir.join("containerd.pid"))?;
        self.containerd = Some(d);
        self.wait_cri_ready().await
    }

    async fn wait_cri_ready(&mut self) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let mut last = String::from("not started");
        while t0.elapsed() < READY_TIMEOUT {
            if let Some(d) = self.containerd.as_mut()
                && d.exited()
            {
                bail!("{} exited at start: {}", d.name(), self.containerd_log_tail(20));
            }
            match cri_ready(&self.socket).await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "containerd not CRI-ready after {READY_TIMEOUT:?} ({last}); log: {}",
            self.containerd_log_tail(20)
        )
    }

    /// The last `lines` lines of containerd's log.
    pub fn containerd_log_tail(&self, lines: usize) -> String {
        procs::tail(&self.dir.join("containerd.log"), lines)
    }
}

/// Ok when CRI Status reports RuntimeReady and NetworkReady.
async fn cri_ready(socket: &Path) -> anyhow::Result<()> {
    if !socket.exists() {
        bail!("no socket yet");
    }
    let mut rt = crate::cri::runtime_client(crate::cri::connect(socket).await?);
    let status = rt.status(StatusRequest { verbose: false }).await?.into_inner();
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    for want in ["RuntimeReady", "NetworkReady"] {
        match conditions.iter().find(|c| c.r#type == want) {
            Some(c) if c.status => {}
            Some(c) => bail!("{want} false: {} {}", c.reason, c.message),
            None => bail!("no {want} condition"),
        }
    }
    Ok(())
}

impl Drop for TestBed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let tail = self.containerd_log_tail(40);
            let tail = if tail.is_empty() { "(empty)".to_owned() } else { tail };
            cleanup::warn(format_args!(
                "bed {} torn down during a panic; last 40 lines of {}:\n{tail}",
                self.slot,
                self.dir.join("containerd.log").display(),
            ));
        }
        let names = BedNames { dir: &self.dir, bridge: &self.bridge, network: &self.network };
        cleanup::teardown(&names, self.containerd.as_mut(), self.registry.as_mut());
    }
}
