//! What can happen to the console, and what it can ask for.
//!
//! - [`Event`]: input to [`super::update::update`]: a key, a resize, the
//!   one-second tick, a reply from the admin worker.
//! - [`Request`]: what the worker should ask the server.
//! - [`Reply`]: what the worker heard back, already reduced to data and
//!   [`Failure`] (errors are turned into text on the worker side so that
//!   replies are plain values).
//! - [`Effect`]: what `update` wants done outside the state: send a request,
//!   copy to the clipboard.

use crossterm::event::KeyEvent;
use tessera_shared::admin::{AuditEvent, ClientCredentials, ClientInfo, CreateClient, KeyInfo, Stats};

use crate::client;

/// One input to the state machine.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key was pressed (key releases and repeats never get here).
    Key(KeyEvent),
    /// The terminal changed size; the next frame redraws at the new size.
    Resize,
    /// A second went by; `now` is the wall clock (seconds since the epoch).
    Tick {
        /// The wall clock, for "offline since" and relative displays.
        now: u64,
    },
    /// The admin worker answered.
    Reply(Reply),
    /// The process was asked to stop (SIGTERM, SIGHUP, input closed).
    Terminate,
}

/// What the admin worker should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Fetch the counters and the audit events after `audit_after` (the
    /// newest page when `None`); with `full`, also clients and keys.
    Poll {
        /// Whether clients and keys are fetched too.
        full: bool,
        /// The last audit sequence number already shown.
        audit_after: Option<u64>,
    },
    /// Create a client.
    Create(CreateClient),
    /// Create a client with the public key in this file (private_key_jwt):
    /// the worker reads the file, so `update` stays free of I/O.
    CreateWithKey(CreateClient, std::path::PathBuf),
    /// Give a client a new secret.
    RotateSecret {
        /// The client.
        client_id: String,
        /// Seconds the old secret keeps working.
        grace_seconds: u64,
    },
    /// Revoke a client.
    Revoke(String),
    /// Re-activate a revoked client.
    Reactivate(String),
    /// Delete a client.
    Delete(String),
    /// Revoke all refresh-token families of a client.
    RevokeFamilies(String),
    /// Rotate the signing keys: at once with `now`, else at the first safe
    /// moment (the server says when).
    RotateKeys {
        /// Rotate at once, even before every cached JWKS holds the next key.
        now: bool,
    },
    /// Take a signing key out of the JWKS at once.
    RevokeKey(String),
}

/// An admin call that failed, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The server could not be reached (as opposed to refusing).
    pub unreachable: bool,
    /// The operator-facing sentence.
    pub message: String,
}

impl From<client::Error> for Failure {
    fn from(error: client::Error) -> Self {
        let message = match &error {
            // The status tells an operator whether the route exists at all
            // (an older server answers 400 "no such admin route").
            client::Error::Api { status, .. } => format!("{error} (HTTP {})", status.as_u16()),
            _ => error.to_string(),
        };
        Self { unreachable: error.is_unreachable(), message }
    }
}

/// The data of one successful poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// All clients, when the poll was full.
    pub clients: Option<Vec<ClientInfo>>,
    /// The signing keys, when the poll was full.
    pub keys: Option<Vec<KeyInfo>>,
    /// The counters.
    pub stats: Stats,
    /// New audit events, oldest first.
    pub audit: Vec<AuditEvent>,
}

/// What the worker heard back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A poll's result.
    Polled(Result<Snapshot, Failure>),
    /// A client was created: its one-time credentials.
    Created(Result<ClientCredentials, Failure>),
    /// A secret was rotated: the new one-time credentials.
    SecretRotated(Result<ClientCredentials, Failure>),
    /// Another action ended; `Ok` holds the sentence to show.
    Done(Result<String, Failure>),
}

/// What [`super::update::update`] wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Hand a request to the worker.
    Send(Request),
    /// Put text on the terminal's clipboard (OSC 52).
    Copy(String),
}
