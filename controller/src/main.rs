//! `stevedore-controller`: parses flags, starts logging, runs the controller.

use std::process::ExitCode;

use clap::Parser;
use stevedore_proto::telemetry::{self, LogFormat};

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
    if let Err(e) = telemetry::init(args.log_format, rust_log.as_deref()) {
        eprintln!("stevedore-controller: {e}");
        return ExitCode::from(64);
    }
    let config = stevedore_controller::Config { webhook_port: args.webhook_port };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = stevedore_proto::shutdown::on_signal()?;
                stevedore_controller::run(config, shutdown).await;
                anyhow::Ok(())
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stevedore-controller: {e:#}");
            ExitCode::FAILURE
        }
    }
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
