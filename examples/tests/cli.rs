//! The example's command line. Also makes `cargo test --workspace` build
//! the `resource-server` binary that the end-to-end tests start.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

use std::process::Command;

#[test]
fn missing_arguments_are_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_resource-server")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jwks is required"), "{out:?}");
}

#[test]
fn an_unreadable_jwks_file_stops_it_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_resource-server"))
        .args(["--jwks", "/nonexistent/jwks.json", "--issuer", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/jwks.json"), "{out:?}");
}
