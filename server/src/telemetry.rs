//! Logging: tracing to stderr, filtered by `TESSERA_LOG` (default `info`),
//! as text or JSON lines. stdout carries only the `listening on` line.
//!
//! Nothing that reaches a log line holds a secret or a token: the access
//! log records method, route, status, grant type, client ID and latency,
//! never a query string or a header. Access lines are batched
//! ([`batched`]); everything else is written at once.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The environment variable with the log filter.
pub const LOG_ENV: &str = "TESSERA_LOG";

/// Installs the global subscriber. Keep the guard until the process ends:
/// dropping it writes out the batched access lines.
#[must_use]
pub fn init(format: LogFormat) -> FlushGuard {
    let (writer, guard) = batched::batched_stderr();
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal who has not asked for none.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(colour).with_target(true);
    match format {
        LogFormat::Text => drop(builder.try_init()),
        LogFormat::Json => drop(builder.json().flatten_event(true).try_init()),
    }
    guard
}

pub mod batched;

pub use batched::FlushGuard;
