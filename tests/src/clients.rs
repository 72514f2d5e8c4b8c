//! kubectl and helm run as a user runs them, against a [`TestCluster`]: the binaries
//! the test bed installs ([`crate::testbed::clients`]), a kubeconfig for the cluster
//! (for the simulator: one that kubectl can use over plain HTTP, which needs the
//! server's anonymous admin; for a real cluster: `KUBECONFIG`), and caches and helm
//! state of their own, so runs never share discovery caches.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;

use crate::cluster::{Target, TestCluster};
use crate::testbed::clients;

/// The result of one command.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (-1 when killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Standard output; panics with everything the command printed unless it
    /// succeeded.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "`{}` failed:\n{}\n{}", self.command, self.stdout, self.stderr);
        &self.stdout
    }

    /// Standard error; panics unless the command failed.
    pub fn err(&self) -> &str {
        assert_ne!(self.code, 0, "`{}` succeeded but should not have:\n{}", self.command, self.stdout);
        &self.stderr
    }
}

/// kubectl and helm pointed at one cluster.
#[derive(Debug)]
pub struct Clients {
    bins: clients::Clients,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Clients {
    /// Clients for `cluster`. For the simulator, its server must serve requests without
    /// credentials as the admin (`Options::anonymous`): kubectl sends none over HTTP.
    ///
    /// # Errors
    /// kubectl or helm cannot be installed, or the kubeconfig cannot be written.
    pub async fn for_cluster(cluster: &TestCluster) -> anyhow::Result<Self> {
        let bins = tokio::task::spawn_blocking(clients::ensure).await??;
        let home = tempfile::tempdir()?;
        let kubeconfig = match (cluster.target(), cluster.simulator()) {
            (Target::Simulator, Some(server)) => {
                let path = home.path().join("kubeconfig");
                server.write_kubeconfig(&path, crate::apiserver::ADMIN_TOKEN)?;
                path
            }
            _ => PathBuf::from(
                std::env::var("KUBECONFIG").context("KUBECONFIG must name the real cluster's kubeconfig")?,
            ),
        };
        Ok(Self { bins, kubeconfig, home })
    }

    /// Clients for the cluster a kubeconfig file names.
    ///
    /// # Errors
    /// kubectl or helm cannot be installed.
    pub async fn for_kubeconfig(kubeconfig: &Path) -> anyhow::Result<Self> {
        let bins = tokio::task::spawn_blocking(clients::ensure).await??;
        Ok(Self { bins, kubeconfig: kubeconfig.to_owned(), home: tempfile::tempdir()? })
    }

    /// The kubeconfig the clients use.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A scratch directory that lives as long as the clients.
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    fn command(&self, bin: &Path, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(bin);
        let home = self.home.path();
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", home)
            .env("KUBECACHEDIR", home.join("kube-cache"))
            .env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, bin: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let command = format!("{} {}", bin.file_name().unwrap_or_default().to_string_lossy(), args.join(" "));
        let mut child =
            self.command(bin, args).spawn().unwrap_or_else(|e| panic!("spawning `{command}`: {e}"));
        let mut input = child.stdin.take();
        if let (Some(text), Some(pipe)) = (stdin, input.as_mut()) {
            let _ = pipe.write_all(text.as_bytes()).await;
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{command}` did not finish within 120 s"))
            .unwrap_or_else(|e| panic!("`{command}`: {e}"));
        Output {
            command,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The kubectl binary.
    pub fn kubectl_path(&self) -> PathBuf {
        self.bins.kubectl()
    }

    /// `kubectl <args>`.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.run(&self.bins.kubectl(), args, None).await
    }

    /// `kubectl <args>` with `stdin` (for `-f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.run(&self.bins.kubectl(), args, Some(stdin)).await
    }

    /// `kubectl <args>` left running (for `logs -f`, `get -w`): its output is read
    /// by the caller; it is killed when dropped.
    ///
    /// # Errors
    /// It cannot be started.
    pub fn kubectl_spawn(&self, args: &[&str]) -> anyhow::Result<tokio::process::Child> {
        Ok(self.command(&self.bins.kubectl(), args).stdin(Stdio::null()).spawn()?)
    }

    /// `helm <args>`.
    pub async fn helm(&self, args: &[&str]) -> Output {
        self.run(&self.bins.helm(), args, None).await
    }
}
