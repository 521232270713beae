//! The signing-key life cycle through the real binaries: RS256 and EdDSA
//! servers, `keys rotate` (refused while the next key is too fresh),
//! scheduled rotation and retirement, `keys import`, `export-jwks` with and
//! without a running server, private keys encrypted at rest, and client
//! secrets that expire.
//!
//! Rotation timing is shortened with `--jwks-max-age` so that no test waits
//! long; the exact invariant over many rotations is tested with a hand-moved
//! clock in `server/src/keys/manager/tests.rs`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_shared::admin::{ClientCredentials, ClientInfo, KeyInfo, KeyState};
use tessera_shared::jwk::JwkSet;
use tessera_shared::verify::Verifier;

use crate::util::{
    Server, TokenCall, expect_error, expect_refresh_token, expect_token, jwks, jwt_parts, now_unix, pause,
    server_subcommand,
};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().expect("a kid").to_owned()
}

fn keys(server: &Server) -> Vec<KeyInfo> {
    server.admin_json(&["keys", "list", "--json"])
}

fn in_state(keys: &[KeyInfo], state: KeyState) -> Vec<&KeyInfo> {
    keys.iter().filter(|k| k.state == state).collect()
}

/// An RS256 and an EdDSA server each answer the page's four examples, and
/// their tokens verify offline against the served JWKS with the right `alg`.
#[tokio::test]
async fn rs256_and_eddsa_servers_pass_the_seed_flows() {
    for alg in ["RS256", "EdDSA"] {
        let server = Server::start(&["--signing-alg", alg]);
        let client = server.create_client(&format!("{alg} client"), &[]);
        let verifier = Verifier::new(jwks(&server).await, server.base.clone(), server.base.clone());

        let (first, rt) = expect_refresh_token(&cc(&client).send(&server).await, &format!("{alg}: seed 1"));
        let basic_refresh = TokenCall::new()
            .basic_creds(&client)
            .q("grant_type", "refresh_token")
            .q("refresh_token", &rt)
            .send(&server)
            .await;
        let (second, rt) = expect_refresh_token(&basic_refresh, &format!("{alg}: seed 2"));
        let query_cc = TokenCall::new().q("grant_type", "client_credentials").query_creds(&client).send(&server).await;
        let third = expect_token(&query_cc, &format!("{alg}: seed 3"));
        let query_refresh = TokenCall::new()
            .q("grant_type", "refresh_token")
            .q("refresh_token", &rt)
            .query_creds(&client)
            .send(&server)
            .await;
        let (fourth, _) = expect_refresh_token(&query_refresh, &format!("{alg}: seed 4"));

        for token in [first, second, third, fourth] {
            let (header, _) = jwt_parts(&token.access_token);
            assert_eq!(header["alg"], alg, "{alg}: header {header}");
            let claims = verifier.verify(&token.access_token).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(claims.client_id, client.client_id);
        }
        let served = jwks(&server).await;
        assert!(served.keys.iter().all(|k| k.alg.as_deref() == Some(alg)), "{alg}: {served:?}");
        if alg == "RS256" {
            let n = served.keys[0].n.as_deref().expect("an RSA modulus");
            assert!(n.len() >= 342, "a 2048-bit modulus is 342 base64url characters: {}", n.len());
        }
    }
}

/// `keys rotate`: refused while the next key is younger than one cache
/// interval; then the next key signs, and tokens of the old key still
/// verify against the JWKS served after the rotation.
#[tokio::test]
async fn keys_rotate_on_demand_keeps_old_tokens_verifiable() {
    let server = Server::start(&["--jwks-max-age", "4", "--signing-rotate-every", "3600"]);
    let client = server.create_client("rotate", &[]);
    let before = keys(&server);
    let old_active = in_state(&before, KeyState::Active)[0].kid.clone();
    let next = in_state(&before, KeyState::Next)[0].kid.clone();
    let old_token = expect_token(&cc(&client).send(&server).await, "before rotation").access_token;
    assert_eq!(kid_of(&old_token), old_active);

    // Keep asking until the next key has been published long enough; the
    // refusals in between must be clean one-line answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rotated = loop {
        let out = server.admin(&["keys", "rotate", "--json"]);
        if out.status.success() {
            break serde_json::from_str::<Vec<KeyInfo>>(out.stdout.trim()).expect("keys as JSON");
        }
        assert_eq!(out.stderr_lines().len(), 1, "one line: {}", out.stderr);
        assert!(out.stderr.contains("rotate again"), "{}", out.stderr);
        assert!(Instant::now() < deadline, "no rotation allowed within 20 s: {}", out.stderr);
        pause(Duration::from_millis(500));
    };
    assert_eq!(in_state(&rotated, KeyState::Active)[0].kid, next, "the published next key signs");
    let retiring = in_state(&rotated, KeyState::Retiring);
    assert_eq!(retiring[0].kid, old_active);
    assert!(retiring[0].published_until.is_some());

    let new_token = expect_token(&cc(&client).send(&server).await, "after rotation").access_token;
    assert_eq!(kid_of(&new_token), next);
    let served = jwks(&server).await;
    let verifier = Verifier::new(served.clone(), server.base.clone(), server.base.clone());
    verifier.verify(&old_token).expect("the old key's token still verifies");
    verifier.verify(&new_token).expect("the new key's token verifies");
    assert_eq!(served.keys.len(), 3, "active, next and retiring");

    // At once again: the new next key was published a moment ago.
    let out = server.admin(&["keys", "rotate"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("rotate again"), "{}", out.stderr);
    assert!(server.stderr_now().contains("key_rotated"), "the rotation is logged as an event");
    assert_eq!(audit_kinds(&server).iter().filter(|k| *k == "key_rotated").count(), 1, "and in the audit trail once");
}

/// The kinds in the audit trail, oldest first.
fn audit_kinds(server: &Server) -> Vec<String> {
    let out = server.admin_ok(&["audit", "--json"]);
    out.lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("one JSON event a line");
            event["kind"].as_str().expect("a kind").to_owned()
        })
        .collect()
}

/// On a schedule: keys rotate by themselves, and a retiring key leaves the
/// JWKS once its tokens have expired plus one cache interval.
#[tokio::test]
async fn keys_rotate_and_retire_on_schedule() {
    let server = Server::start(&["--jwks-max-age", "1", "--signing-rotate-every", "2", "--access-token-ttl", "1"]);
    let first = in_state(&keys(&server), KeyState::Active)[0].kid.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let retired = loop {
        let now = keys(&server);
        if let Some(key) = now.iter().find(|k| k.kid == first && k.state == KeyState::Retired) {
            break key.clone();
        }
        assert!(Instant::now() < deadline, "the first key was not retired within 30 s: {now:?}");
        pause(Duration::from_millis(500));
    };
    assert!(retired.retired_at >= retired.published_until, "{retired:?}");
    assert!(jwks(&server).await.find(&first).is_none(), "a retired key is gone from the JWKS");
    let kinds = audit_kinds(&server);
    assert!(kinds.contains(&"key_rotated".to_owned()) && kinds.contains(&"key_retired".to_owned()), "{kinds:?}");
}

/// A PKCS#8 PEM of a fresh Ed25519 key, made with ring.
fn ed25519_pem() -> String {
    let document = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let body = STANDARD.encode(document.as_ref());
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

/// `keys import --pem FILE`: the key becomes the published next key; a file
/// that holds no key is refused with one line.
#[tokio::test]
async fn keys_import_publishes_the_key_as_next() {
    let server = Server::start(&[]);
    let dir = crate::util::private_tempdir();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, ed25519_pem()).unwrap();
    let after: Vec<KeyInfo> = server.admin_json(&["keys", "import", "--pem", pem.to_str().unwrap(), "--json"]);
    let next = in_state(&after, KeyState::Next)[0];
    assert!(next.imported && next.alg == "EdDSA", "{next:?}");
    assert!(jwks(&server).await.find(&next.kid).is_some(), "published at once");
    let table = server.admin_ok(&["keys", "list"]);
    assert!(table.contains("next (imported)"), "{table}");
    assert_eq!(audit_kinds(&server), ["key_imported"], "the import is in the audit trail");

    std::fs::write(&pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let out = server.admin(&["keys", "import", "--pem", pem.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot import the key"), "{}", out.stderr);
    let out = server.admin(&["keys", "import", "--pem", "/nonexistent/key.pem"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("cannot read /nonexistent/key.pem"), "{}", out.stderr);
}

fn exported(data_dir: &std::path::Path) -> JwkSet {
    let out = server_subcommand(data_dir, &["export-jwks"], &[]);
    assert!(out.status.success(), "export-jwks failed: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not a JWKS ({e}): {}", out.stdout))
}

/// `tessera-server export-jwks` prints the served JWKS, whether the server
/// runs (asked over its admin socket) or not (read from the database).
#[tokio::test]
async fn export_jwks_with_and_without_a_running_server() {
    let mut server = Server::start(&[]);
    let served = jwks(&server).await;
    assert_eq!(exported(server.data_dir()), served, "while the server runs");
    assert!(server.terminate().success());
    assert_eq!(exported(server.data_dir()), served, "once it stopped");

    let empty = crate::util::private_tempdir();
    let out = server_subcommand(empty.path(), &["export-jwks"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("no Tessera database"), "{}", out.stderr);
}

/// With a key-encryption key, keys survive a restart with the same key, and
/// a wrong or missing key stops the server with one clear line.
#[tokio::test]
async fn encrypted_keys_need_the_right_key_encryption_key() {
    let dir = crate::util::private_tempdir();
    let kek = STANDARD.encode([7u8; 32]);
    let kek_file = dir.path().join("kek");
    std::fs::write(&kek_file, format!("{kek}\n")).unwrap();
    let data = dir.path().join("data");

    let mut server = Server::builder().data_dir(&data).env("TESSERA_KEY_ENCRYPTION_KEY", &kek).start();
    let client = server.create_client("sealed", &[]);
    let token = expect_token(&cc(&client).send(&server).await, "first start").access_token;
    let first_issuer = server.base.clone();
    assert!(server.terminate().success());
    let (_, log) = server.output();
    assert!(!log.contains(&kek), "the key-encryption key is never logged");

    let server =
        Server::builder().data_dir(&data).args(&["--key-encryption-key-file", kek_file.to_str().unwrap()]).start();
    // The issuer is the bound address, which changed with the restart.
    let verifier = Verifier::new(jwks(&server).await, first_issuer.clone(), first_issuer);
    verifier.verify(&token).expect("the same keys after a restart");
    let again = expect_token(&cc(&client).send(&server).await, "after restart").access_token;
    assert_eq!(kid_of(&again), kid_of(&token));
    drop(server);

    let wrong = STANDARD.encode([8u8; 32]);
    let out = Server::builder().data_dir(&data).env("TESSERA_KEY_ENCRYPTION_KEY", &wrong).run_expecting_exit();
    assert!(!out.status.success());
    assert!(out.stderr.contains("does not decrypt"), "{}", out.stderr);
    assert_eq!(out.stderr_lines().iter().filter(|l| l.starts_with("tessera-server:")).count(), 1, "{}", out.stderr);

    let out = Server::builder().data_dir(&data).run_expecting_exit();
    assert!(!out.status.success());
    assert!(out.stderr.contains("encrypted at rest"), "{}", out.stderr);

    let out = Server::builder().data_dir(&data).env("TESSERA_KEY_ENCRYPTION_KEY", "short").run_expecting_exit();
    assert_eq!(out.status.code(), Some(2), "a malformed key is a configuration error: {}", out.stderr);
    assert!(out.stderr.contains("base64 of exactly 32 bytes"), "{}", out.stderr);
    assert!(!out.stderr.contains("short"), "the value is not echoed: {}", out.stderr);
}

/// `--secret-ttl`: the secret works until it expires, then fails like a
/// wrong one; `clients show` says so.
#[tokio::test]
async fn an_expiring_secret_stops_working_by_itself() {
    // Long enough for two CLI runs and a request on a loaded machine before
    // it expires; the wait for expiry is on the clock, not a guess.
    const SECRET_TTL: u64 = 12;
    let server = Server::start(&[]);
    let client: ClientCredentials = server.admin_json(&[
        "clients",
        "create",
        "--name",
        "short-lived",
        "--secret-ttl",
        &SECRET_TTL.to_string(),
        "--json",
    ]);
    let expires_at = client.secret_expires_at.expect("a secret with a TTL has an expiry");
    let shown = server.admin_ok(&["clients", "show", &client.client_id]);
    assert!(shown.contains("current, expires"), "{shown}");
    let sent_at = now_unix();
    assert!(
        sent_at + 2 < expires_at,
        "the set-up took nearly the whole {SECRET_TTL} s TTL: the machine is too slow for this test"
    );
    expect_token(&cc(&client).send(&server).await, "before expiry");

    // Once the clock is past the expiry (the server reads the same clock),
    // the secret fails like a wrong one.
    let deadline = Instant::now() + Duration::from_secs(SECRET_TTL + 15);
    while now_unix() <= expires_at {
        assert!(Instant::now() < deadline, "the clock did not pass {expires_at}");
        pause(Duration::from_millis(100));
    }
    expect_error(&cc(&client).send(&server).await, 401, "invalid_client", "after expiry");
    let info: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!(info.secret_expires_at, client.secret_expires_at);
    let shown = server.admin_ok(&["clients", "show", &client.client_id]);
    assert!(shown.contains("EXPIRED since"), "{shown}");

    // Rotating with a grace period shows both secrets' states.
    let rotated: ClientCredentials =
        server.admin_json(&["clients", "rotate-secret", &client.client_id, "--grace", "60", "--json"]);
    assert_eq!(rotated.previous_secret_valid_until, None, "an expired secret gets no grace period");
    let renewed = ClientCredentials { client_secret: rotated.client_secret, ..client.clone() };
    expect_token(&cc(&renewed).send(&server).await, "the new secret");
    let again: ClientCredentials =
        server.admin_json(&["clients", "rotate-secret", &client.client_id, "--grace", "60", "--json"]);
    assert!(again.previous_secret_valid_until.is_some());
    let shown = server.admin_ok(&["clients", "show", &client.client_id]);
    assert!(shown.contains("current, does not expire"), "{shown}");
    assert!(shown.contains("still accepted until"), "{shown}");
}
