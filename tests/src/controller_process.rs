//! The real `stevedore-controller` binary, run against a kubeconfig (usually the
//! simulated API server's) with its webhook server on a loopback port.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::testbed::procs::{self, Daemon};

/// How long the controller gets to release its Lease and stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running controller; killed when dropped.
#[derive(Debug)]
pub struct ControllerProcess {
    daemon: Daemon,
    listen: SocketAddr,
    log: PathBuf,
}

impl ControllerProcess {
    /// Starts the controller as `identity` with `kubeconfig`, serving webhooks on
    /// `listen`, logs and pid file under `dir`; returns once the webhook port accepts
    /// connections (the certificate is in hand by then).
    ///
    /// # Errors
    /// The binary is missing, exits, or does not listen within 30 s.
    pub async fn start(
        dir: &Path,
        kubeconfig: &Path,
        listen: SocketAddr,
        identity: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let bin = crate::bins::binary("stevedore-controller")?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--webhook-listen")
            .arg(listen.to_string())
            .args(["--identity", identity])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("STEVEDORE_TEST_CONTROLLER_LOG").unwrap_or_else(|_| "info".into()),
            );
        let log = dir.join(format!("controller-{identity}.log"));
        let daemon = Daemon::spawn(
            "stevedore-controller",
            cmd,
            &log,
            &dir.join(format!("controller-{identity}.pid")),
        )?;
        let mut controller = Self { daemon, listen, log };
        let what = format!("listen on {listen}");
        controller
            .daemon
            .wait_ready(&controller.log, Duration::from_secs(30), &what, async || {
                tokio::net::TcpStream::connect(listen).await.is_ok()
            })
            .await?;
        Ok(controller)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Where its webhook server listens.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        procs::tail(&self.log, lines)
    }

    /// Sends SIGTERM and waits for the exit status.
    ///
    /// # Errors
    /// The status cannot be read.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.daemon.stop_status(STOP_GRACE).await
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.daemon.stop_blocking(Duration::ZERO);
    }
}

/// A free loopback port for a webhook server.
///
/// # Errors
/// No port could be bound.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], procs::free_port()?)))
}

/// The controller's namespace, webhook Service and configurations, as its
/// manifests in `deploy/` name them.
pub mod webhooks {
    /// The namespace the controller runs in.
    pub const NAMESPACE: &str = "stevedore-system";
    /// The Service the webhook configurations name.
    pub const SERVICE: &str = "stevedore-webhook-service";
    /// The validating webhook configuration the leader keeps.
    pub const VALIDATING: &str = "stevedore-validating-webhook-configuration";
    /// The mutating webhook configuration the leader keeps.
    pub const MUTATING: &str = "stevedore-mutating-webhook-configuration";
}

/// Installs what the controller and agents need in the cluster of `client`: the
/// project's CRDs, and `namespaces`.
///
/// # Errors
/// A create fails.
pub async fn install(client: &kube::Client, namespaces: &[&str]) -> anyhow::Result<()> {
    use k8s_openapi::{
        api::core::v1::Namespace,
        apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    };
    use kube::api::{Api, PostParams};

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in stevedore_proto::crd::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    for name in namespaces {
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
    }
    Ok(())
}

/// The cluster of `client` (a simulated API server whose webhook Services are
/// reached through `services`) made ready for the controller's webhooks: the
/// project's CRDs and the controller's namespace created, the controller started
/// under `dir` with `kubeconfig`, its webhook Service routed to it, and both
/// webhook configurations and the CRDs' conversion published with a CA bundle. The controller serves every
/// webhook when this returns.
///
/// # Errors
/// A create fails, the controller does not start, or the configurations are not
/// published within 30 s.
pub async fn serving_webhooks(
    client: &kube::Client,
    services: &crate::cluster::Services,
    kubeconfig: &Path,
    dir: &Path,
) -> anyhow::Result<ControllerProcess> {
    install(client, &[webhooks::NAMESPACE]).await?;
    start_serving(client, services, kubeconfig, dir, TEST_ARGS).await
}

/// The flags tests start the controller with: a resync every second, so a test
/// never waits for a missed event; agents silent for 6 s count as gone (the stack's
/// agents beat every 2 s).
pub const TEST_ARGS: &[&str] = &["--resync-seconds", "1", "--agent-silence-seconds", "6"];

/// Starts the controller with `args` against a cluster [`install`] already prepared
/// (as [`serving_webhooks`] does; also to restart it), its webhooks reached as the
/// Service through `services`; returns once the configurations carry its CA.
///
/// # Errors
/// As [`serving_webhooks`].
pub async fn start_serving(
    client: &kube::Client,
    services: &crate::cluster::Services,
    kubeconfig: &Path,
    dir: &Path,
    args: &[&str],
) -> anyhow::Result<ControllerProcess> {
    use k8s_openapi::{
        api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    };
    use kube::api::Api;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let controller = ControllerProcess::start(dir, kubeconfig, free_addr()?, "parity", args).await?;
    services.expose(webhooks::NAMESPACE, webhooks::SERVICE, 443, controller.listen());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    crate::wait::until("the webhook configurations", Duration::from_secs(30), async || {
        let bundled = |b: Option<&k8s_openapi::ByteString>| b.is_some_and(|b| !b.0.is_empty());
        let v = validating.get_opt(webhooks::VALIDATING).await?;
        let m = mutating.get_opt(webhooks::MUTATING).await?;
        let ready = v
            .and_then(|v| v.webhooks)
            .is_some_and(|w| !w.is_empty() && w.iter().all(|w| bundled(w.client_config.ca_bundle.as_ref())))
            && m.and_then(|m| m.webhooks).is_some_and(|w| {
                !w.is_empty() && w.iter().all(|w| bundled(w.client_config.ca_bundle.as_ref()))
            });
        // and the conversion webhooks (a kind whose versions differ in storage)
        let sts = crds.get("statefulsets.apps.kruise.io").await?;
        let converting = sts.spec.conversion.and_then(|c| c.webhook?.client_config?.ca_bundle);
        Ok((ready && bundled(converting.as_ref())).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\ncontroller log:\n{}", controller.log_tail(20)))?;
    Ok(controller)
}
