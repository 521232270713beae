//! `tessera-admin`: the operator's side of a Tessera token server.
//!
//! The server serves an admin API (HTTP/1.1 with JSON bodies) on the Unix
//! socket `<data-dir>/admin.sock`; this crate talks to it.
//!
//! - [`client`]: [`client::AdminClient`], an async, typed client with one
//!   method per admin route and an error type that speaks the operator's
//!   language ("tessera-server is not running ..."). It knows nothing of
//!   terminals, so the console and the CLI share it.
//! - [`cli`]: the scriptable commands (`clients ...`, `keys list`,
//!   `tokens revoke-family`): argument definitions, one module per command
//!   group, and output formatting (tables for people, JSON for scripts).
//!
//! - [`console`]: the full-screen operator console (ratatui + crossterm),
//!   driving the same client from a background task.
//!
//! The binary (`src/main.rs`) only parses arguments, opens the console or
//! runs [`cli::run`], and turns an error into one line on stderr.

#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod console;
