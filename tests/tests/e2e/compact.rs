//! `tessera-server compact` through the real binaries: what lived before a
//! compaction lives after it (client secrets, refresh tokens and their
//! rotation state, signing keys sealed under a key-encryption key), it
//! refuses to run beside a server, and it gives back the space of purged
//! refresh tokens, which sled alone never does.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_shared::admin::ClientCredentials;

use crate::util::{
    Finished, Server, TokenCall, expect_error, expect_refresh_token, expect_token, http, jwt_parts, pause,
    server_subcommand,
};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().expect("a kid").to_owned()
}

/// Bytes the files under `path` take. Sampled while the server runs, so a
/// file or directory removed between listing and reading counts as empty.
fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs `tessera-server compact` and checks its one line of report.
fn compact_ok(data_dir: &Path) -> Finished {
    let out = server_subcommand(data_dir, &["compact"], &[]);
    assert!(out.status.success(), "compact failed ({}):\nstdout: {}\nstderr: {}", out.status, out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {:?}", out.stdout);
    let expected = format!("compacted {}: ", data_dir.join("db").display());
    assert!(lines[0].starts_with(&expected) && lines[0].contains(" -> "), "the report line: {:?}", lines[0]);
    for leftover in ["db.compact-tmp", "db.old"] {
        assert!(!data_dir.join(leftover).exists(), "{leftover} is gone after a compaction");
    }
    out
}

/// Stop, compact, restart: the client secret still gets tokens, a refresh
/// token issued before still rotates, one rotated before is still spent,
/// and the signing key is the same one, still sealed.
#[tokio::test]
async fn everything_survives_a_compaction() {
    let dir = crate::util::private_tempdir();
    let data = dir.path().join("data");
    let kek = STANDARD.encode([5u8; 32]);
    let mut first = Server::builder().data_dir(&data).env("TESSERA_KEY_ENCRYPTION_KEY", &kek).start();
    let client = first.create_client("compacted", &["read"]);
    let (t1, r1) = expect_refresh_token(&cc(&client).send(&first).await, "client_credentials");
    let (_, r2) = expect_refresh_token(&refresh(&client, &r1).send(&first).await, "a rotation before compaction");
    let (_, other) = expect_refresh_token(&cc(&client).send(&first).await, "a second family");
    assert!(first.terminate().success(), "SIGTERM stops the server cleanly");

    compact_ok(&data);

    let second = Server::builder().data_dir(&data).env("TESSERA_KEY_ENCRYPTION_KEY", &kek).start();
    let t3 = expect_token(&cc(&client).send(&second).await, "the same client secret after compaction");
    assert_eq!(kid_of(&t3.access_token), kid_of(&t1.access_token), "the same signing key after compaction");
    expect_refresh_token(&refresh(&client, &r2).send(&second).await, "a refresh token issued before compaction");
    expect_refresh_token(&refresh(&client, &other).send(&second).await, "the other family's token");
    expect_error(
        &refresh(&client, &r1).send(&second).await,
        400,
        "invalid_grant",
        "a token rotated before compaction stays spent",
    );
    drop(second);

    // The private key was copied as stored: still sealed, so the server
    // refuses to start without the key-encryption key.
    let out = Server::builder().data_dir(&data).run_expecting_exit();
    assert!(!out.status.success());
    assert!(out.stderr.contains("encrypted at rest"), "{}", out.stderr);
}

/// `compact` beside a running server exits non-zero with one clear line,
/// touches nothing, and the server keeps serving.
#[tokio::test]
async fn compact_refuses_a_running_server() {
    let mut server = Server::start(&[]);
    let client = server.create_client("busy", &[]);
    let (_, rt) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");

    let out = server_subcommand(server.data_dir(), &["compact"], &[]);
    assert_eq!(out.status.code(), Some(1), "compact must fail: {}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    let errors: Vec<&str> = out.stderr_lines().into_iter().filter(|l| l.starts_with("tessera-server:")).collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains("in use by another tessera-server") && errors[0].contains("stop it before compacting"),
        "{}",
        errors[0]
    );
    assert!(!server.data_dir().join("db.compact-tmp").exists(), "no copy was started");

    assert!(server.is_running(), "the server still runs");
    expect_refresh_token(&refresh(&client, &rt).send(&server).await, "the server still rotates tokens");
    expect_token(&cc(&client).send(&server).await, "the server still issues tokens");
}

/// Refresh tokens issued per test: a count, not a time, so a slow machine
/// takes longer but grows the data dir just as much. (About 3 s in a debug
/// build on an idle machine: 1.3 KiB a token in sled, 3.9 MiB in all,
/// against the 0.5 MiB of a compacted data dir.)
const TOKENS: usize = 3000;
/// A bound on the issuing, for a broken server only.
const ISSUE_DEADLINE: Duration = Duration::from_secs(180);
/// Their lifetime: short, so the purge follows soon. Tokens that expire
/// while others are still being issued may be purged early; the peak is
/// sampled during the issuing too, so it is the real peak either way.
const REFRESH_TTL: &str = "7";

/// Issues [`TOKENS`] refresh tokens from 16 connections, sampling the size
/// of `data` meanwhile; returns the largest size seen.
async fn issue_refresh_tokens(server: &Server, client: &ClientCredentials, data: &Path) -> u64 {
    let url = format!("{}?grant_type=client_credentials", server.url("/oauth2/token"));
    let auth = crate::util::basic(&client.client_id, &client.client_secret);
    let deadline = Instant::now() + ISSUE_DEADLINE;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url, auth) = (http(), url.clone(), auth.clone());
        tasks.spawn(async move {
            for _ in 0..TOKENS / 16 {
                assert!(Instant::now() < deadline, "issuing {TOKENS} tokens took over {ISSUE_DEADLINE:?}");
                let resp = http.post(&url).header("Authorization", &auth).send().await.expect("the request completes");
                assert_eq!(resp.status(), 200, "client_credentials with a refresh token");
            }
        });
    }
    let mut peak = dir_size(data);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(issued) => issued.expect("the task completes"),
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        peak = peak.max(dir_size(data));
    }
    peak.max(dir_size(data))
}

/// Refresh-token families the server reports purged so far (its log lines).
fn purged(server: &Server) -> usize {
    server
        .stderr_now()
        .lines()
        .filter(|line| line.contains("purged dead refresh-token families"))
        .filter_map(|line| line.split_whitespace().find_map(|word| word.strip_prefix("families=")))
        .map(|count| count.parse::<usize>().expect("a count"))
        .sum()
}

/// Thousands of refresh tokens grow the data dir; once they expired and
/// were purged it stays that size, and compaction takes it well below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_gives_back_the_space_of_purged_tokens() {
    let dir = crate::util::private_tempdir();
    let data = dir.path().join("data");
    // Each grant starts a family: room for all of them, so that every one
    // is purged at its expiry instead of retired by the cap at a later start.
    let args = ["--refresh-token-ttl", REFRESH_TTL, "--purge-interval", "1", "--max-families-per-client", "100000"];
    let mut server = Server::builder().data_dir(&data).args(&args).start();
    let client = server.create_client("many", &[]);
    // sled's files grow and shrink a little as it rewrites segments: the
    // peak is the largest size seen until the purge is done.
    let mut peak = issue_refresh_tokens(&server, &client, &data).await;
    let issued = TOKENS / 16 * 16;
    let deadline = Instant::now() + Duration::from_secs(30);
    while purged(&server) < issued {
        assert!(Instant::now() < deadline, "{} of {issued} tokens purged:\n{}", purged(&server), server.stderr_now());
        pause(Duration::from_millis(200));
        peak = peak.max(dir_size(&data));
    }
    let purged_size = dir_size(&data);
    peak = peak.max(purged_size);
    assert!(server.terminate().success(), "SIGTERM stops the server cleanly");

    compact_ok(&data);
    let compacted = dir_size(&data);
    assert!(
        compacted * 2 < peak,
        "{issued} tokens: {peak} bytes at the peak, {purged_size} once purged, {compacted} after compaction"
    );

    let server = Server::builder().data_dir(&data).start();
    expect_refresh_token(&cc(&client).send(&server).await, "the client after compaction");
}
