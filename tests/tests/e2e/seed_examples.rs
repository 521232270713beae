//! The four curl examples of the Blynk authentication page, sent as the page
//! sends them (everything in the query string, no body), then the RFC 6749
//! form-body variants, a byte-exact curl request over TCP, and the real
//! `curl` command line when it is installed.

use std::collections::BTreeSet;
use std::process::Command;

use tessera_shared::wire::TokenResponse;

use crate::util::{Resp, Server, TokenCall, expect_refresh_token, raw_exchange, raw_request, run_to_exit};

/// The exact field set of the page's example response (unscoped client).
fn assert_page_shape(resp: &Resp, context: &str) {
    let body = resp.json().unwrap_or_else(|| panic!("{context}: body is not JSON: {}", resp.text()));
    let keys: BTreeSet<&str> = body.as_object().expect("a JSON object").keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = ["access_token", "token_type", "expires_in", "refresh_token"].into();
    assert_eq!(keys, expected, "{context}: the fields of the page's example response");
    assert_eq!(body["expires_in"], 300, "{context}: expires_in is 300 by default");
    assert_eq!(body["token_type"], "Bearer", "{context}");
}

/// Page example 1: `curl -X POST -u {clientId}:{clientSecret}
/// https://{server}/oauth2/token?grant_type=client_credentials`.
#[tokio::test]
async fn seed_1_basic_header_client_credentials() {
    let server = Server::start(&[]);
    let client = server.create_client("seed-1", &[]);
    let resp = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials").send(&server).await;
    expect_refresh_token(&resp, "seed example 1");
    assert_page_shape(&resp, "seed example 1");
}

/// Page example 2: `curl -X POST -u {clientId}:{clientSecret}
/// https://{server}/oauth2/token?grant_type=refresh_token&refresh_token={refreshToken}`.
#[tokio::test]
async fn seed_2_basic_header_refresh_token() {
    let server = Server::start(&[]);
    let client = server.create_client("seed-2", &[]);
    let first = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials").send(&server).await;
    let (_, rt) = expect_refresh_token(&first, "client_credentials before seed example 2");

    let resp = TokenCall::new()
        .basic_creds(&client)
        .q("grant_type", "refresh_token")
        .q("refresh_token", &rt)
        .send(&server)
        .await;
    let (_, next) = expect_refresh_token(&resp, "seed example 2");
    assert_page_shape(&resp, "seed example 2");
    assert_ne!(next, rt, "the refresh grant rotates the refresh token");
}

/// Page example 3: `curl -X POST https://{server}/oauth2/token?
/// grant_type=client_credentials&client_id={clientId}&client_secret={clientSecret}`.
#[tokio::test]
async fn seed_3_query_parameters_client_credentials() {
    let server = Server::start(&[]);
    let client = server.create_client("seed-3", &[]);
    let resp = TokenCall::new()
        .q("grant_type", "client_credentials")
        .q("client_id", &client.client_id)
        .q("client_secret", &client.client_secret)
        .send(&server)
        .await;
    expect_refresh_token(&resp, "seed example 3");
    assert_page_shape(&resp, "seed example 3");
}

/// Page example 4: `curl -X POST https://{server}/oauth2/token?
/// grant_type=refresh_token&refresh_token={refreshToken}&client_id={clientId}&client_secret={clientSecret}`.
#[tokio::test]
async fn seed_4_query_parameters_refresh_token() {
    let server = Server::start(&[]);
    let client = server.create_client("seed-4", &[]);
    let first = TokenCall::new().q("grant_type", "client_credentials").query_creds(&client).send(&server).await;
    let (_, rt) = expect_refresh_token(&first, "client_credentials before seed example 4");

    let resp = TokenCall::new()
        .q("grant_type", "refresh_token")
        .q("refresh_token", &rt)
        .q("client_id", &client.client_id)
        .q("client_secret", &client.client_secret)
        .send(&server)
        .await;
    let (_, next) = expect_refresh_token(&resp, "seed example 4");
    assert_page_shape(&resp, "seed example 4");
    assert_ne!(next, rt, "the refresh grant rotates the refresh token");
}

/// The RFC 6749 way: `client_secret_post` and grant parameters in a form
/// body, for both grants.
#[tokio::test]
async fn form_body_client_secret_post_both_grants() {
    let server = Server::start(&[]);
    let client = server.create_client("form-post", &[]);
    let resp = TokenCall::new().f("grant_type", "client_credentials").form_creds(&client).send(&server).await;
    let (_, rt) = expect_refresh_token(&resp, "form body client_credentials");
    assert_page_shape(&resp, "form body client_credentials");

    let resp = TokenCall::new()
        .f("grant_type", "refresh_token")
        .f("refresh_token", &rt)
        .form_creds(&client)
        .send(&server)
        .await;
    expect_refresh_token(&resp, "form body refresh_token");
}

/// `client_secret_basic` with the grant in a form body, for both grants.
#[tokio::test]
async fn form_body_with_basic_header_both_grants() {
    let server = Server::start(&[]);
    let client = server.create_client("form-basic", &[]);
    let resp = TokenCall::new().basic_creds(&client).f("grant_type", "client_credentials").send(&server).await;
    let (_, rt) = expect_refresh_token(&resp, "Basic + form client_credentials");

    let resp = TokenCall::new()
        .basic_creds(&client)
        .f("grant_type", "refresh_token")
        .f("refresh_token", &rt)
        .send(&server)
        .await;
    expect_refresh_token(&resp, "Basic + form refresh_token");
}

/// Parameters may be split between query string and body.
#[tokio::test]
async fn parameters_split_between_query_and_body() {
    let server = Server::start(&[]);
    let client = server.create_client("split", &[]);
    let resp = TokenCall::new().q("grant_type", "client_credentials").form_creds(&client).send(&server).await;
    let (_, rt) = expect_refresh_token(&resp, "grant_type in query, credentials in body");

    let resp = TokenCall::new()
        .q("grant_type", "refresh_token")
        .f("refresh_token", &rt)
        .query_creds(&client)
        .send(&server)
        .await;
    expect_refresh_token(&resp, "grant_type and credentials in query, refresh_token in body");
}

/// Real clients send `application/x-www-form-urlencoded; charset=UTF-8` and
/// encode spaces as `+`; both are plain form bodies.
#[tokio::test]
async fn form_body_with_charset_parameter_is_accepted() {
    let server = Server::start(&[]);
    let client = server.create_client("charset", &[]);
    let body =
        format!("grant_type=client_credentials&client_id={}&client_secret={}", client.client_id, client.client_secret);
    let resp =
        TokenCall::new().body(Some("application/x-www-form-urlencoded; charset=UTF-8"), body).send(&server).await;
    expect_refresh_token(&resp, "form body with a charset parameter");
}

/// The bytes curl puts on the wire for example 1: no body and no
/// `Content-Length`, a `User-Agent` and `Accept: */*`.
#[tokio::test]
async fn seed_1_as_curl_puts_it_on_the_wire() {
    let server = Server::start(&[]);
    let client = server.create_client("wire", &[]);
    let auth = crate::util::basic(&client.client_id, &client.client_secret);
    let request = raw_request(
        "POST",
        "/oauth2/token?grant_type=client_credentials",
        server.addr,
        &[("Authorization", &auth), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")],
        b"",
    );
    let resp = raw_exchange(server.addr, &request).unwrap_or_else(|e| panic!("no response: {e}"));
    expect_refresh_token(&resp, "seed example 1 on the wire");
    assert_page_shape(&resp, "seed example 1 on the wire");
}

fn curl_available() -> bool {
    Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Runs `curl -s -X POST [ -u ID:SECRET ] URL` as the README shows it.
fn curl(user: Option<&str>, url: &str) -> TokenResponse {
    let mut cmd = Command::new("curl");
    for var in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
        cmd.env_remove(var);
    }
    cmd.args(["-s", "-X", "POST"]);
    if let Some(user) = user {
        cmd.args(["-u", user]);
    }
    cmd.arg(url);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let out = run_to_exit(cmd, crate::util::EXIT_TIMEOUT, &format!("curl {url}"));
    assert!(out.status.success(), "curl {url} failed: {}", out.stderr);
    let token: TokenResponse = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("curl {url} printed no token response ({e}): {}", out.stdout));
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.expires_in, 300);
    token
}

/// The page's examples through the real curl command line, when curl is
/// installed (the README shows them this way).
#[tokio::test]
async fn seed_examples_through_real_curl() {
    if !curl_available() {
        crate::util::skip_or_fail(
            crate::util::Requirement::Curl,
            "seed_examples_through_real_curl",
            "curl is not installed",
        );
        return;
    }
    let server = Server::start(&[]);
    let client = server.create_client("curl", &[]);
    let user = format!("{}:{}", client.client_id, client.client_secret);
    let endpoint = server.url("/oauth2/token");

    let first = curl(Some(&user), &format!("{endpoint}?grant_type=client_credentials"));
    let rt = first.refresh_token.expect("curl example 1 returns a refresh token");

    let second = curl(Some(&user), &format!("{endpoint}?grant_type=refresh_token&refresh_token={rt}"));
    let rt = second.refresh_token.expect("curl example 2 returns a refresh token");

    let third = curl(
        None,
        &format!(
            "{endpoint}?grant_type=client_credentials&client_id={}&client_secret={}",
            client.client_id, client.client_secret
        ),
    );
    assert!(third.refresh_token.is_some(), "curl example 3 returns a refresh token");

    let fourth = curl(
        None,
        &format!(
            "{endpoint}?grant_type=refresh_token&refresh_token={rt}&client_id={}&client_secret={}",
            client.client_id, client.client_secret
        ),
    );
    assert!(fourth.refresh_token.is_some(), "curl example 4 returns a refresh token");
}
