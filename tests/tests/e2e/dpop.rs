//! Issue 16, DPoP (RFC 9449) through the real binaries, with proofs made
//! here ([`DpopKey`]): a bound token (`cnf.jkt`, `token_type` `DPoP`), a
//! bound refresh family,
//! every refused proof (400 `invalid_dpop_proof`), `--require-dpop`, the
//! metadata, introspection, `tessera-admin verify`, and the example
//! resource server accepting a bound token only with a proof of its key.

use serde_json::{Value, json};
use tessera_shared::admin::{ClientCredentials, ClientInfo};
use tessera_shared::wire::TokenResponse;

use crate::resource_servers::ResourceServer;
use crate::util::{
    Cases, DpopKey, HTTP_TIMEOUT, ProofClaims, Resp, Server, TokenCall, check_error, claims_json, expect_error,
    expect_refresh_token, expect_token, get, http, jwt_parts, now_unix, token_endpoint,
};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).f("grant_type", "client_credentials")
}

/// A 200 token response whose token is bound to `key`.
#[track_caller]
fn expect_bound(resp: &Resp, key: &DpopKey, context: &str) -> TokenResponse {
    assert_eq!(resp.status, 200, "{context}: {}", resp.summary());
    assert_eq!(resp.header("cache-control"), Some("no-store"), "{context}");
    let token: TokenResponse = serde_json::from_slice(&resp.body).expect("a token response");
    assert_eq!(token.token_type, "DPoP", "{context}");
    let (_, claims) = jwt_parts(&token.access_token);
    assert_eq!(claims["cnf"], json!({ "jkt": key.thumbprint() }), "{context}");
    token
}

/// 400 `invalid_dpop_proof` with its body and headers, and no challenge.
fn refused(resp: &Resp, description: &str) -> Result<(), String> {
    check_error(resp, 400, "invalid_dpop_proof")?;
    if let Some(challenge) = resp.header("www-authenticate") {
        return Err(format!("a 400 carries WWW-Authenticate {challenge:?}"));
    }
    let got = resp.json().and_then(|b| b["error_description"].as_str().map(str::to_owned));
    if got.as_deref() != Some(description) {
        return Err(format!("error_description {got:?}, expected {description:?}"));
    }
    Ok(())
}

#[tokio::test]
async fn a_proof_binds_the_access_token_to_its_key() {
    let server = Server::start(&[]);
    let client = server.create_client("bound", &["read"]);
    for key in [DpopKey::es256(), DpopKey::ed25519()] {
        let proof = key.proof(&token_endpoint(&server.base));
        let resp = cc(&client).header("DPoP", &proof).send(&server).await;
        let token = expect_bound(&resp, &key, "client_credentials with a proof");
        assert!(token.refresh_token.is_some());

        // Introspection reports the binding (RFC 9449 §6.2).
        let seen = TokenCall::new()
            .basic_creds(&client)
            .f("token", &token.access_token)
            .send_to(&server, "/oauth2/introspect")
            .await;
        let seen = seen.json().expect("introspection JSON");
        assert_eq!((seen["active"].clone(), seen["token_type"].clone()), (json!(true), json!("DPoP")));
        assert_eq!(seen["cnf"]["jkt"], key.thumbprint());

        // tessera-admin verify prints it.
        let out = server.admin_ok(&["verify", &token.access_token, "--jwks", &server.url("/.well-known/jwks.json")]);
        assert!(out.contains(&format!("cnf.jkt:   {}", key.thumbprint())), "{out}");
    }
    // Without a proof nothing changes: a Bearer token without cnf.
    let plain = expect_token(&cc(&client).send(&server).await, "no proof");
    assert!(jwt_parts(&plain.access_token).1.get("cnf").is_none());

    let metadata = get(&server, "/.well-known/oauth-authorization-server").await.json().expect("metadata");
    assert_eq!(metadata["dpop_signing_alg_values_supported"], json!(["ES256", "EdDSA", "RS256", "PS256"]));
}

#[tokio::test]
async fn every_bad_proof_is_invalid_dpop_proof() {
    let server = Server::start(&[]);
    let client = server.create_client("prover", &[]);
    let key = DpopKey::es256();
    let good = || token_endpoint(&server.base);
    let send = |proofs: Vec<String>| {
        let mut call = cc(&client);
        for proof in &proofs {
            call = call.header("DPoP", proof);
        }
        call.send(&server)
    };

    let mut cases = Cases::new();
    let replayed = key.proof(&good());
    expect_bound(&send(vec![replayed.clone()]).await, &key, "first use");
    cases.check("replayed jti", refused(&send(vec![replayed]).await, "the DPoP proof's jti was already used"));
    let wrong_htu = ProofClaims { htu: server.url("/oauth2/introspect"), ..good() };
    cases.check(
        "wrong htu",
        refused(&send(vec![key.proof(&wrong_htu)]).await, "the DPoP proof's htu does not match the request URI"),
    );
    let other_host = ProofClaims { htu: "https://tessera.example/oauth2/token".into(), ..good() };
    cases.check(
        "another server's htu",
        refused(&send(vec![key.proof(&other_host)]).await, "the DPoP proof's htu does not match the request URI"),
    );
    let wrong_htm = ProofClaims { htm: "GET".into(), ..good() };
    cases.check(
        "wrong htm",
        refused(&send(vec![key.proof(&wrong_htm)]).await, "the DPoP proof's htm does not match the request method"),
    );
    for (name, iat) in [("stale iat", now_unix() - 120), ("future iat", now_unix() + 120)] {
        let stale = ProofClaims { iat: Some(iat), ..good() };
        cases.check(name, refused(&send(vec![key.proof(&stale)]).await, "the DPoP proof's iat is not recent"));
    }
    cases.check(
        "malformed",
        refused(&send(vec!["not.a-proof".into()]).await, "the DPoP proof is not a well-formed JWT"),
    );
    cases.check(
        "two DPoP headers",
        refused(&send(vec![key.proof(&good()), key.proof(&good())]).await, "exactly one DPoP header is allowed"),
    );
    let typ_jwt = json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk()});
    cases.check(
        "typ JWT",
        refused(&send(vec![key.sign(&typ_jwt, &claims_json(&good()))]).await, "the DPoP proof's typ must be dpop+jwt"),
    );
    let none = json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()});
    cases.check(
        "alg none",
        refused(
            &send(vec![key.sign(&none, &claims_json(&good()))]).await,
            "the DPoP proof's alg must be one of ES256, EdDSA, RS256, PS256",
        ),
    );
    let mut private = key.jwk();
    private["d"] = json!("AAAA");
    let with_private = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private});
    cases.check(
        "private key in jwk",
        refused(
            &send(vec![key.sign(&with_private, &claims_json(&good()))]).await,
            "the DPoP proof's jwk must not contain a private key",
        ),
    );
    let other = DpopKey::es256();
    cases.check(
        "signed by another key",
        refused(
            &send(vec![other.sign(&key.header(), &claims_json(&good()))]).await,
            "the DPoP proof's signature is invalid",
        ),
    );
    cases.finish();

    // A refused proof wrote nothing: the client has no refresh family yet
    // beyond the one good request.
    let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!(shown.active_refresh_families, 1);
}

#[tokio::test]
async fn require_dpop_refuses_a_token_request_without_a_proof() {
    let server = Server::start(&[]);
    let client: ClientCredentials =
        server.admin_json(&["clients", "create", "--name", "strict", "--require-dpop", "--json"]);
    assert!(client.require_dpop, "in the create output");

    let resp = cc(&client).send(&server).await;
    refused(&resp, "a DPoP proof is required").unwrap();
    // Client authentication still comes first: a wrong secret is invalid_client.
    let wrong = TokenCall::new().basic(&client.client_id, "wrong").f("grant_type", "client_credentials");
    expect_error(&wrong.send(&server).await, 401, "invalid_client", "wrong secret");

    let key = DpopKey::ed25519();
    let resp = cc(&client).header("DPoP", &key.proof(&token_endpoint(&server.base))).send(&server).await;
    expect_bound(&resp, &key, "with a proof");

    let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert!(shown.require_dpop);
    let text = server.admin_ok(&["clients", "show", &client.client_id]);
    assert!(text.contains("DPoP:                    required"), "{text}");
    let plain = server.create_client("lenient", &[]);
    let text = server.admin_ok(&["clients", "show", &plain.client_id]);
    assert!(text.contains("DPoP:                    optional"), "{text}");
}

/// One GET to the example resource server's protected endpoint.
async fn call(rs: &ResourceServer, authorization: &str, proof: Option<&str>) -> Resp {
    let mut request = http()
        .get(format!("{}/api/v1/organization", rs.base))
        .timeout(HTTP_TIMEOUT)
        .header("Authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    Resp::from_reqwest(request.send().await.expect("the resource server answers")).await
}

#[tokio::test]
async fn the_example_resource_server_takes_a_bound_token_only_with_its_keys_proof() {
    let server = Server::start(&[]);
    let rs = ResourceServer::start(&["--jwks", &server.url("/.well-known/jwks.json"), "--issuer", &server.base]);
    let client = server.create_client("api-caller", &["organization:read"]);
    let key = DpopKey::es256();
    let resp = cc(&client).header("DPoP", &key.proof(&token_endpoint(&server.base))).send(&server).await;
    let token = expect_bound(&resp, &key, "token").access_token;
    let for_rs = |key: &DpopKey| {
        key.proof(&ProofClaims {
            htm: "GET".into(),
            htu: format!("{}/api/v1/organization", rs.base),
            access_token: Some(token.clone()),
            ..ProofClaims::default()
        })
    };

    let proof = for_rs(&key);
    let ok = call(&rs, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(ok.status, 200, "{}", ok.summary());
    assert_eq!(ok.json().expect("JSON")["client_id"], client.client_id.as_str());

    let algs = r#"algs="ES256 EdDSA RS256 PS256""#;
    let as_bearer = call(&rs, &format!("Bearer {token}"), None).await;
    assert_eq!(as_bearer.status, 401, "{}", as_bearer.summary());
    let challenge = as_bearer.header("www-authenticate").expect("a challenge");
    assert!(challenge.starts_with(r#"DPoP error="invalid_token""#) && challenge.ends_with(algs), "{challenge}");
    assert_eq!(as_bearer.json().expect("JSON")["error"], "invalid_token");

    let replayed = call(&rs, &format!("DPoP {token}"), Some(&proof)).await;
    let stolen_key = DpopKey::es256();
    let another_key = call(&rs, &format!("DPoP {token}"), Some(&for_rs(&stolen_key))).await;
    let no_proof = call(&rs, &format!("DPoP {token}"), None).await;
    for (name, resp) in [("replayed proof", replayed), ("another key's proof", another_key), ("no proof", no_proof)] {
        assert_eq!(resp.status, 401, "{name}: {}", resp.summary());
        let challenge = resp.header("www-authenticate").expect("a challenge");
        assert!(
            challenge.starts_with(r#"DPoP error="invalid_dpop_proof""#) && challenge.ends_with(algs),
            "{name}: {challenge}"
        );
        assert_eq!(resp.json().expect("JSON")["error"], "invalid_dpop_proof", "{name}");
    }

    // An unbound token keeps working as Bearer.
    let plain = expect_token(&cc(&client).send(&server).await, "plain").access_token;
    let bearer: Value = call(&rs, &format!("Bearer {plain}"), None).await.json().expect("JSON");
    assert_eq!(bearer["client_id"], client.client_id.as_str());
}

/// One proof sent by 16 requests at once (a barrier releases them
/// together): exactly one gets a token, every other is told the `jti` was
/// already used.
#[tokio::test]
async fn a_proof_raced_by_concurrent_requests_is_accepted_once() {
    const N: usize = 16;
    let server = Server::start(&["--rate-limit", "false"]);
    let client = server.create_client("racer", &[]);
    let key = DpopKey::es256();
    let proof = key.proof(&token_endpoint(&server.base));
    let auth = crate::util::basic(&client.client_id, &client.client_secret);
    let url = server.url("/oauth2/token?grant_type=client_credentials");
    let (http, barrier) = (http(), std::sync::Arc::new(tokio::sync::Barrier::new(N)));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (http, auth, url, proof, barrier) =
                (http.clone(), auth.clone(), url.clone(), proof.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let resp = http.post(&url).header("Authorization", auth).header("DPoP", proof).send().await;
                Resp::from_reqwest(resp.expect("the request completes")).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(N);
    for task in tasks {
        answers.push(task.await.expect("the request task"));
    }
    let accepted = answers.iter().filter(|resp| resp.status == 200).count();
    assert_eq!(accepted, 1, "{:?}", answers.iter().map(Resp::summary).collect::<Vec<_>>());
    for resp in answers.iter().filter(|resp| resp.status != 200) {
        refused(resp, "the DPoP proof's jti was already used").unwrap();
    }
}

/// Property: whatever bytes a `DPoP` header holds (CR and LF excluded),
/// and whatever JSON a proof-shaped header holds, a client that
/// authenticates gets 400 `invalid_dpop_proof` (or hyper's empty 400 for
/// values HTTP forbids), never a 5xx or a token.
#[test]
fn any_dpop_header_gets_invalid_dpop_proof() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use crate::util::{basic, raw_exchange, raw_request};

    let server = Server::start(&["--rate-limit", "false"]);
    let client = server.create_client("prop", &[]);
    let authorization = basic(&client.client_id, &client.client_secret);
    let key = DpopKey::es256();
    let raw = proptest::collection::vec(any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'), 0..300);
    let members = prop_oneof![
        Just(json!("dpop+jwt")),
        Just(json!("ES256")),
        Just(json!("none")),
        Just(json!(null)),
        Just(json!(12)),
        Just(json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"})),
        Just(json!({"kty": "oct", "k": "AAAA"})),
        "[ -~]{0,40}".prop_map(Value::from),
    ];
    let names = prop_oneof![Just("typ"), Just("alg"), Just("jwk"), Just("kid"), Just("crit")];
    let header = proptest::collection::btree_map(names, members, 0..5);
    let shaped = (header, any::<bool>()).prop_map(move |(header, signed)| {
        let header: serde_json::Map<String, Value> = header.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let header = Value::Object(header);
        // Signed by a real key over the arbitrary header, or not at all.
        let proof = if signed {
            key.sign(&header, &claims_json(&token_endpoint("http://x")))
        } else {
            format!("{}.e30.AAAA", URL_SAFE_NO_PAD.encode(header.to_string()))
        };
        proof.into_bytes()
    });
    let mut runner = TestRunner::new(Config { cases: 160, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop_oneof![raw, shaped], |value| {
            let Ok(text) = std::str::from_utf8(&value) else { return Ok(()) };
            let reaches_endpoint = http::HeaderValue::from_bytes(&value).is_ok();
            let request = raw_request(
                "POST",
                "/oauth2/token?grant_type=client_credentials",
                server.addr,
                &[("Authorization", &authorization), ("DPoP", text)],
                b"",
            );
            let resp = raw_exchange(server.addr, &request).map_err(TestCaseError::fail)?;
            let ok = match resp.status {
                400 if !reaches_endpoint && resp.body.is_empty() => Ok(()),
                _ if !reaches_endpoint => Err(format!("hyper's empty 400 expected, got {}", resp.summary())),
                _ => check_error(&resp, 400, "invalid_dpop_proof"),
            };
            ok.map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

fn refresh(client: &ClientCredentials, refresh_token: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).f("grant_type", "refresh_token").f("refresh_token", refresh_token)
}

/// The refresh token of a bound access token.
#[track_caller]
fn bound_refresh_token(resp: &Resp, key: &DpopKey, context: &str) -> String {
    expect_bound(resp, key, context).refresh_token.unwrap_or_else(|| panic!("{context}: no refresh token"))
}

/// RFC 9449 §5: a family started with a proof is bound to that key. A
/// refresh without a proof, or with another key's, is 400
/// `invalid_dpop_proof` and changes nothing: checked before reuse, so
/// whoever holds a stolen refresh token but not the key cannot even get
/// the family revoked. With the key's proof it rotates as usual, and an
/// unbound family stays free to refresh with or without a proof.
#[tokio::test]
async fn a_bound_refresh_family_needs_a_proof_of_its_key() {
    let server = Server::start(&[]);
    let client = server.create_client("bound-family", &["read"]);
    let (key, other) = (DpopKey::es256(), DpopKey::ed25519());
    let endpoint = token_endpoint(&server.base);
    let first = bound_refresh_token(
        &cc(&client).header("DPoP", &key.proof(&endpoint)).send(&server).await,
        &key,
        "client_credentials with a proof",
    );
    let mismatch = "the refresh token is bound to another DPoP key";

    let mut cases = Cases::new();
    cases.check("refresh without a proof", refused(&refresh(&client, &first).send(&server).await, mismatch));
    let with_other = refresh(&client, &first).header("DPoP", &other.proof(&endpoint)).send(&server).await;
    cases.check("refresh with another key's proof", refused(&with_other, mismatch));
    cases.finish();

    // Nothing changed: the key's holder refreshes with the same token.
    let second = bound_refresh_token(
        &refresh(&client, &first).header("DPoP", &key.proof(&endpoint)).send(&server).await,
        &key,
        "refresh with the key's proof",
    );
    // The rotated token without the key: still only invalid_dpop_proof, and
    // the family lives on (no reuse is detected for someone without the key).
    expect_error(&refresh(&client, &first).send(&server).await, 400, "invalid_dpop_proof", "old token, no proof");
    let third = bound_refresh_token(
        &refresh(&client, &second).header("DPoP", &key.proof(&endpoint)).send(&server).await,
        &key,
        "the family survived a keyless replay",
    );
    // With the key, presenting a rotated token again is reuse as always.
    let replay = refresh(&client, &second).header("DPoP", &key.proof(&endpoint)).send(&server).await;
    expect_error(&replay, 400, "invalid_grant", "a rotated token with the key's proof");
    let revoked = refresh(&client, &third).header("DPoP", &key.proof(&endpoint)).send(&server).await;
    expect_error(&revoked, 400, "invalid_grant", "the reused family is revoked");

    // An unbound family: a refresh without a proof gets a Bearer token, one
    // with a proof a token bound to that key.
    let plain = expect_refresh_token(&cc(&client).send(&server).await, "no proof").1;
    let (token, next) = expect_refresh_token(&refresh(&client, &plain).send(&server).await, "unbound refresh");
    assert_eq!(token.token_type, "Bearer");
    let upgraded = refresh(&client, &next).header("DPoP", &other.proof(&endpoint)).send(&server).await;
    expect_bound(&upgraded, &other, "an unbound family refreshed with a proof");
}
