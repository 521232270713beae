//! Helpers shared by every end-to-end test.
//!
//! - [`process`]: [`Server`] / [`ServerBuilder`], a `tessera-server` child
//!   process on a temporary data dir, killed when dropped, its stdout and
//!   stderr drained by threads and kept whole for the log tests; the admin
//!   CLI (`tessera-admin --data-dir <dir> ...`).
//! - [`http`]: [`TokenCall`], one request to `POST /oauth2/token` through
//!   reqwest, and [`Resp`], the response as the checks see it.
//! - [`jose`]: [`ClientKey`], client assertions (private_key_jwt) built by
//!   hand, independently of the server's code.
//! - [`raw`]: [`raw_exchange`], one request over a raw TCP connection.
//! - [`checks`]: [`expect_token`], [`check_error`], [`Cases`], JWT helpers.
//! - [`dpop`]: [`DpopKey`], DPoP proofs made independently of the server.
//! - [`skip`]: [`skip_or_fail`], for a test whose tool is missing.
//!
//! Every wait is bounded: a broken binary fails a test, it never hangs it.

use std::time::Duration;

mod checks;
mod dpop;
mod http;
mod jose;
mod process;
mod raw;
mod skip;

pub use checks::*;
pub use dpop::*;
pub use http::*;
pub use jose::*;
pub use process::*;
pub use raw::*;
pub use skip::*;

/// How long a server may take to print its `listening on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process may take to exit once it should (signal, bad config,
/// data dir in use, a CLI command).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound on any single HTTP exchange.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `WWW-Authenticate` value of every 401.
pub const WWW_AUTHENTICATE: &str = r#"Basic realm="tessera""#;
