//! `stevedore-controller`: parses flags, starts logging, runs the controller.

use std::process::ExitCode;

use clap::Parser;
use stevedore_proto::{process::Process, telemetry::LogFormat};

/// Stevedore's controller: workload controllers and admission webhooks for the
/// OpenKruise API. In this release it has no controllers or webhooks yet: it checks
/// its flags, logs them and waits for SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "stevedore-controller", version)]
struct Args {
    /// Port for the (future) webhook server.
    #[arg(long, env = "STEVEDORE_CONTROLLER_WEBHOOK_PORT", default_value_t = 9443)]
    webhook_port: u16,
    /// Log format: plain or json. The level comes from RUST_LOG (default info).
    #[arg(long, env = "STEVEDORE_CONTROLLER_LOG_FORMAT", default_value = "plain")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rust_log = std::env::var("RUST_LOG").ok();
    let config = stevedore_controller::Config { webhook_port: args.webhook_port };
    let process = Process {
        name: "stevedore-controller",
        log_format: args.log_format,
        log_filter: rust_log.as_deref(),
        worker_threads: 1,
    };
    process.run(|shutdown| async move {
        stevedore_controller::run(config, shutdown).await;
        Ok::<_, std::convert::Infallible>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_defaults_and_bad_values_are_refused() {
        assert_eq!(Args::try_parse_from(["stevedore-controller"]).unwrap().webhook_port, 9443);
        assert!(Args::try_parse_from(["stevedore-controller", "--webhook-port", "99999"]).is_err());
    }
}
