//! Issue 16, private_key_jwt (RFC 7523): clients created with public keys
//! and no secret, authenticating at the token, revocation and
//! introspection endpoints with assertions built by the tests' own JOSE
//! code ([`crate::util::jose`]); every bad assertion is the same 401
//! `invalid_client`; a `jti` is never accepted twice, also after a
//! restart; `set-keys` rotates the keys.

use std::net::IpAddr;

use serde_json::{Value, json};
use tessera_shared::admin::{AuditEvent, AuthMethod, ClientCredentials, ClientInfo};
use tessera_shared::wire::AuthorizationServerMetadata;

use crate::util::{
    Cases, ClientKey, JWT_BEARER, Resp, Server, TokenCall, assertion, assertion_claims, check_error, expect_error,
    expect_refresh_token, expect_token, get, http_from, jws, now_unix, part, private_tempdir,
};

/// `clients create --name NAME --public-key FILE... --json` (plus `extra`).
fn create_with_keys(server: &Server, name: &str, keys: &[&ClientKey], extra: &[&str]) -> ClientCredentials {
    let dir = private_tempdir();
    let files: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| key.public_file(dir.path(), &format!("key-{i}")).display().to_string())
        .collect();
    let mut args = vec!["clients", "create", "--name", name, "--json"];
    for file in &files {
        args.extend(["--public-key", file.as_str()]);
    }
    args.extend(extra);
    server.admin_json(&args)
}

/// The token endpoint URL, an assertion's `aud`.
fn token_endpoint(server: &Server) -> String {
    server.url("/oauth2/token")
}

fn with_assertion(call: TokenCall, assertion: &str) -> TokenCall {
    call.f("client_assertion_type", JWT_BEARER).f("client_assertion", assertion)
}

fn cc(assertion: &str) -> TokenCall {
    with_assertion(TokenCall::new().f("grant_type", "client_credentials"), assertion)
}

/// 401 `invalid_client` with the page's text and `WWW-Authenticate: Basic realm="tessera"`.
fn refused(resp: &Resp) -> Result<(), String> {
    check_error(resp, 401, "invalid_client")
}

#[tokio::test]
async fn each_algorithm_gets_tokens_and_the_client_has_no_secret() {
    let server = Server::start(&[]);
    let aud = token_endpoint(&server);
    for (name, key) in [("ec", ClientKey::es256()), ("ed", ClientKey::eddsa()), ("rsa", ClientKey::rsa())] {
        let client = create_with_keys(&server, name, &[&key], &[]);
        assert_eq!(client.client_secret, "", "{name}: a key client is never given a secret");
        assert_eq!(client.auth_method, AuthMethod::PrivateKeyJwt, "{name}");
        assert_eq!(client.key_thumbprints.len(), 1, "{name}");
        let good = assertion(&key, &client.client_id, &aud, now_unix(), &format!("{name}-1"));
        let (token, _) = expect_refresh_token(&cc(&good).send(&server).await, name);
        assert_eq!(crate::util::jwt_parts(&token.access_token).1["sub"], client.client_id.as_str());

        let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
        assert_eq!((shown.auth_method, &shown.key_thumbprints), (AuthMethod::PrivateKeyJwt, &client.key_thumbprints));
        let text = server.admin_ok(&["clients", "show", &client.client_id]);
        assert!(text.contains("private_key_jwt") && text.contains(&client.key_thumbprints[0]), "{text}");
        let list = server.admin_ok(&["clients", "list", "--json"]);
        assert!(!list.contains("client_secret"), "{list}");
    }
    // PS256 with the RSA key; the issuer as the audience; client_id sent too.
    let rsa = ClientKey::rsa();
    let client = create_with_keys(&server, "pss", &[&rsa], &[]);
    let claims = assertion_claims(&client.client_id, &server.base, now_unix(), "pss-1");
    let pss = jws(&rsa, "PS256", &json!({"alg": "PS256"}), &claims);
    expect_token(&cc(&pss).f("client_id", &client.client_id).send(&server).await, "PS256, aud = issuer");
}

#[tokio::test]
async fn the_refresh_grant_revocation_and_introspection_take_assertions() {
    let server = Server::start(&[]);
    let key = ClientKey::es256();
    let client = create_with_keys(&server, "machine", &[&key], &[]);
    let aud = token_endpoint(&server);
    let now = now_unix();
    let (first, refresh_token) =
        expect_refresh_token(&cc(&assertion(&key, &client.client_id, &aud, now, "a1")).send(&server).await, "grant");
    let refresh = TokenCall::new().f("grant_type", "refresh_token").f("refresh_token", &refresh_token);
    let (_, next) = expect_refresh_token(
        &with_assertion(refresh, &assertion(&key, &client.client_id, &aud, now, "a2")).send(&server).await,
        "refresh with an assertion",
    );

    let introspect = TokenCall::new().f("token", &first.access_token);
    let resp = with_assertion(introspect, &assertion(&key, &client.client_id, &aud, now, "a3"))
        .send_to(&server, "/oauth2/introspect")
        .await;
    assert_eq!(resp.status, 200, "introspect: {}", resp.summary());
    assert_eq!(resp.json().unwrap()["active"], true);

    let revoke = TokenCall::new().f("token", &next);
    let resp = with_assertion(revoke, &assertion(&key, &client.client_id, &aud, now, "a4"))
        .send_to(&server, "/oauth2/revoke")
        .await;
    assert_eq!(resp.status, 200, "revoke: {}", resp.summary());

    // The same rules there: a replayed jti is refused at both.
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let call = TokenCall::new().f("token", &next);
        let resp =
            with_assertion(call, &assertion(&key, &client.client_id, &aud, now, "a3")).send_to(&server, path).await;
        expect_error(&resp, 401, "invalid_client", path);
    }

    let metadata: AuthorizationServerMetadata = get(&server, "/.well-known/oauth-authorization-server")
        .await
        .json()
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    let methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
    assert_eq!(metadata.token_endpoint_auth_methods_supported, methods);
    assert_eq!(metadata.revocation_endpoint_auth_methods_supported, methods);
    assert_eq!(metadata.introspection_endpoint_auth_methods_supported, methods);
    assert_eq!(metadata.token_endpoint_auth_signing_alg_values_supported, ["ES256", "EdDSA", "RS256", "PS256"]);
}

/// Every bad case, each a 401 `invalid_client` with the header and the
/// text of a wrong secret; two methods at once are `invalid_request`.
#[tokio::test]
async fn every_bad_assertion_is_the_same_invalid_client() {
    let server = Server::start(&["--rate-limit", "false"]);
    let key = ClientKey::es256();
    let client = create_with_keys(&server, "target", &[&key], &[]);
    let id = client.client_id.as_str();
    let aud = token_endpoint(&server);
    let now = now_unix();
    let good_claims = |jti: &str| assertion_claims(id, &aud, now, jti);
    let signed = |claims: &Value| jws(&key, "ES256", &json!({"alg": "ES256"}), claims);
    let without = |member: &str, jti: &str| {
        let mut claims = good_claims(jti);
        claims.as_object_mut().unwrap().remove(member);
        signed(&claims)
    };
    let changed = |member: &str, value: Value, jti: &str| {
        let mut claims = good_claims(jti);
        claims[member] = value;
        signed(&claims)
    };
    // HMAC keyed with what the verifier holds: the PEM, and the JWK's x.
    let hmac = |secret: &[u8]| {
        let input = format!("{}.{}", part(&json!({"alg": "HS256", "typ": "JWT"})), part(&good_claims("hs")));
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), input.as_bytes());
        format!("{input}.{}", base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, tag))
    };
    let pem = key.public_document();
    let x = {
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, der_b64).unwrap();
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &der[27..59])
    };

    let mut cases = Cases::new();
    let none = format!("{}.{}.", part(&json!({"alg": "none"})), part(&good_claims("none")));
    cases.check("alg none", refused(&cc(&none).send(&server).await));
    cases.check("HMAC keyed with the PEM", refused(&cc(&hmac(pem.as_bytes())).send(&server).await));
    cases.check("HMAC keyed with the JWK x", refused(&cc(&hmac(x.as_bytes())).send(&server).await));
    let other = ClientKey::es256();
    cases.check("another key", refused(&cc(&assertion(&other, id, &aud, now, "other")).send(&server).await));
    let lying = jws(&key, "ES256", &json!({"alg": "RS256"}), &good_claims("lying"));
    cases.check("alg not the key's", refused(&cc(&lying).send(&server).await));
    cases.check(
        "wrong aud",
        refused(&cc(&changed("aud", json!("https://elsewhere.test/token"), "aud")).send(&server).await),
    );
    cases.check("expired", refused(&cc(&changed("exp", json!(now - 120), "expired")).send(&server).await));
    cases.check("no exp", refused(&cc(&without("exp", "noexp")).send(&server).await));
    cases.check("exp too far", refused(&cc(&changed("exp", json!(now + 3600), "far")).send(&server).await));
    cases.check("no jti", refused(&cc(&without("jti", "")).send(&server).await));
    let stranger = "oa2-client-id_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
    cases.check("wrong iss", refused(&cc(&changed("iss", json!(stranger), "iss")).send(&server).await));
    cases.check("wrong sub", refused(&cc(&changed("sub", json!(stranger), "sub")).send(&server).await));
    let good = signed(&good_claims("named"));
    cases.check("client_id of another client", refused(&cc(&good).f("client_id", stranger).send(&server).await));
    cases.check("garbage", refused(&cc("not.a.jwt").send(&server).await));
    let wrong_type = TokenCall::new()
        .f("grant_type", "client_credentials")
        .f("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
        .f("client_assertion", &good);
    cases.check("another assertion type", refused(&wrong_type.send(&server).await));
    let secret =
        TokenCall::new().f("grant_type", "client_credentials").f("client_id", id).f("client_secret", &"s".repeat(40));
    cases.check("a secret for a key client", refused(&secret.send(&server).await));
    let secret_client = server.create_client("secretive", &[]);
    let foreign = assertion(&key, &secret_client.client_id, &aud, now, "foreign");
    cases.check("an assertion for a secret client", refused(&cc(&foreign).send(&server).await));
    let first = signed(&good_claims("once"));
    cases.check("first use", crate::util::token_ok(&cc(&first).send(&server).await).map(|_| ()));
    cases.check("replayed jti", refused(&cc(&first).send(&server).await));
    let both = cc(&signed(&good_claims("both"))).basic(&secret_client.client_id, &secret_client.client_secret);
    cases.check("assertion and Basic", check_error(&both.send(&server).await, 400, "invalid_request"));
    let both = cc(&signed(&good_claims("both2"))).f("client_secret", &"s".repeat(40));
    cases.check("assertion and client_secret", check_error(&both.send(&server).await, 400, "invalid_request"));
    cases.finish();

    // The error description never names the reason; the log does not carry the assertion.
    let log = server.stderr_now();
    assert!(!log.contains(&first), "an assertion reached the log");
}

#[tokio::test]
async fn a_used_jti_stays_used_across_a_restart() {
    let dir = private_tempdir();
    let mut first = Server::builder().data_dir(dir.path()).start();
    let key = ClientKey::eddsa();
    let client = create_with_keys(&first, "restart", &[&key], &[]);
    let used = assertion(&key, &client.client_id, &token_endpoint(&first), now_unix(), "once-only");
    expect_token(&cc(&used).send(&first).await, "first use");
    first.terminate();
    let second = Server::builder().data_dir(dir.path()).start();
    // The issuer (and so the token endpoint) changed with the port: the
    // replay is refused for its jti, so send one for the new address too.
    let again = assertion(&key, &client.client_id, &token_endpoint(&second), now_unix(), "once-only");
    expect_error(&cc(&again).send(&second).await, 401, "invalid_client", "a jti used before the restart");
    let fresh = assertion(&key, &client.client_id, &token_endpoint(&second), now_unix(), "after-restart");
    expect_token(&cc(&fresh).send(&second).await, "a new jti after the restart");
}

#[tokio::test]
async fn set_keys_rotates_the_keys_and_is_audited() {
    let server = Server::start(&[]);
    let (old, new) = (ClientKey::es256(), ClientKey::rsa());
    let client = create_with_keys(&server, "rotating", &[&old], &[]);
    let aud = token_endpoint(&server);
    let now = now_unix();
    expect_token(&cc(&assertion(&old, &client.client_id, &aud, now, "r1")).send(&server).await, "the old key, before");

    let dir = private_tempdir();
    let file = new.public_file(dir.path(), "new.pem").display().to_string();
    let shown: ClientInfo =
        server.admin_json(&["clients", "set-keys", &client.client_id, "--public-key", &file, "--json"]);
    assert_eq!(shown.key_thumbprints.len(), 1);
    assert_ne!(shown.key_thumbprints, client.key_thumbprints, "the thumbprint changed");

    let resp = cc(&assertion(&old, &client.client_id, &aud, now, "r2")).send(&server).await;
    expect_error(&resp, 401, "invalid_client", "the old key, after set-keys");
    expect_token(&cc(&assertion(&new, &client.client_id, &aud, now, "r3")).send(&server).await, "the new key");

    // JSON lines, one event each.
    let events: Vec<AuditEvent> =
        server.admin_ok(&["audit", "--json"]).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let set = events.iter().find(|e| e.kind.to_string() == "client_keys_set").expect("set-keys is audited");
    assert!(set.detail.contains(&shown.key_thumbprints[0]), "{set:?}");

    // Refused clearly: keys for a secret client, a private key, a weak key, none at all.
    let secret_client = server.create_client("secretive", &[]);
    let out = server.admin(&["clients", "set-keys", &secret_client.client_id, "--public-key", &file]);
    assert!(!out.status.success() && out.stderr.contains("secret"), "{}", out.stderr);
    let private = dir.path().join("private.pem");
    std::fs::write(&private, "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let out = server.admin(&["clients", "create", "--name", "p", "--public-key", private.to_str().unwrap()]);
    assert!(!out.status.success() && out.stderr.contains("private"), "{}", out.stderr);
    let weak = dir.path().join("weak.jwk");
    std::fs::write(&weak, json!({"kty": "RSA", "n": "AQAB".repeat(40), "e": "AQAB"}).to_string()).unwrap();
    let out = server.admin(&["clients", "create", "--name", "w", "--public-key", weak.to_str().unwrap()]);
    assert!(!out.status.success() && out.stderr.contains("bits"), "{}", out.stderr);
    let out = server.admin(&["clients", "rotate-secret", &client.client_id]);
    assert!(!out.status.success() && out.stderr.contains("public keys"), "{}", out.stderr);
}

/// Failed assertions count against the client's rate limit like wrong
/// secrets: the client-ID bucket runs dry and new addresses get 429.
#[tokio::test]
async fn failed_assertions_are_rate_limited_per_client() {
    let server = Server::start(&[
        "--rate-limit-address-burst",
        "100",
        "--rate-limit-client-burst",
        "4",
        "--rate-limit-client-per-minute",
        "1",
    ]);
    let key = ClientKey::es256();
    let client = create_with_keys(&server, "limited", &[&key], &[]);
    let aud = token_endpoint(&server);
    let forged = assertion(&ClientKey::es256(), &client.client_id, &aud, now_unix(), "forged");
    for i in 0..4 {
        let from = http_from(format!("127.0.2.{}", i + 1).parse::<IpAddr>().unwrap());
        expect_error(&cc(&forged).send_with(&from, &server).await, 401, "invalid_client", "a forged assertion");
    }
    let newcomer = http_from("127.0.2.99".parse::<IpAddr>().unwrap());
    let resp = cc(&assertion(&key, &client.client_id, &aud, now_unix(), "late")).send_with(&newcomer, &server).await;
    expect_error(&resp, 429, "temporarily_unavailable", "the drained client ID, even with a good assertion");
}

/// On PostgreSQL the replay set is shared: a `jti` used through one
/// instance is refused by another (both behind one issuer URL).
#[tokio::test]
async fn instances_on_postgres_share_the_replay_set() {
    let Some(url) = crate::postgres::fresh_database().await else { return };
    let issuer = "https://auth.test";
    let a = Server::start(&["--storage", &url, "--issuer", issuer]);
    let b = Server::start(&["--storage", &url, "--issuer", issuer]);
    let key = ClientKey::eddsa();
    let client = create_with_keys(&a, "shared", &[&key], &[]);
    let aud = format!("{issuer}/oauth2/token");
    let used = assertion(&key, &client.client_id, &aud, now_unix(), "shared-jti");
    expect_token(&cc(&used).send(&a).await, "first use, through A");
    expect_error(&cc(&used).send(&b).await, 401, "invalid_client", "the same jti through B");
    let fresh = assertion(&key, &client.client_id, issuer, now_unix(), "fresh-jti");
    expect_token(&cc(&fresh).send(&b).await, "a new jti through B, aud = the issuer");
    expect_error(&cc(&fresh).send(&a).await, 401, "invalid_client", "and it back through A");
}

/// `migrate-storage` takes the replay set along: a `jti` used on sled is
/// refused by the PostgreSQL server that took over.
#[tokio::test]
async fn migrate_storage_moves_the_replay_set() {
    let Some(url) = crate::postgres::fresh_database().await else { return };
    let issuer = "https://auth.test";
    let data = private_tempdir();
    let mut sled = Server::builder().data_dir(data.path()).args(&["--issuer", issuer]).start();
    let key = ClientKey::es256();
    let client = create_with_keys(&sled, "moving", &[&key], &[]);
    let used = assertion(&key, &client.client_id, issuer, now_unix(), "moved-jti");
    expect_token(&cc(&used).send(&sled).await, "first use, on sled");
    assert!(sled.terminate().success());
    let out = Server::builder()
        .data_dir(data.path())
        .without_listen_flag()
        .args(&["migrate-storage", "--from", &data.path().display().to_string(), "--to", &url])
        .run_expecting_exit();
    assert!(out.status.success() && out.stdout.contains("1 client-assertion jtis"), "{} {}", out.stdout, out.stderr);
    let pg = Server::start(&["--storage", &url, "--issuer", issuer]);
    expect_error(&cc(&used).send(&pg).await, 401, "invalid_client", "the jti used before the move");
    let fresh = assertion(&key, &client.client_id, issuer, now_unix(), "after-move");
    expect_token(&cc(&fresh).send(&pg).await, "the key client works after the move");
}
