//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect`
//! (RFC 7662) through the real server: every outcome, every error path.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_shared::admin::ClientCredentials;
use tessera_shared::wire::AuthorizationServerMetadata;

use crate::util::{Resp, Server, TokenCall, expect_error, expect_refresh_token, expect_token, get, now_unix, pause};

const REVOKE: &str = "/oauth2/revoke";
const INTROSPECT: &str = "/oauth2/introspect";

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

async fn tokens(server: &Server, client: &ClientCredentials) -> (String, String) {
    let (token, rt) = expect_refresh_token(&cc(client).send(server).await, "client_credentials");
    (token.access_token, rt)
}

async fn revoke(server: &Server, caller: &ClientCredentials, token: &str, hint: Option<&str>) -> Resp {
    let mut call = TokenCall::new().basic_creds(caller).f("token", token);
    if let Some(hint) = hint {
        call = call.f("token_type_hint", hint);
    }
    call.send_to(server, REVOKE).await
}

/// Revocation answers 200, an empty body and no-store, whatever the token.
#[track_caller]
fn expect_revoked(resp: &Resp, context: &str) {
    assert_eq!(resp.status, 200, "{context}: {}", resp.summary());
    assert!(resp.body.is_empty(), "{context}: the body is empty: {}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"), "{context}");
}

async fn introspect(server: &Server, caller: &ClientCredentials, token: &str) -> Value {
    let resp = TokenCall::new().basic_creds(caller).f("token", token).send_to(server, INTROSPECT).await;
    assert_eq!(resp.status, 200, "introspect: {}", resp.summary());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert!(resp.header("content-type").is_some_and(|ct| ct.starts_with("application/json")));
    resp.json().unwrap_or_else(|| panic!("introspection is JSON: {}", resp.text()))
}

#[track_caller]
fn expect_inactive(body: &Value, context: &str) {
    assert_eq!(body, &json!({ "active": false }), "{context}: an inactive token is only {{\"active\":false}}");
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

#[tokio::test]
async fn metadata_lists_both_endpoints() {
    let server = Server::start(&[]);
    let resp = get(&server, "/.well-known/oauth-authorization-server").await;
    let doc: AuthorizationServerMetadata = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(doc.revocation_endpoint, Some(server.url(REVOKE)));
    assert_eq!(doc.introspection_endpoint, Some(server.url(INTROSPECT)));
}

/// An active access token: every RFC 7662 member; a refresh token: its own.
#[tokio::test]
async fn introspection_describes_active_tokens() {
    let server = Server::start(&[]);
    let owner = server.create_client("owner", &["read", "write"]);
    let other = server.create_client("introspector", &[]);
    let token = expect_token(&cc(&owner).q("scope", "read").send(&server).await, "scoped");
    let rt = token.refresh_token.clone().unwrap();

    // Any active client may introspect any token.
    let body = introspect(&server, &other, &token.access_token).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["scope"], "read");
    assert_eq!(body["client_id"], owner.client_id.as_str());
    assert_eq!(body["sub"], owner.client_id.as_str());
    assert_eq!(body["iss"], server.base.as_str());
    assert_eq!(body["aud"], server.base.as_str());
    assert_eq!(body["token_type"], "Bearer");
    let iat = body["iat"].as_u64().unwrap();
    assert!(iat.abs_diff(now_unix()) <= 60);
    assert_eq!(body["exp"].as_u64(), Some(iat + 300));

    let body = introspect(&server, &other, &rt).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "refresh_token");
    assert_eq!(body["client_id"], owner.client_id.as_str());
    assert_eq!(body["scope"], "read");
    assert!(body["exp"].as_u64().unwrap() > now_unix() + 86_400, "refresh tokens live for days");

    // After a rotation the old refresh token is inactive and the new one active.
    let (_, next) = expect_refresh_token(&refresh(&owner, &rt).send(&server).await, "rotation");
    expect_inactive(&introspect(&server, &owner, &rt).await, "a rotated refresh token");
    assert_eq!(introspect(&server, &owner, &next).await["active"], true);
    // The hint is only a hint: a wrong one still finds the token.
    let resp = TokenCall::new()
        .basic_creds(&owner)
        .f("token", &next)
        .f("token_type_hint", "access_token")
        .send_to(&server, INTROSPECT)
        .await;
    assert_eq!(resp.json().unwrap()["active"], true);
}

#[tokio::test]
async fn introspection_reports_bad_tokens_inactive() {
    let server = Server::start(&[]);
    let client = server.create_client("c", &[]);
    let (at, _) = tokens(&server, &client).await;
    for (name, token) in [
        ("garbage", "not-a-token".to_owned()),
        ("an unknown refresh token", "A".repeat(40)),
        ("a bad signature", format!("{}AAAA", &at[..at.len() - 4])),
        ("a token of another issuer's shape", format!("{}.e30.c2ln", at.split('.').next().unwrap())),
    ] {
        expect_inactive(&introspect(&server, &client, &token).await, name);
    }
}

#[tokio::test]
async fn introspection_reports_expired_access_tokens_inactive() {
    let server = Server::start(&["--access-token-ttl", "1"]);
    let client = server.create_client("c", &[]);
    let (at, _) = tokens(&server, &client).await;
    // The token is valid through its exp second; 2.5 s later it is not.
    pause(Duration::from_millis(2500));
    expect_inactive(&introspect(&server, &client, &at).await, "an expired access token");
}

#[tokio::test]
async fn tokens_of_revoked_and_deleted_clients_are_inactive() {
    let server = Server::start(&[]);
    let watcher = server.create_client("watcher", &[]);
    let revoked = server.create_client("revoked", &[]);
    let deleted = server.create_client("deleted", &[]);
    let (revoked_at, revoked_rt) = tokens(&server, &revoked).await;
    let (deleted_at, deleted_rt) = tokens(&server, &deleted).await;
    assert_eq!(introspect(&server, &watcher, &revoked_at).await["active"], true);

    server.admin_ok(&["clients", "revoke", &revoked.client_id]);
    server.admin_ok(&["clients", "delete", &deleted.client_id]);
    for (name, token) in [
        ("revoked client's access token", &revoked_at),
        ("revoked client's refresh token", &revoked_rt),
        ("deleted client's access token", &deleted_at),
        ("deleted client's refresh token", &deleted_rt),
    ] {
        expect_inactive(&introspect(&server, &watcher, token).await, name);
    }
    // A revoked client cannot introspect either.
    let resp = TokenCall::new().basic_creds(&revoked).f("token", &revoked_at).send_to(&server, INTROSPECT).await;
    expect_error(&resp, 401, "invalid_client", "a revoked client introspecting");
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let server = Server::start(&[]);
    let client = server.create_client("c", &[]);
    let (_, first) = tokens(&server, &client).await;
    let (_, second) = expect_refresh_token(&refresh(&client, &first).send(&server).await, "rotation");
    let (_, unrelated) = tokens(&server, &client).await;

    expect_revoked(&revoke(&server, &client, &second, Some("refresh_token")).await, "revoke");
    let resp = refresh(&client, &second).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "a revoked refresh token");
    expect_inactive(&introspect(&server, &client, &second).await, "revoked refresh token");
    // Another family of the same client lives on.
    expect_refresh_token(&refresh(&client, &unrelated).send(&server).await, "the other family");
    // Revoking again, or with the rotated predecessor, is still 200.
    expect_revoked(&revoke(&server, &client, &second, None).await, "again");
    expect_revoked(&revoke(&server, &client, &first, None).await, "the predecessor");
}

#[tokio::test]
async fn revoking_an_access_token_deny_lists_it() {
    let server = Server::start(&[]);
    let client = server.create_client("c", &[]);
    let (at, rt) = tokens(&server, &client).await;
    let (other_at, _) = tokens(&server, &client).await;
    // The hint says refresh_token; it is only a hint.
    expect_revoked(&revoke(&server, &client, &at, Some("refresh_token")).await, "revoke an access token");
    expect_inactive(&introspect(&server, &client, &at).await, "a deny-listed access token");
    assert_eq!(introspect(&server, &client, &other_at).await["active"], true, "only that jti");
    // The refresh token of the same grant is not touched.
    expect_refresh_token(&refresh(&client, &rt).send(&server).await, "the refresh token still works");
}

#[tokio::test]
async fn unknown_and_foreign_tokens_get_200_and_nothing_changes() {
    let server = Server::start(&[]);
    let owner = server.create_client("owner", &[]);
    let stranger = server.create_client("stranger", &[]);
    let (at, rt) = tokens(&server, &owner).await;

    for token in ["garbage", &"B".repeat(40), "a.b.c"] {
        expect_revoked(&revoke(&server, &owner, token, None).await, "unknown token");
    }
    expect_revoked(&revoke(&server, &stranger, &rt, Some("refresh_token")).await, "another client's refresh token");
    expect_revoked(&revoke(&server, &stranger, &at, Some("access_token")).await, "another client's access token");
    assert_eq!(introspect(&server, &owner, &at).await["active"], true, "the access token was not revoked");
    expect_refresh_token(&refresh(&owner, &rt).send(&server).await, "the refresh token was not revoked");
}

/// Client authentication and request errors, identical to the token
/// endpoint's, at both endpoints.
#[tokio::test]
async fn errors_match_the_token_endpoint() {
    let server = Server::start(&[]);
    let client = server.create_client("c", &[]);
    let (at, _) = tokens(&server, &client).await;
    let wrong = ClientCredentials { client_secret: "x".repeat(40), ..client.clone() };
    for path in [REVOKE, INTROSPECT] {
        let resp = TokenCall::new().f("token", &at).send_to(&server, path).await;
        expect_error(&resp, 401, "invalid_client", &format!("{path}: no credentials"));
        let resp = TokenCall::new().basic_creds(&wrong).f("token", &at).send_to(&server, path).await;
        expect_error(&resp, 401, "invalid_client", &format!("{path}: wrong secret"));
        let resp = TokenCall::new().form_creds(&wrong).f("token", &at).send_to(&server, path).await;
        expect_error(&resp, 401, "invalid_client", &format!("{path}: wrong secret in the body"));
        let resp = TokenCall::new().basic_creds(&client).send_to(&server, path).await;
        expect_error(&resp, 400, "invalid_request", &format!("{path}: no token"));
        let resp = TokenCall::new().basic_creds(&client).f("token", "a").f("token", "b").send_to(&server, path).await;
        expect_error(&resp, 400, "invalid_request", &format!("{path}: token repeated"));
        let resp =
            TokenCall::new().basic_creds(&client).form_creds(&client).f("token", &at).send_to(&server, path).await;
        expect_error(&resp, 400, "invalid_request", &format!("{path}: credentials twice"));
        let resp = TokenCall::new()
            .method(reqwest::Method::GET)
            .basic_creds(&client)
            .q("token", &at)
            .send_to(&server, path)
            .await;
        expect_error(&resp, 400, "invalid_request", &format!("{path}: GET"));
        assert_eq!(resp.header("allow"), Some("POST"), "{path}: GET names the allowed method");
        let resp = TokenCall::new()
            .basic_creds(&client)
            .body(Some("application/json"), format!("{{\"token\":\"{at}\"}}"))
            .send_to(&server, path)
            .await;
        expect_error(&resp, 400, "invalid_request", &format!("{path}: JSON body"));
    }
    // Credentials in the query string, as the token endpoint takes them.
    let resp = TokenCall::new().query_creds(&client).f("token", &at).send_to(&server, INTROSPECT).await;
    assert_eq!(resp.json().unwrap()["active"], true, "{}", resp.summary());
}
