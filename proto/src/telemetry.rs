//! Logging setup shared by every Stevedore binary: `tracing` with an `EnvFilter`
//! (`RUST_LOG`, default `info`), in plain or JSON format, with a handle to change the
//! filter at run time.

use std::str::FromStr;

use tracing_subscriber::{EnvFilter, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(Self::Plain),
            "json" => Ok(Self::Json),
            other => Err(Error::Format(other.to_owned())),
        }
    }
}

/// Telemetry setup failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log format is neither `plain` nor `json`.
    #[error("log format {0:?} is not one of: plain, json")]
    Format(String),
    /// The filter directive does not parse.
    #[error("invalid log filter {directive:?}: {source}")]
    Filter {
        /// The directive as given.
        directive: String,
        /// Why it does not parse.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
    /// The filter could not be swapped.
    #[error("failed to reload the log filter: {0}")]
    Reload(#[from] reload::Error),
}

/// Changes the active log filter at run time.
#[derive(Clone, Debug)]
pub struct LogFilterHandle(reload::Handle<EnvFilter, Registry>);

impl LogFilterHandle {
    /// Replaces the filter with `directive` (the `RUST_LOG` syntax).
    ///
    /// # Errors
    /// Fails when the directive does not parse.
    pub fn set(&self, directive: &str) -> Result<(), Error> {
        let filter = parse_filter(directive)?;
        self.0.reload(filter)?;
        Ok(())
    }
}

fn parse_filter(directive: &str) -> Result<EnvFilter, Error> {
    EnvFilter::try_new(directive).map_err(|source| Error::Filter { directive: directive.to_owned(), source })
}

/// Installs the global subscriber. `filter` is the `RUST_LOG` value, if any (read by
/// `main`, never here); without it the level is `info`.
///
/// # Errors
/// Fails on a bad filter or when a subscriber is already installed.
pub fn init(format: LogFormat, filter: Option<&str>) -> Result<LogFilterHandle, Error> {
    let filter = parse_filter(filter.unwrap_or("info"))?;
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Plain => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init()
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|_| Error::AlreadyInstalled)?;
    Ok(LogFilterHandle(handle))
}

/// For tests: a subscriber for the current thread that prints through the test
/// harness's capture, dropped with the returned guard.
pub fn trace_init() -> tracing::subscriber::DefaultGuard {
    let subscriber =
        tracing_subscriber::fmt().with_env_filter(EnvFilter::new("debug")).with_test_writer().finish();
    tracing::subscriber::set_default(subscriber)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses_both_names_and_rejects_others() {
        assert_eq!("plain".parse::<LogFormat>().unwrap(), LogFormat::Plain);
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let err = "yaml".parse::<LogFormat>().unwrap_err();
        assert_eq!(err.to_string(), r#"log format "yaml" is not one of: plain, json"#);
    }

    #[test]
    fn bad_filter_names_the_directive() {
        let err = parse_filter("info,[").unwrap_err();
        assert!(err.to_string().contains("info,["), "{err}");
    }
}
