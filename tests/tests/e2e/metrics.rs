//! `GET /metrics` after a known sequence of requests: the counters say
//! exactly what happened, and the scrape holds no client ID or secret.

use crate::ratelimit::metric_value;
use crate::util::{Server, TokenCall, expect_error, expect_refresh_token, get};

#[tokio::test]
async fn metrics_count_a_known_sequence() {
    // The active-families gauge is recounted every purge interval.
    let server = Server::start(&["--purge-interval", "1"]);
    let client = server.create_client("metered", &[]);
    let cc = || TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials");

    let (_, first) = expect_refresh_token(&cc().send(&server).await, "client_credentials 1");
    expect_refresh_token(&cc().send(&server).await, "client_credentials 2");
    let resp = TokenCall::new()
        .basic(&client.client_id, "WrongSecretWrongSecretWrongSecretWrong00")
        .q("grant_type", "client_credentials")
        .send(&server)
        .await;
    expect_error(&resp, 401, "invalid_client", "a wrong secret");
    let refresh =
        |rt: &str| TokenCall::new().basic_creds(&client).q("grant_type", "refresh_token").q("refresh_token", rt);
    expect_refresh_token(&refresh(&first).send(&server).await, "refresh");
    expect_error(&refresh(&first).send(&server).await, 400, "invalid_grant", "reuse of the rotated token");
    assert_eq!(get(&server, "/healthz").await.status, 200);
    assert_eq!(get(&server, "/no/such/path").await.status, 404);

    // Two families were started, the reuse revoked one: one stays active.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let text = loop {
        let resp = get(&server, "/metrics").await;
        assert_eq!(resp.status, 200, "{}", resp.summary());
        assert!(
            resp.header("content-type").is_some_and(|ct| ct.starts_with("application/openmetrics-text")),
            "{:?}",
            resp.header("content-type")
        );
        let text = resp.text();
        if metric_value(&text, "tessera_active_refresh_families") == 1.0 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the families gauge never reached 1:\n{text}");
        crate::util::pause(std::time::Duration::from_millis(200));
    };

    let token = |grant: &str, outcome: &str| {
        metric_value(
            &text,
            &format!(r#"tessera_requests_total{{endpoint="/oauth2/token",grant="{grant}",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(token("client_credentials", "success"), 2.0, "{text}");
    assert_eq!(token("client_credentials", "invalid_client"), 1.0, "{text}");
    assert_eq!(token("refresh_token", "success"), 1.0, "{text}");
    assert_eq!(token("refresh_token", "invalid_grant"), 1.0, "{text}");
    assert_eq!(
        metric_value(&text, r#"tessera_requests_total{endpoint="/healthz",grant="none",outcome="success"}"#),
        1.0
    );
    assert_eq!(
        metric_value(&text, r#"tessera_requests_total{endpoint="other",grant="none",outcome="client_error"}"#),
        1.0
    );
    assert_eq!(
        metric_value(&text, r#"tessera_request_duration_seconds_count{endpoint="/oauth2/token"}"#),
        5.0,
        "{text}"
    );
    assert_eq!(metric_value(&text, "tessera_refresh_token_reuse_total"), 1.0, "{text}");
    let age = metric_value(&text, "tessera_signing_key_age_seconds");
    assert!((0.0..3600.0).contains(&age), "a key made at this start is young: {age}");
    assert!(!text.contains(&client.client_id) && !text.contains(&client.client_secret), "{text}");
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let server = Server::start(&["--metrics", "false"]);
    assert_eq!(get(&server, "/metrics").await.status, 404);
    assert_eq!(get(&server, "/healthz").await.status, 200);
}

/// Issue 16: revocation and introspection go through the token endpoint's
/// request flow, so their failures reach the metrics with their OAuth
/// error code, not a generic `client_error`.
#[tokio::test]
async fn failed_revocations_and_introspections_are_counted_by_error_code() {
    let server = Server::start(&[]);
    let client = server.create_client("status-metered", &[]);
    let wrong = || TokenCall::new().basic(&client.client_id, "WrongSecretWrongSecretWrongSecretWrong00");
    for path in ["/oauth2/revoke", "/oauth2/introspect"] {
        let resp = wrong().f("token", "x").send_to(&server, path).await;
        expect_error(&resp, 401, "invalid_client", path);
        let resp = TokenCall::new().basic_creds(&client).send_to(&server, path).await;
        expect_error(&resp, 400, "invalid_request", path);
        let resp = TokenCall::new().basic_creds(&client).f("token", "x").send_to(&server, path).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.summary());
    }
    let text = get(&server, "/metrics").await.text();
    for path in ["/oauth2/revoke", "/oauth2/introspect"] {
        let count = |outcome: &str| {
            metric_value(
                &text,
                &format!(r#"tessera_requests_total{{endpoint="{path}",grant="none",outcome="{outcome}"}}"#),
            )
        };
        assert_eq!(count("invalid_client"), 1.0, "{path}:\n{text}");
        assert_eq!(count("invalid_request"), 1.0, "{path}:\n{text}");
        assert_eq!(count("success"), 1.0, "{path}:\n{text}");
        let generic = format!(r#"endpoint="{path}",grant="none",outcome="client_error""#);
        assert!(!text.contains(&generic), "{path}: a failure counted without its code:\n{text}");
    }
}
