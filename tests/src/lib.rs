//! `tessera-e2e` has no library code: the end-to-end tests are one
//! integration-test binary, `tests/e2e/main.rs`, with its helpers in
//! `tests/e2e/util/`. They run the real `tessera-server` and
//! `tessera-admin` binaries, which must be built first:
//!
//! ```text
//! cargo test --workspace                  # builds everything, runs everything
//! cargo build -p tessera-server -p tessera-admin && cargo test -p tessera-e2e
//! ```
