//! The `tessera-server` binary's start-up contract: bad configuration fails
//! at once with one line, and the data-dir lock keeps a second server out.
//! (The full HTTP behaviour is tested end to end in `tests/`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera-server");

fn run(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TESSERA_CONFIG")
        .env("TESSERA_DATA_DIR", dir.join("data"))
        .output()
        .expect("the binary runs")
}

fn assert_one_line_failure(output: &std::process::Output, needle: &str) {
    assert!(!output.status.success(), "must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn invalid_values_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    assert_one_line_failure(&run(&["--access-token-ttl", "0"], dir.path()), "access_token_ttl");
    assert_one_line_failure(&run(&["--issuer", "not a url"], dir.path()), "issuer");
    assert_one_line_failure(&run(&["--access-token-ttl", "abc"], dir.path()), "--access-token-ttl");
    assert_one_line_failure(&run(&["--signing-alg", "HS256"], dir.path()), "HS256");
    assert_one_line_failure(&run(&["--no-such-flag"], dir.path()), "--no-such-flag");
}

#[test]
fn config_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nunknown_key = 1\n").unwrap();
    assert_one_line_failure(&run(&["--config", file.to_str().unwrap()], dir.path()), "tessera.toml");
    assert_one_line_failure(&run(&["--config", "/nonexistent/tessera.toml"], dir.path()), "cannot read");
}

#[test]
fn a_second_server_on_the_same_data_dir_fails_at_once() {
    // 0700: the server refuses a data dir other users can reach.
    let dir =
        tempfile::Builder::new().permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700)).tempdir().unwrap();
    let mut first = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .env("TESSERA_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(first.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");

    let started = Instant::now();
    let second =
        Command::new(BIN).args(["--listen", "127.0.0.1:0"]).env("TESSERA_DATA_DIR", dir.path()).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "it does not wait for the lock");
    assert_one_line_failure(&second, "in use");
}
