//! No secret reaches the server's output: a whole flow at `TESSERA_LOG=debug`
//! (Basic and query-string credentials, refreshes, reuse, wrong secrets,
//! revocation and introspection, secret rotation), then the complete stdout and stderr of the gracefully
//! stopped server are searched for every secret and token of the flow.

use std::time::{Duration, Instant};

use tessera_shared::admin::ClientCredentials;

use crate::util::{Resp, Server, TokenCall, basic, check_error, expect_refresh_token};

/// Everything that must never be logged, with what it is.
#[derive(Debug, Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        self.0.push((what.to_owned(), value.to_owned()));
    }

    fn add_access_token(&mut self, what: &str, token: &str) {
        self.add(what, token);
        let signature = token.rsplit('.').next().expect("a signature part");
        self.add(&format!("{what} (signature)"), signature);
    }

    /// Expects a token answer with a refresh token, records both tokens
    /// as `access token (what)` and `refresh token (what)`, and returns
    /// the refresh token.
    fn tokens_of(&mut self, resp: &Resp, context: &str, what: &str) -> String {
        let (token, refresh_token) = expect_refresh_token(resp, context);
        self.add_access_token(&format!("access token ({what})"), &token.access_token);
        self.add(&format!("refresh token ({what})"), &refresh_token);
        refresh_token
    }

    fn add_client(&mut self, what: &str, client: &ClientCredentials) {
        self.add(what, &client.client_secret);
        let header = basic(&client.client_id, &client.client_secret);
        self.add(&format!("{what} (Basic header)"), header.trim_start_matches("Basic "));
    }
}

async fn run_flow(server: &Server, secrets: &mut Secrets) {
    let client = server.create_client("logged", &["read", "write"]);
    secrets.add_client("client secret", &client);
    let marker = "QueryStringMarker4e2e";

    // Basic credentials, grant in the query (page example 1 and 2).
    let resp = TokenCall::new()
        .basic_creds(&client)
        .q("grant_type", "client_credentials")
        .q("trace", marker)
        .send(server)
        .await;
    let rt = secrets.tokens_of(&resp, "Basic client_credentials", "Basic");
    let resp = TokenCall::new()
        .basic_creds(&client)
        .q("grant_type", "refresh_token")
        .q("refresh_token", &rt)
        .send(server)
        .await;
    secrets.tokens_of(&resp, "Basic refresh", "Basic refresh");

    // Query-string credentials (page example 3 and 4).
    let resp = TokenCall::new().q("grant_type", "client_credentials").query_creds(&client).send(server).await;
    let rt = secrets.tokens_of(&resp, "query client_credentials", "query");
    let resp = TokenCall::new()
        .q("grant_type", "refresh_token")
        .q("refresh_token", &rt)
        .query_creds(&client)
        .send(server)
        .await;
    let next = secrets.tokens_of(&resp, "query refresh", "query refresh");

    // Form body.
    let resp = TokenCall::new()
        .f("grant_type", "refresh_token")
        .f("refresh_token", &next)
        .form_creds(&client)
        .send(server)
        .await;
    secrets.tokens_of(&resp, "form refresh", "form refresh");

    // Reuse of a rotated token (debug logs of the theft path).
    let resp = TokenCall::new()
        .basic_creds(&client)
        .q("grant_type", "refresh_token")
        .q("refresh_token", &rt)
        .send(server)
        .await;
    check_error(&resp, 400, "invalid_grant").expect("reuse is invalid_grant");

    // Wrong secrets, every way.
    for (how, wrong) in [
        ("Basic", "WrongSecretViaBasicHeader000000000000000"),
        ("query", "WrongSecretViaQueryString000000000000000"),
        ("form", "WrongSecretViaFormBody00000000000000000"),
    ] {
        let call = TokenCall::new().q("grant_type", "client_credentials");
        let call = match how {
            "Basic" => call.basic(&client.client_id, wrong),
            "query" => call.q("client_id", &client.client_id).q("client_secret", wrong),
            _ => call.f("client_id", &client.client_id).f("client_secret", wrong),
        };
        check_error(&call.send(server).await, 401, "invalid_client").expect("a wrong secret is invalid_client");
        secrets.add(&format!("wrong secret ({how})"), wrong);
    }
    let unknown_rt = "UnknownRefreshTokenInTheLogFlow000000000";
    let resp = TokenCall::new()
        .basic_creds(&client)
        .q("grant_type", "refresh_token")
        .q("refresh_token", unknown_rt)
        .send(server)
        .await;
    check_error(&resp, 400, "invalid_grant").expect("an unknown refresh token is invalid_grant");
    secrets.add("unknown refresh token", unknown_rt);

    // Revocation and introspection, where tokens travel in the form body
    // (RFC 7009, RFC 7662): both tokens introspected, the refresh token
    // revoked, an unknown token revoked and introspected.
    let resp = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials").send(server).await;
    let (token, refresh_token) = expect_refresh_token(&resp, "client_credentials to introspect and revoke");
    secrets.add_access_token("access token (introspected)", &token.access_token);
    secrets.add("refresh token (introspected, then revoked)", &refresh_token);
    for (what, value) in [("access token", &token.access_token), ("refresh token", &refresh_token)] {
        let resp = TokenCall::new().basic_creds(&client).f("token", value).send_to(server, "/oauth2/introspect").await;
        assert_eq!(resp.status, 200, "introspecting the {what}: {}", resp.summary());
        assert_eq!(resp.json().expect("JSON")["active"], true, "the {what} is active");
    }
    let resp = TokenCall::new()
        .basic_creds(&client)
        .f("token", &refresh_token)
        .f("token_type_hint", "refresh_token")
        .send_to(server, "/oauth2/revoke")
        .await;
    assert_eq!(resp.status, 200, "revoking the refresh token: {}", resp.summary());
    let unknown_token = "UnknownTokenRevokedInTheLogFlow000000000";
    secrets.add("unknown token (revoked, introspected)", unknown_token);
    for endpoint in ["/oauth2/revoke", "/oauth2/introspect"] {
        let resp = TokenCall::new().basic_creds(&client).f("token", unknown_token).send_to(server, endpoint).await;
        assert_eq!(resp.status, 200, "{endpoint} with an unknown token: {}", resp.summary());
    }

    // Secret rotation through the admin API, then the new secret in use.
    let rotated: ClientCredentials =
        server.admin_json(&["clients", "rotate-secret", &client.client_id, "--grace", "60", "--json"]);
    let renewed = ClientCredentials { client_secret: rotated.client_secret.clone(), ..client.clone() };
    secrets.add_client("rotated secret", &renewed);
    let resp = TokenCall::new().q("grant_type", "client_credentials").query_creds(&renewed).send(server).await;
    secrets.tokens_of(&resp, "client_credentials with the rotated secret", "rotated secret");
    let resp = TokenCall::new().q("grant_type", "client_credentials").query_creds(&client).send(server).await;
    expect_refresh_token(&resp, "the old secret within the grace period");

    // A burst of wrong guesses from 127.0.0.2 until the limiter answers 429
    // (the scan's server allows 4 failures per address; 127.0.0.1 made 3 above).
    let attacker = crate::util::http_from("127.0.0.2".parse().expect("an address"));
    for i in 0..6 {
        let wrong = format!("BurstGuess{i}Secret000000000000000000000");
        let resp = TokenCall::new()
            .q("grant_type", "client_credentials")
            .q("client_id", &client.client_id)
            .q("client_secret", &wrong)
            .send_with(&attacker, server)
            .await;
        let expected = if i < 4 { (401, "invalid_client") } else { (429, "temporarily_unavailable") };
        check_error(&resp, expected.0, expected.1).expect("wrong guesses, then 429");
        secrets.add(&format!("burst guess {i}"), &wrong);
    }

    secrets.add("query-string marker", marker);
}

/// The log format a scan runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

async fn scan(format: Format) {
    let extra_args: &[&str] = match format {
        Format::Text => &[],
        Format::Json => &["--log-format", "json"],
    };
    let mut server = Server::builder()
        .env("TESSERA_LOG", "debug")
        .args(extra_args)
        .args(&["--rate-limit-address-burst", "4"])
        .start();
    let mut secrets = Secrets::default();
    run_flow(&server, &mut secrets).await;
    let status = server.terminate();
    let (stdout, stderr) = server.output();
    assert_eq!(status.code(), Some(0), "graceful stop; stderr:\n{stderr}");

    assert_eq!(
        stdout,
        format!("listening on {}\n", server.base),
        "stdout holds exactly the listening line; logs go to stderr"
    );
    assert!(!stderr.trim().is_empty(), "TESSERA_LOG=debug produced logs on stderr");
    // Access lines are batched; the graceful stop wrote out the last ones.
    let access_lines = stderr.lines().filter(|l| l.contains("tessera::access")).count();
    assert!(
        access_lines >= 16,
        "each of the 16 requests (at least) has an access line, only {access_lines}:\n{stderr}"
    );
    assert!(stderr.contains("auth_failure_burst"), "the limiter's security event is logged:\n{stderr}");
    match format {
        Format::Text => assert!(stderr.contains("DEBUG"), "TESSERA_LOG=debug enables debug events:\n{stderr}"),
        Format::Json => {
            for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
                let event: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("--log-format json: a line is not JSON ({e}): {line}"));
                assert!(event.is_object(), "a JSON log event is an object: {line}");
            }
            assert!(stderr.contains(r#""level":"DEBUG""#), "TESSERA_LOG=debug enables debug events:\n{stderr}");
        }
    }
    let leaks: Vec<&str> = secrets
        .0
        .iter()
        .filter(|(_, value)| stdout.contains(value.as_str()) || stderr.contains(value.as_str()))
        .map(|(what, _)| what.as_str())
        .collect();
    assert!(leaks.is_empty(), "the server's output contains: {leaks:?}");
}

/// The default text log format.
#[tokio::test]
async fn no_secret_in_debug_text_logs() {
    scan(Format::Text).await;
}

/// `--log-format json`.
#[tokio::test]
async fn no_secret_in_debug_json_logs() {
    scan(Format::Json).await;
}

/// Access lines are batched, but reach stderr while the server runs, not
/// only when it stops.
#[tokio::test]
async fn access_lines_appear_while_the_server_runs() {
    let server = Server::start(&[]);
    let client = server.create_client_without_refresh("access-log");
    let resp = TokenCall::new().q("grant_type", "client_credentials").basic_creds(&client).send(&server).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let deadline = Instant::now() + Duration::from_secs(10);
    let access_line = |stderr: &str| {
        stderr.lines().any(|l| l.contains("tessera::access") && l.contains(&client.client_id) && l.contains("200"))
    };
    while !access_line(&server.stderr_now()) {
        assert!(Instant::now() < deadline, "no access line for the request:\n{}", server.stderr_now());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
