//! `stevedore-controller`: parses flags, starts logging, runs the controller.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Parser;
use stevedore_controller::upkeep;
use stevedore_proto::{process::Process, telemetry::LogFormat};

/// Stevedore's controller: admission webhooks and CRD conversion for the OpenKruise
/// API, and the workload controllers. Every replica serves webhooks with a
/// certificate shared through a Secret; the elected leader keeps the webhook
/// configurations and the CRDs' conversion sections current and runs the
/// controllers (ImagePullJob, ImageListPullJob, NodeImage). Talks to the cluster through KUBECONFIG, ~/.kube/config or the
/// in-cluster service account.
#[derive(Debug, Parser)]
#[command(name = "stevedore-controller", version)]
struct Args {
    /// Address the webhook server listens on.
    #[arg(long, env = "STEVEDORE_WEBHOOK_LISTEN", default_value = "0.0.0.0:9443")]
    webhook_listen: SocketAddr,
    /// The controller's namespace (its Secret, Service and Lease).
    #[arg(long, env = "POD_NAMESPACE", default_value = "stevedore-system")]
    namespace: String,
    /// This replica's identity for leader election (its pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// The Service in front of the webhook port.
    #[arg(long, default_value = "stevedore-webhook-service")]
    webhook_service: String,
    /// The Service's port.
    #[arg(long, default_value_t = 443)]
    webhook_service_port: i32,
    /// The Secret holding the webhook certificate.
    #[arg(long, default_value = "stevedore-webhook-certs")]
    webhook_secret: String,
    /// The leader election Lease.
    #[arg(long, default_value = "stevedore-controller")]
    lease: String,
    /// Validity of a serving certificate, in days (renewed after two thirds).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
    cert_validity_days: u64,
    /// Seconds between checks of the certificate and of what the leader keeps.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    resync_seconds: u64,
    /// Leader Lease duration in seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..))]
    lease_seconds: u64,
    /// Objects each controller reconciles at once.
    #[arg(long, env = "STEVEDORE_CONTROLLER_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// The node agents' namespace: pull secrets of image pull jobs are copied there.
    #[arg(long, env = "STEVEDORE_AGENT_NAMESPACE", default_value = "stevedore-system")]
    agent_namespace: String,
    /// Seconds a node's agent may not report an image pull it was given before the
    /// pull counts as failed.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    agent_response_timeout_seconds: u64,
    /// Seconds after a node agent's last NodeState report (agents write one at least
    /// every 20 s by default) when its DaemonSet pods count as unavailable.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    agent_silence_seconds: u64,
    /// Log format: plain or json. The level comes from RUST_LOG (default info).
    #[arg(long, env = "STEVEDORE_CONTROLLER_LOG_FORMAT", default_value = "plain")]
    log_format: LogFormat,
}

impl Args {
    fn config(self) -> stevedore_controller::Config {
        let identity = self.identity.unwrap_or_else(|| {
            hostname().unwrap_or_else(|| format!("stevedore-controller-{}", std::process::id()))
        });
        stevedore_controller::Config {
            webhook_listen: self.webhook_listen,
            mutating_configuration: upkeep::MUTATING_CONFIGURATION.into(),
            validating_configuration: upkeep::VALIDATING_CONFIGURATION.into(),
            namespace: self.namespace,
            identity,
            service: self.webhook_service,
            service_port: self.webhook_service_port,
            secret: self.webhook_secret,
            lease: self.lease,
            cert_validity: Duration::from_secs(self.cert_validity_days * 86_400),
            resync: Duration::from_secs(self.resync_seconds),
            lease_duration: Duration::from_secs(self.lease_seconds),
            handler_timeout: Duration::from_secs(5),
            concurrency: self.concurrency,
            agent_namespace: self.agent_namespace,
            agent_response_timeout: Duration::from_secs(self.agent_response_timeout_seconds),
            agent_silence: Duration::from_secs(self.agent_silence_seconds),
        }
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rust_log = std::env::var("RUST_LOG").ok();
    let process = Process {
        name: "stevedore-controller",
        log_format: args.log_format,
        log_filter: rust_log.as_deref(),
        worker_threads: 2,
    };
    let config = args.config();
    process.run(|shutdown| stevedore_controller::run(config, shutdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_defaults_and_bad_values_are_refused() {
        let args = Args::try_parse_from(["stevedore-controller", "--identity", "a"]).unwrap();
        let config = args.config();
        assert_eq!(config.webhook_listen.port(), 9443);
        assert_eq!(config.identity, "a");
        assert_eq!(config.dns_names()[0], "stevedore-webhook-service.stevedore-system.svc");
        assert!(Args::try_parse_from(["stevedore-controller", "--webhook-listen", "nowhere"]).is_err());
        assert!(Args::try_parse_from(["stevedore-controller", "--cert-validity-days", "0"]).is_err());
    }
}
