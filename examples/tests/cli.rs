//! The example's command line. Also makes `cargo test --workspace` build
//! the `resource-server` binary that the end-to-end tests start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test fails by panicking; it compares with the system clock the binary reads"
)]

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

/// `dpop-proof` makes a key file once (mode 0600) and proofs the shared
/// crate's checker accepts, bound to that key's thumbprint.
#[test]
fn dpop_proof_makes_proofs_the_checker_accepts() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client.key");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dpop-proof")).arg("--key").arg(&key).args(args).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let url = "http://127.0.0.1:8080/oauth2/token";
    let proof = run(&["--method", "POST", "--url", url]);
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let thumbprint = run(&["--thumbprint"]);
    let checker = tessera_shared::dpop::ProofChecker::new(10, 60);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let checked = checker.check(&proof, "POST", url, None, now).unwrap();
    assert_eq!(checked.jkt(), thumbprint, "the same key across runs");
    let with_ath = run(&["--method", "GET", "--url", url, "--access-token", "tok"]);
    assert!(checker.check(&with_ath, "GET", url, Some("tok"), now).is_ok());
}
