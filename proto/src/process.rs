//! The shared skeleton of every Stevedore binary's `main`: logging, the async
//! runtime, the shutdown token, and the exit status.

use std::{fmt::Display, future::Future, process::ExitCode};

use tokio_util::sync::CancellationToken;

use crate::telemetry::{self, LogFormat};

/// Exit status for bad flags or configuration (`EX_USAGE`).
pub const EX_USAGE: u8 = 64;

/// How a binary wants to be run.
#[derive(Clone, Debug)]
pub struct Process<'a> {
    /// The binary's name, for messages.
    pub name: &'a str,
    /// Log format.
    pub log_format: LogFormat,
    /// The `RUST_LOG` filter, read by `main`.
    pub log_filter: Option<&'a str>,
    /// Runtime threads: 1 runs everything on the calling thread.
    pub worker_threads: usize,
}

impl Process<'_> {
    /// Installs logging, builds the runtime, and runs `body` with a token that SIGTERM
    /// or SIGINT cancels. A failure is logged and printed; the exit status is 0 on
    /// success, 64 when logging cannot be set up, 1 otherwise.
    pub fn run<F, Fut, E>(self, body: F) -> ExitCode
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        if let Err(e) = telemetry::init(self.log_format, self.log_filter) {
            eprintln!("{}: {e}", self.name);
            return ExitCode::from(EX_USAGE);
        }
        let runtime = if self.worker_threads <= 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.worker_threads)
                .enable_all()
                .build()
        };
        let result = match runtime {
            Ok(rt) => rt.block_on(async {
                let shutdown = crate::shutdown::on_signal().map_err(|e| format!("signal handlers: {e}"))?;
                body(shutdown).await.map_err(|e| e.to_string())
            }),
            Err(e) => Err(format!("async runtime: {e}")),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "exiting");
                eprintln!("{}: {error}", self.name);
                ExitCode::FAILURE
            }
        }
    }
}
