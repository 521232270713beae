//! Several instances on one PostgreSQL database, and `migrate-storage`.
//!
//! These run when `TESSERA_TEST_POSTGRES_URL` names a PostgreSQL server on
//! which the tests may create databases (`.ci/run` starts a throw-away
//! cluster and sets it); each test gets a database of its own. Without it
//! every test here returns at once, after saying so once.

use std::sync::Once;
use std::time::{Duration, Instant};

use tessera_shared::admin::{AuditEvent, ClientCredentials, KeyInfo, KeyRotation, KeyState, RotationOutcome};

use crate::util::{
    Server, TokenCall, expect_error, expect_refresh_token, expect_token, jwks, jwt_parts, pause, race_refreshes,
};

const TEST_URL_ENV: &str = "TESSERA_TEST_POSTGRES_URL";
/// How long a key change through one instance may take to be served by
/// another: a notification takes milliseconds (`postgres_cache` holds it to
/// a second); the rest is slack for a busy machine.
const KEY_PROPAGATION: Duration = Duration::from_secs(15);

static SKIP_NOTICE: Once = Once::new();

/// A URL of a new, empty database on the test server, or `None` (said
/// once on stderr, past the harness's capture) when none is configured.
pub(crate) async fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var(TEST_URL_ENV) else {
        SKIP_NOTICE.call_once(|| {
            crate::util::skip_or_fail(
                crate::util::Requirement::Postgres,
                "the multi-instance PostgreSQL tests",
                &format!("{TEST_URL_ENV} is unset (.ci/run sets it)"),
            );
        });
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);
    let mut suffix = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix).expect("random");
    let name = format!("e2e_{}", suffix.iter().map(|b| format!("{b:02x}")).collect::<String>());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
    drop(client);
    let _ = connection.await;
    let (base, _) = url.rsplit_once('/').expect("the URL names a database");
    Some(format!("{base}/{name}"))
}

fn start_on(url: &str, args: &[&str]) -> Server {
    let mut all = vec!["--storage", url];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// Two instances started at once on an empty database (both race to create
/// the schema and the first keys).
fn start_pair(url: &str, args: &[&str]) -> (Server, Server) {
    std::thread::scope(|scope| {
        let a = scope.spawn(|| start_on(url, args));
        let b = scope.spawn(|| start_on(url, args));
        (a.join().expect("first instance starts"), b.join().expect("second instance starts"))
    })
}

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

fn kid_of(token: &str) -> String {
    let (header, _) = jwt_parts(token);
    header["kid"].as_str().expect("a kid").to_owned()
}

fn key_list(server: &Server) -> Vec<KeyInfo> {
    server.admin_json(&["keys", "list", "--json"])
}

fn audit(server: &Server) -> Vec<AuditEvent> {
    let stdout = server.admin_ok(&["audit", "--json"]);
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Two instances share one issuer: a refresh token issued by one is
/// refreshed at the other, a client revoked through one is refused by the
/// other, and both serve one JWKS and one audit trail.
#[tokio::test]
async fn two_instances_share_clients_tokens_keys_and_audit() {
    let Some(url) = fresh_database().await else { return };
    let (a, b) = start_pair(&url, &[]);
    assert_eq!(jwks(&a).await, jwks(&b).await, "both instances serve the same JWKS");

    let client = a.create_client("shared", &[]);
    let (_, rt) = expect_refresh_token(&cc(&client).send(&a).await, "client_credentials at the first instance");
    let (token, rt2) = expect_refresh_token(&refresh(&client, &rt).send(&b).await, "refresh at the second instance");
    assert_eq!(kid_of(&token.access_token), kid_of(&expect_token(&cc(&client).send(&a).await, "cc").access_token));
    // The first instance sees the rotation made by the second: the old token is reuse.
    expect_error(
        &refresh(&client, &rt).send(&a).await,
        400,
        "invalid_grant",
        "the rotated token at the first instance",
    );
    expect_error(&refresh(&client, &rt2).send(&a).await, 400, "invalid_grant", "its family was revoked for the reuse");

    // Revoked through the second instance, refused by the first.
    b.admin_ok(&["clients", "revoke", &client.client_id]);
    expect_error(&cc(&client).send(&a).await, 401, "invalid_client", "client revoked through the other instance");

    // One audit trail, whichever instance is asked.
    let kinds = |events: Vec<AuditEvent>| -> Vec<String> { events.iter().map(|e| format!("{:?}", e.kind)).collect() };
    let from_a = kinds(audit(&a));
    assert_eq!(from_a, kinds(audit(&b)), "both instances list the same trail");
    assert!(from_a.iter().any(|k| k == "ClientCreated"), "{from_a:?}");
    assert!(from_a.iter().any(|k| k == "ClientRevoked"), "{from_a:?}");
}

/// 32 concurrent refreshes of one token, alternating between the two
/// instances: exactly one 200, every other 400 `invalid_grant`, and the
/// reuse revokes the winner's successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_refreshes_across_two_instances_have_one_winner() {
    const N: usize = 32;
    let Some(url) = fresh_database().await else { return };
    let (a, b) = start_pair(&url, &[]);
    let client = a.create_client("race", &[]);
    let (_, rt) = expect_refresh_token(&cc(&client).send(&b).await, "client_credentials");

    let winner = race_refreshes(&[&a, &b], &client, &rt, N).await;
    let (_, successor) = expect_refresh_token(&winner, "the winner");
    expect_error(&refresh(&client, &successor).send(&a).await, 400, "invalid_grant", "successor at the first");
    expect_error(&refresh(&client, &successor).send(&b).await, 400, "invalid_grant", "successor at the second");
}

/// A rotation through one instance's admin socket is served by the other:
/// its JWKS and its signatures follow.
#[tokio::test]
async fn a_key_rotation_through_one_instance_reaches_the_other() {
    let Some(url) = fresh_database().await else { return };
    let (a, b) = start_pair(&url, &["--jwks-max-age", "2", "--signing-rotate-every", "3600"]);
    let before = key_list(&b);
    let next = before.iter().find(|k| k.state == KeyState::Next).expect("a next key").kid.clone();

    // Fresh keys: the rotation is scheduled, and performed by itself.
    let rotation: KeyRotation = a.admin_json(&["keys", "rotate", "--json"]);
    assert_eq!(rotation.outcome, RotationOutcome::Scheduled, "{rotation:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let rotated = loop {
        let now = key_list(&a);
        if now.iter().any(|k| k.state == KeyState::Active && k.kid == next) {
            break now;
        }
        assert!(Instant::now() < deadline, "the scheduled rotation did not happen within 20 s: {now:?}");
        pause(Duration::from_millis(200));
    };
    let active = rotated.iter().find(|k| k.state == KeyState::Active).expect("an active key").kid.clone();
    assert_eq!(active, next, "the published next key signs");
    let served_by_a = jwks(&a).await;

    let client = a.create_client("keys", &[]);
    let deadline = Instant::now() + KEY_PROPAGATION;
    loop {
        let token = expect_token(&cc(&client).send(&b).await, "a token from the second instance");
        if jwks(&b).await == served_by_a && kid_of(&token.access_token) == active {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second instance did not follow the rotation within {KEY_PROPAGATION:?}"
        );
        pause(Duration::from_millis(200));
    }
    assert_eq!(
        key_list(&b).iter().map(|k| (&k.kid, k.state)).collect::<Vec<_>>(),
        rotated.iter().map(|k| (&k.kid, k.state)).collect::<Vec<_>>()
    );
    // Right after a rotation the new next key is too fresh, whichever
    // instance is asked: the other one schedules rather than rotating.
    let out = b.admin(&["keys", "rotate"]);
    assert!(out.status.success() && out.stdout.starts_with("Rotation scheduled for "), "{}", out.stdout);
}

/// `migrate-storage` moves a sled installation: the client's secret, its
/// refresh token, the signing keys and the audit trail all work from
/// PostgreSQL; a second migration into the now non-empty database is refused.
#[tokio::test]
async fn migrate_storage_moves_a_sled_installation() {
    let Some(url) = fresh_database().await else { return };
    let data = crate::util::private_tempdir();
    let mut sled = Server::builder().data_dir(data.path()).start();
    let client = sled.create_client("moving", &[]);
    let (token, rt) = expect_refresh_token(&cc(&client).send(&sled).await, "client_credentials on sled");
    let keys_before = jwks(&sled).await;
    let trail_before = audit(&sled);
    assert!(sled.terminate().success());

    let run = |to: &str| {
        Server::builder()
            .data_dir(data.path())
            .without_listen_flag()
            .args(&["migrate-storage", "--from", &data.path().display().to_string(), "--to", to])
            .run_expecting_exit()
    };
    let out = run(&url);
    assert!(out.status.success(), "migrate-storage failed: {}", out.stderr);
    assert!(out.stdout.contains("migrated 1 clients, 1 refresh-token families,"), "{}", out.stdout);

    let pg = start_on(&url, &[]);
    assert_eq!(jwks(&pg).await, keys_before, "the same keys are served");
    let again = expect_token(&cc(&client).send(&pg).await, "the client's secret works after the move");
    assert_eq!(kid_of(&again.access_token), kid_of(&token.access_token));
    expect_refresh_token(&refresh(&client, &rt).send(&pg).await, "the refresh token works after the move");
    let trail_after = audit(&pg);
    assert_eq!(trail_after[..trail_before.len()], trail_before[..], "the trail moved with its numbers");

    let out = run(&url);
    assert!(!out.status.success(), "a second migration into a used database must fail");
    assert!(out.stderr.contains("migrate into an empty one"), "{}", out.stderr);
    let out = run("sled:nowhere");
    assert!(!out.status.success() && out.stderr.contains("postgres://"), "{}", out.stderr);
}

/// `TESSERA_LOG=debug` with PostgreSQL (issue 13, item 5): tokio-postgres
/// would log every query parameter at debug, the stored signing keys and
/// the secret-hashing key among them. The libraries are held at info, so
/// the log holds no line of theirs below info and none of the key bytes,
/// while the server's own debug lines are there.
#[tokio::test]
async fn debug_logging_on_postgres_writes_no_key_material() {
    let Some(url) = fresh_database().await else { return };
    let mut server = Server::builder().args(&["--storage", &url]).env("TESSERA_LOG", "debug").start();
    let client = server.create_client("logged", &[]);
    let (_, rt) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");
    expect_refresh_token(&refresh(&client, &rt).send(&server).await, "refresh");
    server.terminate();
    let (_, log) = server.output();

    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for row in db.query("SELECT name, value FROM tessera_meta", &[]).await.expect("meta") {
        secrets.push((format!("meta {}", row.get::<_, String>(0)), row.get(1)));
    }
    for row in db.query("SELECT kid, record FROM signing_keys", &[]).await.expect("keys") {
        secrets.push((format!("signing key {}", row.get::<_, String>(0)), row.get(1)));
    }
    drop(db);
    let _ = connection.await;
    assert!(secrets.iter().any(|(what, _)| what == "meta client_secret_hmac_key"), "{secrets:?}");
    assert!(secrets.iter().filter(|(what, _)| what.starts_with("signing key")).count() >= 2);

    for line in log.lines() {
        let library = ["tokio_postgres", "postgres", "hyper", "rustls", "reqwest"]
            .iter()
            .any(|lib| line.contains(&format!(" {lib}:")) || line.contains(&format!(" {lib}::")));
        let verbose = line.contains(" DEBUG ") || line.contains(" TRACE ");
        assert!(!(library && verbose), "a library's debug line: {line}");
    }
    assert!(log.contains("DEBUG tessera_server"), "the server's own debug lines are logged:\n{log}");
    for (what, bytes) in &secrets {
        // tokio-postgres writes a byte parameter as `[48, 129, ...]`; also
        // look for the hex and base64 forms of the first 16 bytes.
        let head = &bytes[..bytes.len().min(16)];
        let debug = format!("{head:?}");
        let debug = debug.trim_end_matches(']');
        let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(head);
        for form in [debug, hex.as_str(), &b64[..20]] {
            assert!(!log.contains(form), "{what} reached the log as {form}");
        }
    }
}

/// Issue 16: a client's token policy is stored on PostgreSQL too: created
/// through one instance, applied by the other.
#[tokio::test]
async fn a_clients_token_policy_is_shared_by_both_instances() {
    let Some(url) = fresh_database().await else { return };
    let (a, b) = start_pair(&url, &[]);
    let client =
        crate::token_policy::create_with_policy(&a, "pg-policy", Some(42), &["https://x.test", "https://y.test"]);
    let resp = cc(&client).q("resource", "https://y.test").send(&b).await;
    let token = expect_token(&resp, "resource at the second instance");
    assert_eq!(token.expires_in, 42);
    let (_, claims) = jwt_parts(&token.access_token);
    assert_eq!(claims["aud"], "https://y.test");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 42);
    expect_error(&cc(&client).q("resource", "https://z.test").send(&b).await, 400, "invalid_target", "foreign");
    let shown: tessera_shared::admin::ClientInfo = b.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!((shown.access_token_ttl_seconds, shown.audiences.len()), (Some(42), 2));
}
