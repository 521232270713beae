//! End-to-end tests of Tessera: the real `tessera-server` and `tessera-admin`
//! binaries, started as separate processes on temporary data directories and
//! spoken to over HTTP on 127.0.0.1 (reqwest, `curl` when installed, and raw
//! TCP for bytes no well-behaved client would send).
//!
//! One integration-test binary (as ripgrep does it), one module per concern:
//!
//! - [`util`]: starting and stopping the binaries, HTTP and raw-TCP helpers,
//!   and the checks every token-endpoint answer goes through.
//! - [`seed_examples`]: the four curl examples of the Blynk page, as written,
//!   plus their RFC 6749 form-body variants.
//! - [`token_errors`]: every error of the token endpoint, with status, code
//!   and headers.
//! - [`token_policy`]: a client's own access-token lifetime and audiences,
//!   RFC 8707 `resource` and `invalid_target`.
//! - [`dpop`]: DPoP (RFC 9449): bound tokens, refused proofs,
//!   `--require-dpop`, and the example resource server with proofs.
//! - [`refresh`]: rotation, reuse detection, expiry, scope narrowing and the
//!   32-way race.
//! - [`clients`]: what the admin CLI does to a client, seen from the token
//!   endpoint.
//! - [`console`]: the operator console in a real pseudo-terminal (tmux).
//! - [`audit`]: the audit trail through `tessera-admin audit`.
//! - [`keys`]: RS256 and EdDSA servers, key rotation on demand and on
//!   schedule, import, `export-jwks`, keys encrypted at rest, secret expiry.
//! - [`jwt`]: the access token, the JWKS, the metadata document and offline
//!   verification.
//! - [`private_key_jwt`]: clients with public keys and no secret, client
//!   assertions (RFC 7523) built by the tests' own JOSE code, every bad case,
//!   the replay set across a restart, `set-keys` rotation.
//! - [`revoke_introspect`]: revocation (RFC 7009) and introspection (RFC 7662).
//! - [`resource_servers`]: interoperability with an independent JOSE
//!   implementation, the JWKS's ETag, the example resource server and
//!   `tessera-admin verify`.
//! - [`config`]: flags, environment variables, the TOML file and their errors.
//! - [`compact`]: `tessera-server compact`: what lives survives it, it
//!   refuses a running server, and it gives back the space of purged tokens.
//! - [`data_dir`]: a data dir other users can reach is refused; what the
//!   server creates in it is private.
//! - [`durability`]: `kill -9` and restart, a second server on the same data
//!   dir, graceful shutdown.
//! - [`journal_failure`]: a journal segment that cannot be deleted stops
//!   writes; the restart refuses while it stands and rolls nothing back.
//! - [`logs`]: no secret or token ever reaches the server's output.
//! - [`hostile_input`]: malformed requests over raw TCP never get a 5xx;
//!   property tests through the real handler.
//! - [`limits`]: each configurable bound, set low.
//! - [`ratelimit`]: failed-authentication limiting from several loopback
//!   addresses.
//! - [`tls`]: HTTPS, certificate reload on SIGHUP.
//! - [`metrics`]: `GET /metrics` after a known sequence.
//! - [`postgres`]: two instances on one PostgreSQL database, and
//!   `migrate-storage` (when `TESSERA_TEST_POSTGRES_URL` is set).
//! - [`postgres_cache`]: each instance's client cache and key follower: a
//!   change through one reaches the other within a second; a killed
//!   listening connection lets no stale client through.
//! - [`storage_format`]: a data dir of an older storage format is refused
//!   with one line; a fresh one starts.
//! - [`postgres_tls`]: TLS to PostgreSQL on a cluster of its own started
//!   with `ssl=on` (`sslmode`, `sslrootcert`, a wrong CA, plaintext refused).
//!
//! The binaries are looked up next to this test executable
//! (`target/<profile>/`); `cargo test --workspace` builds them, and
//! `cargo build -p tessera-server -p tessera-admin` does so explicitly.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod util;

mod audit;
mod clients;
mod compact;
mod config;
mod console;
mod data_dir;
mod dpop;
mod durability;
mod hostile_input;
mod journal_failure;
mod jwt;
mod keys;
mod limits;
mod logs;
mod metrics;
mod postgres;
mod postgres_cache;
mod postgres_tls;
mod private_key_jwt;
mod ratelimit;
mod refresh;
mod resource_servers;
mod revoke_introspect;
mod seed_examples;
mod storage_format;
mod tls;
mod token_errors;
mod token_policy;
