//! Logging: tracing to stderr, filtered by `TESSERA_LOG` (default `info`),
//! as text or JSON lines. stdout carries only the `listening on` line.
//!
//! Nothing that reaches a log line holds a secret or a token: the access
//! log records method, route, status, grant type, client ID and latency,
//! never a query string or a header. Access lines are batched
//! ([`batched`]); everything else is written at once.

use std::io::IsTerminal as _;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// The environment variable with the log filter.
pub const LOG_ENV: &str = "TESSERA_LOG";

/// Libraries held at `info` whatever `TESSERA_LOG` says, unless
/// `log_dependencies` is set: at `debug` tokio-postgres writes every query
/// parameter (private signing keys, the secret-hashing key) and the HTTP and
/// TLS stacks write connection details.
pub const PINNED_TARGETS: &[&str] =
    &["tokio_postgres", "postgres", "deadpool_postgres", "hyper", "hyper_util", "rustls", "tokio_rustls", "reqwest"];

/// Whether an event or span at `metadata` may be logged when the libraries
/// are pinned: anything of ours, and a library's at `info` or above.
pub fn allowed_when_pinned(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO || !is_pinned(metadata.target())
}

/// Whether `target` belongs to one of [`PINNED_TARGETS`].
fn is_pinned(target: &str) -> bool {
    PINNED_TARGETS
        .iter()
        .any(|pinned| target.strip_prefix(pinned).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")))
}

/// Installs the global subscriber. Keep the guard until the process ends:
/// dropping it writes out the batched access lines. Unless `log_dependencies`,
/// the libraries of [`PINNED_TARGETS`] log at `info` at most.
#[must_use]
pub fn init(format: LogFormat, log_dependencies: bool) -> FlushGuard {
    let (writer, guard) = batched::batched_stderr();
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal who has not asked for none.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(colour).with_target(true);
    let pin = FilterFn::new(move |metadata| log_dependencies || allowed_when_pinned(metadata));
    match format {
        LogFormat::Text => drop(builder.finish().with(pin).try_init()),
        LogFormat::Json => drop(builder.json().flatten_event(true).finish().with(pin).try_init()),
    }
    if !log_dependencies {
        tracing::debug!(
            libraries = ?PINNED_TARGETS,
            "library log levels held at info: at debug they would log query parameters (key records); \
             --log-dependencies true lifts this"
        );
    }
    guard
}

pub mod batched;

pub use batched::FlushGuard;

#[cfg(test)]
mod tests;
