//! The one shutdown primitive of every Stevedore process: a [`CancellationToken`]
//! cancelled by SIGTERM or SIGINT.

use std::io;

pub use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled on the first SIGTERM or SIGINT; a second signal
/// exits the process at once with status 130, for an operator who does not want to
/// wait for the drain.
///
/// # Errors
/// Fails when the signal handlers cannot be installed.
pub fn on_signal() -> io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    let task = async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = first, "shutting down");
        cancel.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting without waiting for the drain");
        std::process::exit(130);
    };
    tokio::spawn(tracing::Instrument::instrument(task, tracing::info_span!("signals")));
    Ok(token)
}
