//! Durability and process life: `kill -9` right after a response, or in
//! the middle of concurrent rotations, loses nothing it promised (the
//! storage journal is replayed), a crash leaves nothing that blocks a restart, a
//! second server on the same data dir fails at once, SIGTERM and SIGINT
//! shut down cleanly with exit 0.

use tessera_shared::admin::{ClientCredentials, ClientInfo, ClientStatus, KeyInfo, KeyState};
use tessera_shared::verify::Verifier;

use crate::util::{Server, TokenCall, expect_error, expect_refresh_token, get, jwks, jwt_parts};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

fn on(dir: &tempfile::TempDir) -> Server {
    Server::builder().data_dir(dir.path()).start()
}

fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().expect("a kid").to_owned()
}

/// After `kill -9` right after a refresh: the client, the last refresh
/// token, the signing key (same kid) survive; the rotated token stays
/// rotated; the admin socket left by the crash does not block the restart.
#[tokio::test]
async fn kill9_after_refresh_loses_nothing() {
    let dir = crate::util::private_tempdir();
    let mut first = on(&dir);
    let client = first.create_client("durable", &["read"]);
    let (t1, r1) = expect_refresh_token(&cc(&client).send(&first).await, "client_credentials");
    let kid = kid_of(&t1.access_token);
    let keys_before: Vec<KeyInfo> = first.admin_json(&["keys", "list", "--json"]);
    let (_, r2) = expect_refresh_token(&refresh(&client, &r1).send(&first).await, "refresh");
    let old_issuer = first.base.clone();
    first.kill9();
    drop(first);

    let second = on(&dir);
    let list: Vec<ClientInfo> = second.admin_json(&["clients", "list", "--json"]);
    assert!(list.iter().any(|c| c.client_id == client.client_id), "the client survived: {list:?}");
    let keys_after: Vec<KeyInfo> = second.admin_json(&["keys", "list", "--json"]);
    let active = |keys: &[KeyInfo]| keys.iter().find(|k| k.state == KeyState::Active).map(|k| k.kid.clone());
    assert_eq!(active(&keys_after), active(&keys_before), "the active key survived");

    let served = jwks(&second).await;
    assert!(served.find(&kid).is_some(), "the signing key {kid} is still published");
    Verifier::new(served, old_issuer.clone(), old_issuer)
        .verify(&t1.access_token)
        .expect("a token signed before the crash verifies with the JWKS after it");

    let (t3, _) =
        expect_refresh_token(&refresh(&client, &r2).send(&second).await, "the last refresh token after kill -9");
    assert_eq!(kid_of(&t3.access_token), kid, "the same key signs after the restart");
    expect_error(&refresh(&client, &r1).send(&second).await, 400, "invalid_grant", "the rotated token stays rotated");

    second.create_client("after-crash", &[]);
}

/// `kill -9` right after the client_credentials grant: its refresh token works.
#[tokio::test]
async fn kill9_right_after_client_credentials() {
    let dir = crate::util::private_tempdir();
    let mut first = on(&dir);
    let client = first.create_client("fresh", &[]);
    let (_, rt) = expect_refresh_token(&cc(&client).send(&first).await, "client_credentials");
    first.kill9();
    drop(first);

    let second = on(&dir);
    expect_refresh_token(&refresh(&client, &rt).send(&second).await, "the refresh token after kill -9");
}

/// Admin changes are durable once the CLI reports success: a rotated
/// secret, a revocation, a deletion.
#[tokio::test]
async fn admin_changes_survive_kill9() {
    let dir = crate::util::private_tempdir();
    let mut first = on(&dir);
    let rotated = first.create_client("rotated", &[]);
    let revoked = first.create_client("revoked", &[]);
    let deleted = first.create_client("deleted", &[]);
    let new: ClientCredentials = first.admin_json(&["clients", "rotate-secret", &rotated.client_id, "--json"]);
    first.admin_ok(&["clients", "revoke", &revoked.client_id]);
    first.admin_ok(&["clients", "delete", &deleted.client_id]);
    first.kill9();
    drop(first);

    let second = on(&dir);
    expect_error(&cc(&rotated).send(&second).await, 401, "invalid_client", "the old secret after restart");
    let renewed = ClientCredentials { client_secret: new.client_secret.clone(), ..rotated.clone() };
    expect_refresh_token(&cc(&renewed).send(&second).await, "the rotated secret after restart");
    expect_error(&cc(&revoked).send(&second).await, 401, "invalid_client", "the revoked client after restart");
    let shown: ClientInfo = second.admin_json(&["clients", "show", &revoked.client_id, "--json"]);
    assert_eq!(shown.status, ClientStatus::Revoked);
    expect_error(&cc(&deleted).send(&second).await, 401, "invalid_client", "the deleted client after restart");
    assert!(
        !second.admin(&["clients", "show", &deleted.client_id]).status.success(),
        "the deleted client stays deleted"
    );
}

/// A second server on a data dir in use exits at once, non-zero, saying
/// so, and leaves the first one (and its admin socket) alone.
#[tokio::test]
async fn second_server_on_same_data_dir_fails_fast() {
    let mut first = Server::start(&[]);
    let out = Server::builder().data_dir(first.data_dir()).run_expecting_exit();
    assert!(!out.status.success(), "the second server must fail: {}", out.stderr);
    assert!(!out.stdout.contains("listening on"), "the second server must not listen: {}", out.stdout);
    assert!(out.stderr.to_lowercase().contains("in use"), "the message says the data dir is in use: {:?}", out.stderr);

    assert!(first.is_running(), "the first server still runs");
    assert_eq!(get(&first, "/healthz").await.status, 200, "the first server still serves");
    let client = first.create_client("still-there", &[]);
    expect_refresh_token(&cc(&client).send(&first).await, "the first server still issues tokens");
}

async fn signal_exits_zero_and_data_survives(signal: &str) {
    let dir = crate::util::private_tempdir();
    let mut first = on(&dir);
    let client = first.create_client("graceful", &[]);
    let (_, rt) = expect_refresh_token(&cc(&client).send(&first).await, "client_credentials");
    first.signal(signal);
    let status = first.wait_exit(crate::util::EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "SIG{signal} gives exit 0, got {status}; stderr:\n{}", first.output().1);
    drop(first);
    // A clean stop checkpoints the storage journal: nothing to replay.
    let journal: Vec<_> = std::fs::read_dir(dir.path().join("db.journal"))
        .expect("the journal directory")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert!(journal.is_empty(), "segments left after SIG{signal}: {journal:?}");

    let second = on(&dir);
    expect_refresh_token(&refresh(&client, &rt).send(&second).await, "after a graceful restart");
}

/// SIGTERM: graceful, exit 0, data intact.
#[tokio::test]
async fn sigterm_exits_zero() {
    signal_exits_zero_and_data_survives("TERM").await;
}

/// SIGINT: graceful, exit 0, data intact.
#[tokio::test]
async fn sigint_exits_zero() {
    signal_exits_zero_and_data_survives("INT").await;
}

/// The admin socket is `<data-dir>/admin.sock`, readable by its owner only.
#[tokio::test]
async fn admin_socket_is_private() {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let server = Server::start(&[]);
    let meta = std::fs::metadata(server.data_dir().join("admin.sock")).expect("<data-dir>/admin.sock exists");
    assert!(meta.file_type().is_socket(), "admin.sock is a Unix socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "admin.sock has mode 0600");
}

/// SIGTERM while a request is in flight (its body half sent): the request
/// still completes with a token, new connections are refused, the server
/// exits 0, and the refresh token it answered with works after a restart.
#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    use std::io::Write as _;
    use std::time::{Duration, Instant};

    let dir = crate::util::private_tempdir();
    let mut first = on(&dir);
    let client = first.create_client("in-flight", &[]);
    let body = b"grant_type=client_credentials";
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        first.addr,
        crate::util::basic(&client.client_id, &client.client_secret),
        body.len()
    );
    let mut conn = std::net::TcpStream::connect(first.addr).expect("connect");
    conn.write_all(head.as_bytes()).expect("the head");
    // Once the server asks for the body, the request is in flight.
    crate::util::await_continue(&mut conn).expect("the server reads the body");
    conn.set_read_timeout(Some(crate::util::HTTP_TIMEOUT)).expect("timeout");
    conn.write_all(&body[..10]).expect("part of the body");

    first.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.stderr_now().contains("SIGTERM received") {
        assert!(Instant::now() < deadline, "SIGTERM not noticed:\n{}", first.stderr_now());
        crate::util::pause(Duration::from_millis(20));
    }
    // The server says when it has closed its listener. (Probing the port
    // instead would be fooled by another test's server taking it over.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.stderr_now().contains("stopped accepting connections") {
        assert!(Instant::now() < deadline, "the listener was not closed after SIGTERM:\n{}", first.stderr_now());
        crate::util::pause(Duration::from_millis(20));
    }
    assert!(first.is_running(), "the server waits for the request in flight");

    conn.write_all(&body[10..]).expect("the rest of the body");
    let resp = crate::util::read_response(&mut conn).expect("the in-flight request gets its response");
    let (_, rt) = expect_refresh_token(&resp, "the request in flight at SIGTERM");
    let status = first.wait_exit(crate::util::EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "exit 0 after draining; stderr:\n{}", first.output().1);
    drop(first);

    let second = on(&dir);
    expect_refresh_token(&refresh(&client, &rt).send(&second).await, "the in-flight answer's refresh token");
}

/// Rotates `refresh_token` over and over at `url` until a request fails
/// (the server was killed) or `rounds` are done, appending every refresh
/// token the server answered with to `acknowledged`, in order.
async fn rotate_until_killed(
    url: String,
    authorization: String,
    mut refresh_token: String,
    acknowledged: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    rounds: usize,
) -> usize {
    let client = crate::util::http();
    for round in 0..rounds {
        let sent = client
            .post(&url)
            .header("Authorization", &authorization)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())])
            .send()
            .await;
        let Ok(response) = sent else { return round };
        if response.status() != 200 {
            return round;
        }
        let Ok(body) = response.json::<serde_json::Value>().await else { return round };
        let next = body["refresh_token"].as_str().expect("a 200 carries a refresh token").to_owned();
        refresh_token.clone_from(&next);
        acknowledged.lock().expect("not poisoned").push(next);
    }
    rounds
}

/// `kill -9` while many refresh rotations are in flight: every refresh
/// token the server had answered with still works after the restart. The
/// reuse grace lets a chain whose last request was committed but never
/// answered retry its last answered token, as a client would. The client
/// has one live family per chain before and after (none lost, none
/// revoked by a retry), and a token rotated away before the kill stays
/// rotated away (no rotation rolled back): presenting it is reuse.
#[tokio::test]
async fn kill9_under_concurrent_rotations_loses_no_answered_token() {
    const CHAINS: usize = 8;
    let dir = crate::util::private_tempdir();
    let grace = ["--refresh-reuse-grace", "60"];
    let mut first = Server::builder().data_dir(dir.path()).args(&grace).start();
    let client = first.create_client("busy", &[]);
    let authorization = crate::util::basic(&client.client_id, &client.client_secret);
    let mut chains = Vec::new();
    for _ in 0..CHAINS {
        let (_, rt) = expect_refresh_token(&cc(&client).send(&first).await, "client_credentials");
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(vec![rt.clone()]));
        let task = tokio::spawn(rotate_until_killed(
            first.url("/oauth2/token"),
            authorization.clone(),
            rt,
            std::sync::Arc::clone(&acknowledged),
            5_000,
        ));
        chains.push((acknowledged, task));
    }
    // Let the chains get going, then kill the server under them.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    first.kill9();
    drop(first);
    let mut rounds = 0;
    for (_, task) in &mut chains {
        rounds += tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("every chain stops once the server is gone")
            .expect("the chain task completes");
    }
    assert!(rounds >= CHAINS, "the chains were rotating when the server died ({rounds} rotations)");

    let second = Server::builder().data_dir(dir.path()).args(&grace).start();
    // The rotations since the last checkpoint came back from the journal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !second.stderr_now().contains("replayed the storage journal") {
        assert!(std::time::Instant::now() < deadline, "no journal replay at restart:\n{}", second.stderr_now());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let live_families = || {
        let shown: ClientInfo = second.admin_json(&["clients", "show", &client.client_id, "--json"]);
        shown.active_refresh_families
    };
    assert_eq!(live_families(), CHAINS as u64, "one live family per chain after the restart");
    let answered: Vec<Vec<String>> =
        chains.iter().map(|(acknowledged, _)| acknowledged.lock().expect("not poisoned").clone()).collect();
    for (i, tokens) in answered.iter().enumerate() {
        let last = tokens.last().expect("at least the first token");
        expect_refresh_token(
            &refresh(&client, last).send(&second).await,
            &format!("chain {i}: the last refresh token answered before kill -9"),
        );
    }
    assert_eq!(live_families(), CHAINS as u64, "the retries revoked no family and started none");
    // Two rotations before the last answer is reuse whatever the kill cut
    // short (the last answer, or one more rotation never answered, is the
    // current token or the previous one). Reuse revokes the family.
    let mut reused = 0;
    for (i, tokens) in answered.iter().enumerate().filter(|(_, tokens)| tokens.len() >= 3) {
        let old = &tokens[tokens.len() - 3];
        expect_error(
            &refresh(&client, old).send(&second).await,
            400,
            "invalid_grant",
            &format!("chain {i}: a token rotated away before kill -9"),
        );
        reused += 1;
    }
    assert!(reused > 0, "some chain rotated at least twice before the kill");
    assert_eq!(live_families(), (CHAINS - reused) as u64, "each reuse revoked its own family only");
}
