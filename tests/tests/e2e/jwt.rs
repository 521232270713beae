//! The access token (RFC 9068), the served JWKS, the RFC 8414 metadata, and
//! offline verification with `tessera_shared::verify` alone.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_shared::admin::ClientCredentials;
use tessera_shared::verify::{Verifier, VerifyError};
use tessera_shared::wire::AuthorizationServerMetadata;

use crate::util::{Server, TokenCall, expect_refresh_token, expect_token, get, jwks, jwt_parts, now_unix};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

fn num(claims: &Value, name: &str) -> u64 {
    claims.get(name).and_then(Value::as_u64).unwrap_or_else(|| panic!("claim {name} is not a number: {claims}"))
}

fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    value.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("{name} is not a string: {value}"))
}

/// Header `{"typ":"at+jwt","alg":"ES256","kid":<thumbprint>}` and the
/// claims iss, sub, client_id, aud, iat, exp = iat + 300, jti, scope.
#[tokio::test]
async fn access_token_header_and_claims() {
    let server = Server::start(&[]);
    let client = server.create_client("claims", &["read"]);
    let token = expect_token(&cc(&client).send(&server).await, "client_credentials");
    assert_eq!(token.expires_in, 300);
    let (header, claims) = jwt_parts(&token.access_token);

    assert_eq!(text(&header, "typ"), "at+jwt", "header {header}");
    assert_eq!(text(&header, "alg"), "ES256", "header {header}");
    let kid = text(&header, "kid");
    let keys = jwks(&server).await;
    let key = keys.find(kid).unwrap_or_else(|| panic!("the token's kid {kid} is in the JWKS"));
    assert_eq!(key.thumbprint().as_deref(), Ok(kid), "kid is the RFC 7638 thumbprint");

    assert_eq!(text(&claims, "iss"), server.base, "iss defaults to http://<bound addr>");
    assert_eq!(text(&claims, "sub"), client.client_id);
    assert_eq!(text(&claims, "client_id"), client.client_id);
    assert_eq!(text(&claims, "aud"), server.base, "aud defaults to the issuer");
    assert_eq!(text(&claims, "scope"), "read");
    let iat = num(&claims, "iat");
    assert!(iat.abs_diff(now_unix()) <= 60, "iat {iat} is now ({})", now_unix());
    assert_eq!(num(&claims, "exp"), iat + 300, "exp = iat + 300");
    assert!(!text(&claims, "jti").is_empty());
}

/// A resource server verifies the token with the served JWKS alone; a
/// token with a tampered payload, header or signature is refused.
#[tokio::test]
async fn offline_verification_against_served_jwks() {
    let server = Server::start(&[]);
    let client = server.create_client("verify", &["read", "write"]);
    let (token, rt) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");
    let keys = jwks(&server).await;
    let verifier = Verifier::new(keys.clone(), server.base.clone(), server.base.clone());

    let claims = verifier.verify(&token.access_token).expect("the token verifies offline");
    assert_eq!(claims.client_id, client.client_id);
    assert!(claims.has_scope("read") && claims.has_scope("write"));

    let (refreshed, _) = expect_refresh_token(&refresh(&client, &rt).send(&server).await, "refresh");
    verifier.verify(&refreshed.access_token).expect("a token from the refresh grant verifies offline");

    let parts: Vec<&str> = token.access_token.split('.').collect();
    let (header, mut payload) = jwt_parts(&token.access_token);

    payload["scope"] = Value::from("read write admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(verifier.verify(&tampered).err(), Some(VerifyError::BadSignature), "tampered payload");

    // The classic key-confusion forgery: alg switched to HS256 and a real
    // HMAC keyed with the public key as the attacker has it (the served JWK
    // and the whole JWKS document). A verifier that let the token choose
    // its algorithm would find this signature valid; ours must stop at the
    // algorithm check, before any signature is computed.
    let mut hs = header.clone();
    hs["alg"] = Value::from("HS256");
    let kid = text(&header, "kid");
    let public_jwk = serde_json::to_vec(keys.find(kid).expect("the token's key is served")).expect("JWK serializes");
    let public_jwks = serde_json::to_vec(&keys).expect("JWKS serializes");
    for public_key in [public_jwk, public_jwks] {
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(hs.to_string()), parts[1]);
        let mac =
            ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public_key), signing_input.as_bytes());
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert!(
            matches!(verifier.verify(&forged), Err(VerifyError::AlgorithmNotAllowed { ref got, .. }) if got == "HS256"),
            "an HS256 token keyed with the public key is refused by the algorithm check: {:?}",
            verifier.verify(&forged)
        );
    }

    let other_parts: Vec<&str> = refreshed.access_token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], parts[1], other_parts[2]);
    assert_eq!(verifier.verify(&tampered).err(), Some(VerifyError::BadSignature), "another token's signature");

    let elsewhere = Verifier::new(keys, server.base.clone(), "https://other.example");
    assert_eq!(elsewhere.verify(&token.access_token).err(), Some(VerifyError::WrongAudience));
}

/// The JWKS holds the active key and a pre-published next key, each with
/// its thumbprint as kid, and no private member.
#[tokio::test]
async fn jwks_publishes_active_and_next_keys_without_private_parts() {
    let server = Server::start(&[]);
    let resp = get(&server, "/.well-known/jwks.json").await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("application/jwk-set+json")),
        "content type {:?}",
        resp.header("content-type")
    );
    let raw = resp.json().expect("JSON");
    let raw_keys = raw["keys"].as_array().expect("a keys array");
    for key in raw_keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "the JWKS leaks the private member {private}: {key}");
        }
    }
    let keys = jwks(&server).await;
    assert!(keys.keys.len() >= 2, "the active and the next key: {raw}");
    let kids: BTreeSet<_> = keys.keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids.len(), keys.keys.len(), "distinct kids");
    for key in &keys.keys {
        assert_eq!(key.kid.as_deref().map(Ok), Some(key.thumbprint().as_deref()), "kid is the thumbprint: {key:?}");
        assert_eq!(key.alg.as_deref(), Some("ES256"));
        assert_eq!(key.use_.as_deref(), Some("sig"));
    }
}

/// RFC 8414 metadata with the endpoints under the issuer.
#[tokio::test]
async fn metadata_document() {
    let server = Server::start(&[]);
    let resp = get(&server, "/.well-known/oauth-authorization-server").await;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let meta: AuthorizationServerMetadata =
        serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("metadata ({e}): {}", resp.text()));
    assert_eq!(meta.issuer, server.base);
    assert_eq!(meta.token_endpoint, format!("{}/oauth2/token", server.base));
    assert_eq!(meta.jwks_uri, format!("{}/.well-known/jwks.json", server.base));
    let grants: BTreeSet<&str> = meta.grant_types_supported.iter().map(String::as_str).collect();
    assert_eq!(grants, BTreeSet::from(["client_credentials", "refresh_token"]));
    let methods: BTreeSet<&str> = meta.token_endpoint_auth_methods_supported.iter().map(String::as_str).collect();
    assert_eq!(methods, BTreeSet::from(["client_secret_basic", "client_secret_post", "private_key_jwt"]));
    let raw = resp.json().expect("JSON");
    assert!(raw["response_types_supported"].is_array(), "response_types_supported: {raw}");

    let jwks_path = meta.jwks_uri.strip_prefix(&server.base).expect("jwks_uri under the issuer");
    assert_eq!(get(&server, jwks_path).await.status, 200);
}

/// `GET /healthz`: 200 with a JSON body.
#[tokio::test]
async fn healthz_is_ok() {
    let server = Server::start(&[]);
    let resp = get(&server, "/healthz").await;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let body = resp.json().unwrap_or_else(|| panic!("a JSON body: {}", resp.text()));
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["background_tasks"], "ok", "every background task runs: {body}");
}

/// `--access-token-ttl 120`: expires_in and exp - iat are 120, for both grants.
#[tokio::test]
async fn access_token_ttl_flag_is_honoured() {
    let server = Server::start(&["--access-token-ttl", "120"]);
    let client = server.create_client("ttl", &[]);
    let (token, rt) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");
    let (refreshed, _) = expect_refresh_token(&refresh(&client, &rt).send(&server).await, "refresh");
    for (grant, token) in [("client_credentials", token), ("refresh_token", refreshed)] {
        assert_eq!(token.expires_in, 120, "{grant}: expires_in");
        let (_, claims) = jwt_parts(&token.access_token);
        assert_eq!(num(&claims, "exp") - num(&claims, "iat"), 120, "{grant}: exp - iat");
    }
}

/// Every access token has its own jti.
#[tokio::test]
async fn jti_is_unique() {
    let server = Server::start(&[]);
    let client = server.create_client("jti", &[]);
    let mut jtis = BTreeSet::new();
    let mut tokens = 0;
    for _ in 0..5 {
        let (token, mut rt) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");
        jtis.insert(text(&jwt_parts(&token.access_token).1, "jti").to_owned());
        tokens += 1;
        for _ in 0..3 {
            let (token, next) = expect_refresh_token(&refresh(&client, &rt).send(&server).await, "refresh");
            jtis.insert(text(&jwt_parts(&token.access_token).1, "jti").to_owned());
            tokens += 1;
            rt = next;
        }
    }
    assert_eq!(jtis.len(), tokens, "{tokens} tokens, {} distinct jti", jtis.len());
}

/// `--issuer` and `--audience` reach the claims, the metadata and the
/// verifier; the audience defaults to the issuer.
#[tokio::test]
async fn issuer_and_audience_flags() {
    let issuer = "https://auth.example.test";
    let server = Server::start(&["--issuer", issuer, "--audience", "api://orders"]);
    let client = server.create_client("iss", &[]);
    let token = expect_token(&cc(&client).send(&server).await, "client_credentials");
    let (_, claims) = jwt_parts(&token.access_token);
    assert_eq!(text(&claims, "iss"), issuer);
    assert_eq!(text(&claims, "aud"), "api://orders");
    Verifier::new(jwks(&server).await, issuer, "api://orders").verify(&token.access_token).expect("verifies");

    let resp = get(&server, "/.well-known/oauth-authorization-server").await;
    let meta: AuthorizationServerMetadata = serde_json::from_slice(&resp.body).expect("metadata");
    assert_eq!(meta.issuer, issuer);
    assert_eq!(meta.token_endpoint, format!("{issuer}/oauth2/token"));

    let server = Server::start(&["--issuer", issuer]);
    let client = server.create_client("iss-only", &[]);
    let token = expect_token(&cc(&client).send(&server).await, "client_credentials");
    assert_eq!(text(&jwt_parts(&token.access_token).1, "aud"), issuer, "aud defaults to the issuer");
}

/// `--signing-alg EdDSA`: an Ed25519 key in the JWKS and EdDSA tokens
/// that verify offline.
#[tokio::test]
async fn eddsa_signing() {
    let server = Server::start(&["--signing-alg", "EdDSA"]);
    let client = server.create_client("eddsa", &[]);
    let token = expect_token(&cc(&client).send(&server).await, "client_credentials");
    let (header, _) = jwt_parts(&token.access_token);
    assert_eq!(text(&header, "alg"), "EdDSA");
    let keys = jwks(&server).await;
    let key = keys.find(text(&header, "kid")).expect("the kid is published");
    assert_eq!((key.kty.as_str(), key.crv.as_deref()), ("OKP", Some("Ed25519")));
    Verifier::new(keys, server.base.clone(), server.base.clone())
        .verify(&token.access_token)
        .expect("an EdDSA token verifies offline");
}
