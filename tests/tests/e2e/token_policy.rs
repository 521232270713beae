//! Issue 16, per-client token policy: a client's own access-token lifetime
//! (`expires_in` and `exp - iat`) and audiences, of which RFC 8707
//! `resource` picks one (`invalid_target` for any other), as set by
//! `tessera-admin clients create` and shown by `clients show`.

use tessera_shared::admin::{ClientCredentials, ClientInfo};
use tessera_shared::verify::Verifier;

use crate::util::{Server, TokenCall, expect_error, expect_refresh_token, jwks, jwt_parts};

/// `clients create --name NAME --access-token-ttl ... --audience ... --json`.
pub fn create_with_policy(server: &Server, name: &str, ttl: Option<u64>, audiences: &[&str]) -> ClientCredentials {
    let ttl = ttl.map(|t| t.to_string());
    let mut args = vec!["clients", "create", "--name", name, "--json"];
    if let Some(ttl) = &ttl {
        args.extend(["--access-token-ttl", ttl.as_str()]);
    }
    for audience in audiences {
        args.extend(["--audience", audience]);
    }
    server.admin_json(&args)
}

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).f("grant_type", "client_credentials")
}

fn refresh(client: &ClientCredentials, token: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).f("grant_type", "refresh_token").f("refresh_token", token)
}

/// `exp - iat` and `aud` of an access token.
fn lifetime_and_audience(token: &str) -> (u64, String) {
    let (_, claims) = jwt_parts(token);
    let exp = claims["exp"].as_u64().expect("exp");
    let iat = claims["iat"].as_u64().expect("iat");
    (exp - iat, claims["aud"].as_str().expect("aud").to_owned())
}

#[tokio::test]
async fn a_clients_ttl_sets_expires_in_and_exp_and_is_shown() {
    let server = Server::start(&[]);
    let client = create_with_policy(&server, "short-lived", Some(60), &[]);
    assert_eq!(client.access_token_ttl_seconds, Some(60), "in the create output");

    let (first, refresh_token) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");
    assert_eq!(first.expires_in, 60);
    assert_eq!(lifetime_and_audience(&first.access_token), (60, server.base.clone()));
    let (refreshed, _) = expect_refresh_token(&refresh(&client, &refresh_token).send(&server).await, "refresh");
    assert_eq!(refreshed.expires_in, 60);
    assert_eq!(lifetime_and_audience(&refreshed.access_token).0, 60);

    // A client without its own lifetime keeps the server's.
    let plain = server.create_client("plain", &[]);
    let (token, _) = expect_refresh_token(&cc(&plain).send(&server).await, "plain client");
    assert_eq!((token.expires_in, lifetime_and_audience(&token.access_token).0), (300, 300));

    let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!(shown.access_token_ttl_seconds, Some(60));
    let text = server.admin_ok(&["clients", "show", &client.client_id]);
    assert!(text.contains("access-token ttl:        60 s"), "{text}");
}

#[tokio::test]
async fn resource_picks_one_of_the_clients_audiences() {
    let server = Server::start(&[]);
    let client = create_with_policy(&server, "two-apis", None, &["https://orders.test", "urn:example:billing"]);
    assert_eq!(client.audiences, ["https://orders.test", "urn:example:billing"]);

    let (default, refresh_token) = expect_refresh_token(&cc(&client).send(&server).await, "no resource");
    assert_eq!(lifetime_and_audience(&default.access_token).1, "https://orders.test", "the first by default");
    // In a form body and in the query string alike.
    for call in [cc(&client).f("resource", "urn:example:billing"), cc(&client).q("resource", "urn:example:billing")] {
        let (picked, _) = expect_refresh_token(&call.send(&server).await, "resource=urn:example:billing");
        assert_eq!(lifetime_and_audience(&picked.access_token).1, "urn:example:billing");
        // The signature covers it: a resource server for that audience accepts it.
        Verifier::new(jwks(&server).await, server.base.clone(), "urn:example:billing")
            .verify(&picked.access_token)
            .expect("verifies for the picked audience");
    }
    let (refreshed, _) = expect_refresh_token(
        &refresh(&client, &refresh_token).f("resource", "urn:example:billing").send(&server).await,
        "refresh with resource",
    );
    assert_eq!(lifetime_and_audience(&refreshed.access_token).1, "urn:example:billing");

    let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!(shown.audiences, ["https://orders.test", "urn:example:billing"]);
    let text = server.admin_ok(&["clients", "show", &client.client_id]);
    assert!(text.contains("audiences:               https://orders.test urn:example:billing"), "{text}");
}

#[tokio::test]
async fn a_foreign_resource_is_invalid_target() {
    let server = Server::start(&[]);
    let client = create_with_policy(&server, "one-api", None, &["https://orders.test"]);
    for foreign in ["https://evil.test", "https://orders.test/", server.base.as_str()] {
        let resp = cc(&client).f("resource", foreign).send(&server).await;
        expect_error(&resp, 400, "invalid_target", foreign);
        assert!(resp.header("www-authenticate").is_none(), "{foreign}: {}", resp.summary());
    }
    // On a refresh too; the refused request does not use the token up.
    let (_, refresh_token) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");
    let resp = refresh(&client, &refresh_token).f("resource", "https://evil.test").send(&server).await;
    expect_error(&resp, 400, "invalid_target", "refresh with a foreign resource");
    expect_refresh_token(&refresh(&client, &refresh_token).send(&server).await, "the same token afterwards");
    // RFC 8707 allows several resources; a token here has one audience.
    let resp =
        cc(&client).f("resource", "https://orders.test").q("resource", "https://orders.test").send(&server).await;
    expect_error(&resp, 400, "invalid_request", "resource twice");
    // Authentication comes first: a wrong secret with a foreign resource is invalid_client.
    let resp = TokenCall::new()
        .basic(&client.client_id, &"x".repeat(40))
        .f("grant_type", "client_credentials")
        .f("resource", "https://evil.test")
        .send(&server)
        .await;
    expect_error(&resp, 401, "invalid_client", "wrong secret and foreign resource");
}

#[tokio::test]
async fn a_client_without_audiences_may_name_only_the_servers() {
    let server = Server::start(&["--audience", "https://api.test"]);
    let client = server.create_client("plain", &[]);
    let (named, _) = expect_refresh_token(&cc(&client).f("resource", "https://api.test").send(&server).await, "named");
    assert_eq!(lifetime_and_audience(&named.access_token).1, "https://api.test");
    let resp = cc(&client).f("resource", "https://orders.test").send(&server).await;
    expect_error(&resp, 400, "invalid_target", "an audience the client does not have");
}

#[tokio::test]
async fn tokens_for_a_clients_audience_introspect_with_it() {
    let server = Server::start(&[]);
    let client = create_with_policy(&server, "introspected", Some(45), &["https://orders.test"]);
    let (token, _) = expect_refresh_token(&cc(&client).send(&server).await, "client_credentials");
    let resp = TokenCall::new()
        .basic_creds(&client)
        .f("token", &token.access_token)
        .send_to(&server, "/oauth2/introspect")
        .await;
    assert_eq!(resp.status, 200, "{}", resp.summary());
    let body = resp.json().expect("JSON");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["aud"], "https://orders.test", "{body}");
    assert_eq!(body["exp"].as_u64().unwrap() - body["iat"].as_u64().unwrap(), 45, "{body}");
}

#[tokio::test]
async fn the_cli_refuses_a_bad_lifetime_or_audience() {
    let server = Server::start(&["--access-token-ttl", "120"]);
    for (args, says) in [
        (vec!["--access-token-ttl", "0"], "between 1 and 120 seconds"),
        (vec!["--access-token-ttl", "121"], "between 1 and 120 seconds"),
        (vec!["--audience", "not a uri"], "absolute URI"),
        (vec!["--audience", "https://a.test#frag"], "absolute URI"),
    ] {
        let mut all = vec!["clients", "create", "--name", "bad"];
        all.extend(&args);
        let out = server.admin(&all);
        assert!(!out.status.success(), "{args:?} was accepted: {}", out.stdout);
        let stderr = out.stderr.trim();
        assert!(stderr.contains(says) && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
    let listed: Vec<ClientInfo> = server.admin_json(&["clients", "list", "--json"]);
    assert!(listed.is_empty(), "no client was created: {listed:?}");
    assert_eq!(create_with_policy(&server, "at the bound", Some(120), &[]).access_token_ttl_seconds, Some(120));
}
