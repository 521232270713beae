//! The scriptable half of `tessera-admin`: one subcommand, one admin call,
//! its answer printed, no prompts.
//!
//! - [`args`]: the command line (clap derive).
//! - [`clients`], [`keys`], [`tokens`], [`audit`]: what each command group does.
//! - [`verify`]: offline verification of an access token (no admin call).
//! - [`output`]: turning answers into tables, `key: value` lines or JSON.
//!
//! Commands write to the `out` they are given rather than to stdout, so that
//! tests can capture it; errors come back as [`Error`] and the binary prints
//! them as its one line on stderr.

use std::io::{self, Write};

use crate::client::{self, AdminClient};

pub mod args;
pub mod audit;
pub mod clients;
pub mod keys;
pub mod output;
pub mod tokens;
pub mod verify;

pub use args::Args;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The admin call failed.
    #[error(transparent)]
    Admin(#[from] client::Error),

    /// The answer could not be written out (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),

    /// A new secret exists on the server but could not be printed. Said
    /// loudly, because no one can ever read that secret again.
    #[error(
        "client {client_id} has a new secret, but it could not be printed ({source}); \
         get another with `tessera-admin clients rotate-secret {client_id}`"
    )]
    SecretNotShown {
        /// The client whose secret is lost.
        client_id: String,
        /// Why printing failed.
        #[source]
        source: io::Error,
    },

    /// A file named on the command line could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Input {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `verify`: the keys could not be loaded, or the arguments do not say
    /// what to check against.
    #[error("{0}")]
    VerifySetup(String),

    /// `verify`: the token failed a check.
    #[error("the token is not valid: {0} (failed check: {1})")]
    InvalidToken(tessera_shared::verify::VerifyError, &'static str),

    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),

    /// No subcommand, and the console cannot open (the binary opens it
    /// before ever calling [`run`] when it can).
    #[error("no command given and no terminal for the console; see `tessera-admin --help`")]
    NoCommand,

    /// `audit --follow` lost the server.
    #[error("the server went away while following the audit trail: {0}")]
    ServerGone(#[source] client::Error),

    /// The console failed (terminal I/O).
    #[error("console: {0}")]
    Console(#[source] io::Error),
}

impl Error {
    /// The process exit code for this error. Usage errors never get here:
    /// clap exits with 2 for them itself.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoCommand => 2,
            _ => 1,
        }
    }
}

/// Runs the command in `args`, writing its output to `out`.
///
/// # Errors
///
/// [`Error::Admin`] when the server cannot be reached or refuses the
/// request, [`Error::Output`] or [`Error::SecretNotShown`] when writing to
/// `out` fails.
pub async fn run(args: Args, out: &mut dyn Write) -> Result<(), Error> {
    let client = AdminClient::new(args.global.socket_path());
    match args.command {
        None => Err(Error::NoCommand),
        Some(args::Command::Clients(command)) => clients::run(&client, command, out).await,
        Some(args::Command::Keys(command)) => keys::run(&client, command, out).await,
        Some(args::Command::Tokens(command)) => tokens::run(&client, command, out).await,
        Some(args::Command::Audit { json, follow, last }) => {
            audit::run(&client, audit::Options { json, follow, last }, out).await
        }
        Some(args::Command::Verify(command)) => verify::run(command, out).await,
    }
}

/// Writes `text` and flushes, so that a failure shows up here and not
/// silently at exit.
fn emit(out: &mut dyn Write, text: &str) -> io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// [`emit`] for text that carries no secret.
fn print(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    emit(out, text).map_err(Error::Output)
}

/// `value` as JSON, through [`print`].
fn print_json<T: serde::Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<(), Error> {
    let text = output::json(value).map_err(|e| Error::Output(e.into()))?;
    print(out, &text)
}
