//! The signing-key life cycle through the real binaries: RS256 and EdDSA
//! servers, `keys rotate` (scheduled while the next key is too fresh),
//! `keys rotate --now`, `keys revoke`,
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
use tessera_shared::admin::{ClientCredentials, ClientInfo, KeyInfo, KeyRotation, KeyState, RotationOutcome};
use tessera_shared::jwk::JwkSet;
use tessera_shared::utc::rfc3339;
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

/// `keys rotate` on a fresh server never refuses: the next key is younger
/// than the JWKS cache lifetime, so the rotation is scheduled, the command
/// exits 0 and says when in UTC (no raw Unix seconds), `keys list` shows
/// it, and the server rotates by itself at that second. Tokens of the old
/// key still verify against the JWKS served after the rotation.
#[tokio::test]
async fn keys_rotate_on_a_fresh_server_is_scheduled_and_happens_by_itself() {
    // A cache lifetime long enough that the set-up below ends before the
    // scheduled second even on a loaded machine.
    let server = Server::start(&["--jwks-max-age", "10", "--signing-rotate-every", "3600"]);
    let client = server.create_client("rotate", &[]);
    let before = keys(&server);
    let old_active = in_state(&before, KeyState::Active)[0].kid.clone();
    let next = in_state(&before, KeyState::Next)[0].kid.clone();
    let old_token = expect_token(&cc(&client).send(&server).await, "before rotation").access_token;
    assert_eq!(kid_of(&old_token), old_active);

    let out = server.admin(&["keys", "rotate"]);
    assert!(out.status.success(), "keys rotate refused: {}", out.stderr);
    println!("$ tessera-admin keys rotate\n{}", out.stdout);
    let rotation: KeyRotation = server.admin_json(&["keys", "rotate", "--json"]);
    assert_eq!(rotation.outcome, RotationOutcome::Scheduled, "{rotation:?}");
    let when = rfc3339(rotation.rotates_at);
    assert!(out.stdout.starts_with(&format!("Rotation scheduled for {when}: the next key {next}")), "{}", out.stdout);
    assert!(!out.stdout.contains(&rotation.rotates_at.to_string()), "no raw Unix seconds: {}", out.stdout);
    let listed = server.admin_ok(&["keys", "list"]);
    println!("$ tessera-admin keys list\n{listed}");
    assert!(listed.contains(&format!("Rotation scheduled: {next} signs from {when}.")), "{listed}");

    // The server performs it at the announced second, not before.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rotated = loop {
        let now = keys(&server);
        if in_state(&now, KeyState::Active)[0].kid == next {
            break now;
        }
        assert!(Instant::now() < deadline, "the scheduled rotation did not happen within 20 s: {now:?}");
        pause(Duration::from_millis(200));
    };
    let active = in_state(&rotated, KeyState::Active)[0];
    assert!(active.activated_at >= Some(rotation.rotates_at), "not early: {active:?} vs {}", rotation.rotates_at);
    let retiring = in_state(&rotated, KeyState::Retiring);
    assert_eq!(retiring[0].kid, old_active);
    assert!(retiring[0].published_until.is_some());
    assert!(rotated.iter().all(|k| k.rotation_scheduled_at.is_none()), "the schedule is done: {rotated:?}");

    let new_token = expect_token(&cc(&client).send(&server).await, "after rotation").access_token;
    assert_eq!(kid_of(&new_token), next);
    let served = jwks(&server).await;
    let verifier = Verifier::new(served.clone(), server.base.clone(), server.base.clone());
    verifier.verify(&old_token).expect("the old key's token still verifies");
    verifier.verify(&new_token).expect("the new key's token verifies");
    assert_eq!(served.keys.len(), 3, "active, next and retiring");
    assert!(server.stderr_now().contains("key_rotation_scheduled"), "the schedule is logged as an event");
    let kinds = audit_kinds(&server);
    assert_eq!(kinds.iter().filter(|k| *k == "key_rotation_scheduled").count(), 1, "scheduled once: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "key_rotated").count(), 1, "rotated once: {kinds:?}");
}

/// `keys rotate --now`: the pre-published next key signs at once (the kid
/// of a new token), a new next key is published, and the old key stays in
/// the JWKS so its tokens keep verifying.
#[tokio::test]
async fn keys_rotate_now_makes_the_pre_published_next_key_sign() {
    let server = Server::start(&[]);
    let client = server.create_client("rotate now", &[]);
    let before = keys(&server);
    let old_active = in_state(&before, KeyState::Active)[0].kid.clone();
    let next = in_state(&before, KeyState::Next)[0].kid.clone();
    let old_token = expect_token(&cc(&client).send(&server).await, "before").access_token;
    assert!(jwks(&server).await.find(&next).is_some(), "the next key was published before it signs");

    let out = server.admin(&["keys", "rotate", "--now"]);
    assert!(out.status.success(), "{}", out.stderr);
    println!("$ tessera-admin keys rotate --now\n{}", out.stdout);
    assert!(
        out.stdout.starts_with("Rotated at ") && out.stdout.contains(&format!(": {next} signs new tokens")),
        "{}",
        out.stdout
    );

    let new_token = expect_token(&cc(&client).send(&server).await, "after").access_token;
    assert_eq!(kid_of(&new_token), next, "the pre-published next key signs");
    let after = keys(&server);
    let new_next = in_state(&after, KeyState::Next)[0].kid.clone();
    assert_ne!(new_next, next);
    let served = jwks(&server).await;
    let kids: Vec<&str> = served.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    for kid in [&old_active, &next, &new_next] {
        assert!(kids.contains(&kid.as_str()), "{kid} in the JWKS: {kids:?}");
    }
    let verifier = Verifier::new(served, server.base.clone(), server.base.clone());
    verifier.verify(&old_token).expect("the old key stays published until its tokens expire");
    verifier.verify(&new_token).expect("the new token verifies");
    let detail = audit_details(&server, "key_rotated");
    assert_eq!(detail.len(), 1, "{detail:?}");
    assert!(
        detail[0].contains("at once") && detail[0].contains(&next) && detail[0].contains(&old_active),
        "{detail:?}"
    );
}

/// `keys revoke KID`: a retiring key leaves the JWKS at once and its tokens
/// stop verifying; revoking the active key makes the next key sign from
/// that moment and publishes a new next key. Both are audited with the kid;
/// an unknown, retired or malformed kid is refused with one line.
#[tokio::test]
async fn keys_revoke_on_a_retiring_key_and_on_the_active_key() {
    let server = Server::start(&[]);
    let client = server.create_client("revoke", &[]);
    let first = keys(&server);
    let a0 = in_state(&first, KeyState::Active)[0].kid.clone();
    let t0 = expect_token(&cc(&client).send(&server).await, "signed by the first key").access_token;
    server.admin_ok(&["keys", "rotate", "--now"]);
    let second = keys(&server);
    let a1 = in_state(&second, KeyState::Active)[0].kid.clone();
    let n1 = in_state(&second, KeyState::Next)[0].kid.clone();
    let t1 = expect_token(&cc(&client).send(&server).await, "signed by the second key").access_token;
    assert_eq!((kid_of(&t0), kid_of(&t1)), (a0.clone(), a1.clone()));
    let verifies = |jwks: &JwkSet, token: &str| {
        Verifier::new(jwks.clone(), server.base.clone(), server.base.clone()).verify(token).is_ok()
    };

    // The retiring key.
    let out = server.admin(&["keys", "revoke", &a0]);
    assert!(out.status.success(), "{}", out.stderr);
    println!("$ tessera-admin keys revoke {a0}\n{}", out.stdout);
    assert!(out.stdout.starts_with(&format!("Revoked {a0}: it is out of the JWKS now")), "{}", out.stdout);
    let served = jwks(&server).await;
    assert!(served.find(&a0).is_none(), "gone from the JWKS at once");
    assert!(!verifies(&served, &t0), "its tokens stop verifying");
    assert!(verifies(&served, &t1));
    let revoked = keys(&server).into_iter().find(|k| k.kid == a0).unwrap();
    assert_eq!(revoked.state, KeyState::Retired);

    // The active key.
    let out = server.admin(&["keys", "revoke", &a1]);
    assert!(out.status.success(), "{}", out.stderr);
    println!("$ tessera-admin keys revoke {a1}\n{}", out.stdout);
    let after = keys(&server);
    let n2 = in_state(&after, KeyState::Next)[0].kid.clone();
    assert!(out.stdout.contains(&format!("{n1} signs from now; {n2} is the new next key")), "{}", out.stdout);
    assert_eq!(in_state(&after, KeyState::Active)[0].kid, n1, "the next key signs");
    let t2 = expect_token(&cc(&client).send(&server).await, "after revoking the active key").access_token;
    assert_eq!(kid_of(&t2), n1, "new tokens carry the former next key's kid");
    let served = jwks(&server).await;
    let kids: Vec<&str> = served.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids.len(), 2, "the new active and the new next key: {kids:?}");
    assert!(kids.contains(&n1.as_str()) && kids.contains(&n2.as_str()), "{kids:?}");
    assert!(!verifies(&served, &t1), "tokens of the revoked active key stop verifying");
    assert!(verifies(&served, &t2));

    // Refusals.
    let out = server.admin(&["keys", "revoke", &a0]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("already retired"), "{}", out.stderr);
    let out = server.admin(&["keys", "revoke", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("no signing key has the kid"), "{}", out.stderr);
    let out = server.admin(&["keys", "revoke", "../clients"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("not a signing-key kid"), "{}", out.stderr);

    let details = audit_details(&server, "key_revoked");
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details[0].contains(&a0) && details[0].contains("retiring"), "{details:?}");
    assert!(details[1].contains(&a1) && details[1].contains("(active)") && details[1].contains(&n1), "{details:?}");
}

/// The details of the audit events of `kind`, oldest first.
fn audit_details(server: &Server, kind: &str) -> Vec<String> {
    let out = server.admin_ok(&["audit", "--json"]);
    out.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("one JSON event a line"))
        .filter(|event| event["kind"] == kind)
        .map(|event| event["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
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
