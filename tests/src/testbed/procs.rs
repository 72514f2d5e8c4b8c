//! Processes of a bed: spawning daemons, liveness, signals and readiness probes.

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How often the waits here poll.
const POLL: Duration = Duration::from_millis(25);
/// How often a starting daemon is probed (its start-up time is often measured).
const READY_POLL: Duration = Duration::from_millis(5);

/// A daemon this process started: in its own process group, output appended to a log
/// file, its pid recorded in a pid file (for the cleanup after a killed run).
#[derive(Debug)]
pub(crate) struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        pid_file: &Path,
    ) -> anyhow::Result<Daemon> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let daemon = Daemon { name, child };
        fs::write(pid_file, format!("{}\n", daemon.pid()))
            .with_context(|| format!("writing {}", pid_file.display()))?;
        Ok(daemon)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once it has exited and been reaped.
    pub(crate) fn status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Whether it has exited (and if so, reaps it).
    pub(crate) fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once it has exited and is reaped.
    pub(crate) fn stop_blocking(&mut self, grace: Duration) {
        if self.exited() {
            return;
        }
        signal(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(POLL);
        }
        signal(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Polls `ready` until it holds; fails with the last lines of `log` when the daemon
    /// exits first or `within` passes.
    pub(crate) async fn wait_ready(
        &mut self,
        log: &Path,
        within: Duration,
        what: &str,
        mut ready: impl AsyncFnMut() -> bool,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        while !ready().await {
            if self.exited() {
                bail!("{} exited at start:\n{}", self.name, tail(log, 20));
            }
            if start.elapsed() > within {
                bail!("{} did not {what} within {within:?}:\n{}", self.name, tail(log, 20));
            }
            tokio::time::sleep(READY_POLL).await;
        }
        Ok(())
    }

    /// [`Daemon::stop`], then its exit status.
    ///
    /// # Errors
    /// The status cannot be read.
    pub(crate) async fn stop_status(&mut self, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.stop(grace).await;
        self.status().with_context(|| format!("{}'s exit status is unknown", self.name))
    }

    /// As [`Daemon::stop_blocking`], without blocking the async runtime while waiting.
    pub(crate) async fn stop(&mut self, grace: Duration) {
        if self.exited() {
            return;
        }
        signal(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        signal(self.pid(), Signal::SIGKILL);
        while !self.exited() {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Sends `sig` to `pid`, ignoring errors (it may be gone already).
pub(crate) fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// Whether `pid` exists and is not a zombie (`kill -0` succeeds on zombies).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|state| !matches!(state.trim_start().chars().next(), Some('Z' | 'X')))
}

/// The command line of `pid`, arguments split.
pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// All pids currently in /proc.
pub(crate) fn all_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// SIGTERM to every pid, SIGKILL to those still alive after `grace`, then waits (at
/// most 2 s more) until they are gone. For processes that are not our children.
pub(crate) fn stop_pids_blocking(pids: &[u32], grace: Duration) {
    let wait_gone = |until: Instant| {
        while pids.iter().any(|p| alive(*p)) && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    };
    pids.iter().for_each(|p| signal(*p, Signal::SIGTERM));
    wait_gone(Instant::now() + grace);
    pids.iter().filter(|p| alive(**p)).for_each(|p| signal(*p, Signal::SIGKILL));
    wait_gone(Instant::now() + Duration::from_secs(2));
}

/// Reads a pid file; `None` when it is missing or garbled.
pub(crate) fn read_pid_file(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether `GET http://addr/path` answers 200 (HTTP/1.0, std only).
pub(crate) fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut head = [0u8; 16];
        let mut n = 0;
        while n < head.len() {
            match s.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        let head = String::from_utf8_lossy(&head[..n]);
        Ok(head.split_whitespace().nth(1) == Some("200"))
    };
    probe().unwrap_or(false)
}

/// Runs a command to completion; fails with its stderr when it does not exit 0.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

/// The last `lines` lines of a text file ("" when it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(text) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Searches PATH for an executable.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
