//! Two instances on one PostgreSQL database, each with its client cache
//! and key follower (issue 14): a change through one is served by the
//! other within a second (each test prints the measured delay), and a
//! lost listening connection never lets an instance answer from a stale
//! cache. Also `--storage-pool-size`.
//!
//! Each instance names itself in the URL (`application_name`), so the
//! tests can find its listening connection (`<name> listener`) in
//! `pg_stat_activity`.

use std::io::Write as _;
use std::time::{Duration, Instant};

use tessera_shared::admin::{ClientCredentials, KeyInfo, KeyState};

use crate::postgres::fresh_database;
use crate::util::{Server, TokenCall, expect_error, expect_token, jwt_parts, pause};

/// The contract: a change through one instance is served by all within this.
const WITHIN: Duration = Duration::from_secs(1);
/// How long an instance may take to start listening after it starts.
const LISTENER_START: Duration = Duration::from_secs(15);

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

/// An instance whose connections are named `name` (its listener `name listener`).
fn instance(url: &str, name: &str, args: &[&str]) -> Server {
    let named = format!("{url}?application_name={name}");
    let mut all = vec!["--storage", named.as_str()];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    until_log_count(&server, "storage_listener_up", 1);
    server
}

/// Waits until `server`'s log holds `needle` at least `count` times.
fn until_log_count(server: &Server, needle: &str, count: usize) {
    let deadline = Instant::now() + LISTENER_START;
    while server.stderr_now().matches(needle).count() < count {
        assert!(Instant::now() < deadline, "no {needle} (#{count}) in the log:\n{}", server.stderr_now());
        pause(Duration::from_millis(10));
    }
}

/// Sends `call` to `server` until `done` accepts the answer; returns how
/// long that took. Fails past [`WITHIN`].
async fn until_within(what: &str, mut attempt: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if attempt().await {
            let took = started.elapsed();
            let _ = writeln!(std::io::stderr(), "MEASURED {what}: {took:?}");
            return took;
        }
        assert!(started.elapsed() < WITHIN, "{what}: not within {WITHIN:?}");
        pause(Duration::from_millis(1));
    }
}

fn kid_of(token: &str) -> String {
    let (header, _) = jwt_parts(token);
    header["kid"].as_str().expect("a kid").to_owned()
}

async fn status_at(server: &Server, client: &ClientCredentials) -> u16 {
    cc(client).send(server).await.status
}

/// A client revoked through one instance is refused by the other within a
/// second, and a secret rotated through one is the only one the other
/// takes within a second; re-activation and deletion travel the same way.
#[tokio::test]
async fn client_changes_through_one_instance_reach_the_other_within_a_second() {
    let Some(url) = fresh_database().await else { return };
    let a = instance(&url, "node_a", &[]);
    let b = instance(&url, "node_b", &[]);
    let client = a.create_client("cached", &[]);
    // Served by the other instance (which caches the client meanwhile).
    for _ in 0..3 {
        expect_token(&cc(&client).send(&b).await, "before the change");
    }

    a.admin_ok(&["clients", "revoke", &client.client_id]);
    until_within("revocation through one instance refused by the other", async || status_at(&b, &client).await == 401)
        .await;
    expect_error(&cc(&client).send(&b).await, 401, "invalid_client", "revoked through the other instance");

    a.admin_ok(&["clients", "reactivate", &client.client_id]);
    until_within("re-activation seen by the other", async || status_at(&b, &client).await == 200).await;

    let rotated: ClientCredentials =
        a.admin_json(&["clients", "rotate-secret", &client.client_id, "--grace", "0", "--json"]);
    until_within("secret rotation seen by the other (new secret taken)", async || status_at(&b, &rotated).await == 200)
        .await;
    expect_error(&cc(&client).send(&b).await, 401, "invalid_client", "the old secret, rotated without grace");

    a.admin_ok(&["clients", "delete", &client.client_id]);
    until_within("deletion seen by the other", async || status_at(&b, &rotated).await == 401).await;
}

/// A key rotation through one instance is served by the other within a
/// second: its tokens carry the new active key's `kid`.
#[tokio::test]
async fn a_key_rotation_reaches_the_other_instance_within_a_second() {
    let Some(url) = fresh_database().await else { return };
    let args = ["--jwks-max-age", "2", "--signing-rotate-every", "3600"];
    let a = instance(&url, "keys_a", &args);
    let b = instance(&url, "keys_b", &args);
    let client = a.create_client("keys", &[]);
    // At once, not at the first safe moment: the test is about how fast
    // the other instance follows, not about the schedule.
    a.admin_ok(&["keys", "rotate", "--now"]);
    let rotated: Vec<KeyInfo> = a.admin_json(&["keys", "list", "--json"]);
    let active = rotated.iter().find(|k| k.state == KeyState::Active).expect("an active key").kid.clone();
    until_within("key rotation served by the other instance", async || {
        kid_of(&expect_token(&cc(&client).send(&b).await, "a token from the other").access_token) == active
    })
    .await;
}

/// The listening connection of one instance is killed while new
/// connections to the database are refused, so it stays down; a client
/// revoked meanwhile through the other instance is refused at once (the
/// instance reads through while it cannot listen). Once it listens again,
/// changes travel by notification again.
#[tokio::test]
async fn a_killed_listener_never_lets_a_stale_client_through() {
    let Some(url) = fresh_database().await else { return };
    let a = instance(&url, "kill_a", &[]);
    let b = instance(&url, "kill_b", &[]);
    let database = url.rsplit_once('/').expect("a database").1.to_owned();
    let client = a.create_client("stale", &[]);
    for _ in 0..3 {
        expect_token(&cc(&client).send(&b).await, "cached at the second instance");
    }
    let admin_url = std::env::var("TESSERA_TEST_POSTGRES_URL").expect("set when fresh_database gave a URL");
    let (db, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);

    // Existing connections stay; the listener cannot come back.
    db.batch_execute(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false")).await.expect("lock out");
    let killed = db
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            &[&database, &"kill_b listener"],
        )
        .await
        .expect("terminate");
    assert_eq!(killed.len(), 1, "the second instance has one listening connection");
    until_log_count(&b, "storage_listener_down", 1);

    a.admin_ok(&["clients", "revoke", &client.client_id]);
    expect_error(&cc(&client).send(&b).await, 401, "invalid_client", "revoked while the listener was down");

    db.batch_execute(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true")).await.expect("let in");
    until_log_count(&b, "storage_listener_up", 2);
    a.admin_ok(&["clients", "reactivate", &client.client_id]);
    until_within("re-activation after the listener came back", async || status_at(&b, &client).await == 200).await;
    a.admin_ok(&["clients", "revoke", &client.client_id]);
    until_within("revocation after the listener came back", async || status_at(&b, &client).await == 401).await;
    drop(db);
    let _ = connection.await;
}

/// `--storage-pool-size 2`: 32 token requests with refresh tokens (each a
/// transaction) at once all succeed, and the instance never holds more
/// than two pooled connections, plus its listening one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pool_size_bounds_an_instances_connections() {
    const N: usize = 32;
    let Some(url) = fresh_database().await else { return };
    let server = instance(&url, "pool_a", &["--storage-pool-size", "2"]);
    let creds = server.create_client("pooled", &[]);
    let auth = crate::util::basic(&creds.client_id, &creds.client_secret);
    let http = crate::util::http();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let token_url = format!("{}?grant_type=client_credentials", server.url("/oauth2/token"));
    let mut tasks = Vec::with_capacity(N);
    for _ in 0..N {
        let (http, auth, barrier, token_url) =
            (http.clone(), auth.clone(), std::sync::Arc::clone(&barrier), token_url.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            http.post(&token_url).header("Authorization", auth).send().await.expect("the request completes").status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("the task completes"), 200);
    }
    let admin_url = std::env::var("TESSERA_TEST_POSTGRES_URL").expect("set when fresh_database gave a URL");
    let (db, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);
    let database = url.rsplit_once('/').expect("a database").1.to_owned();
    let names: Vec<String> = db
        .query("SELECT application_name FROM pg_stat_activity WHERE datname = $1", &[&database])
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let pooled = names.iter().filter(|n| *n == "pool_a").count();
    assert!((1..=2).contains(&pooled), "at most two pooled connections: {names:?}");
    assert_eq!(names.iter().filter(|n| *n == "pool_a listener").count(), 1, "{names:?}");
    drop(db);
    let _ = connection.await;
}
