//! The limiter of failed client authentications, from several loopback
//! addresses (all of 127.0.0.0/8 is loopback: a client bound to 127.0.0.2
//! reaches the server on 127.0.0.1 with 127.0.0.2 as its source).

use std::net::IpAddr;

use crate::util::{Resp, Server, TokenCall, check_error, expect_error, expect_refresh_token, get, http_from};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

async fn attempt(server: &Server, from: &reqwest::Client, client_id: &str, secret: &str) -> Resp {
    TokenCall::new().basic(client_id, secret).q("grant_type", "client_credentials").send_with(from, server).await
}

/// 429, `temporarily_unavailable`, a `Retry-After` of whole seconds.
#[track_caller]
fn expect_limited(resp: &Resp, context: &str) -> u64 {
    expect_error(resp, 429, "temporarily_unavailable", context);
    let retry = resp.header("retry-after").unwrap_or_else(|| panic!("{context}: no Retry-After: {}", resp.summary()));
    let seconds: u64 = retry.parse().unwrap_or_else(|_| panic!("{context}: Retry-After {retry:?} is no number"));
    assert!(seconds >= 1, "{context}: Retry-After {seconds}");
    seconds
}

const WRONG: &str = "WrongSecretWrongSecretWrongSecretWrong00";

/// How long a bucket refilling at 1 a minute takes to give one back.
const REFILL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The issue's scenario: an attacker on 127.0.0.2 floods one client ID with
/// wrong secrets and is throttled, even when it then sends the right secret;
/// the holder on 127.0.0.1 keeps getting 200s throughout; other clients are
/// untouched; the burst is logged as a security event and counted.
#[tokio::test]
async fn attacker_address_is_throttled_while_the_holder_keeps_getting_tokens() {
    let mut server = Server::start(&[
        "--rate-limit-address-burst",
        "5",
        // One token back every 60 s, the slowest refill there is: the
        // test checks below that it took less than that.
        "--rate-limit-address-per-minute",
        "1",
        "--rate-limit-client-burst",
        "1000",
    ]);
    let victim = server.create_client("victim", &[]);
    let other = server.create_client("bystander", &[]);
    let holder = http_from(ip("127.0.0.1"));
    let attacker = http_from(ip("127.0.0.2"));
    let started = std::time::Instant::now();

    for round in 0..5 {
        let resp = attempt(&server, &attacker, &victim.client_id, WRONG).await;
        expect_error(&resp, 401, "invalid_client", &format!("wrong guess {round} within the burst"));
        let resp = attempt(&server, &holder, &victim.client_id, &victim.client_secret).await;
        expect_refresh_token(&resp, &format!("the holder during guess {round}"));
    }
    for round in 0..20 {
        let resp = attempt(&server, &attacker, &victim.client_id, WRONG).await;
        expect_limited(&resp, &format!("guess {round} after the burst"));
        let resp = attempt(&server, &holder, &victim.client_id, &victim.client_secret).await;
        expect_refresh_token(&resp, &format!("the holder while the attacker is limited ({round})"));
    }
    let resp = attempt(&server, &attacker, &victim.client_id, &victim.client_secret).await;
    expect_limited(&resp, "even the right secret from the limited address");
    let resp = attempt(&server, &attacker, &other.client_id, &other.client_secret).await;
    expect_limited(&resp, "any client from the limited address");
    let resp = attempt(&server, &http_from(ip("127.0.0.3")), &other.client_id, &other.client_secret).await;
    expect_refresh_token(&resp, "another client on another address");

    // No credentials at all is a failure too, and limited the same way.
    let resp = TokenCall::new().q("grant_type", "client_credentials").send_with(&attacker, &server).await;
    expect_limited(&resp, "no credentials from the limited address");

    // Every count here assumes the bucket did not refill: say so plainly if
    // a very slow machine took longer than one refill interval.
    let took = started.elapsed();
    assert!(took < REFILL_INTERVAL, "the guesses took {took:?}, over the {REFILL_INTERVAL:?} refill interval");
    let metrics = get(&server, "/metrics").await.text();
    let limited = metric_value(&metrics, r#"tessera_rate_limited_total{scope="address"}"#);
    assert_eq!(limited, 23.0, "20 guesses + right secret + other client + no credentials:\n{metrics}");

    let status = server.terminate();
    let (_, stderr) = server.output();
    assert_eq!(status.code(), Some(0));
    let bursts: Vec<&str> = stderr.lines().filter(|l| l.contains("auth_failure_burst")).collect();
    assert_eq!(bursts.len(), 1, "one security event when the bucket ran dry:\n{stderr}");
    assert!(bursts[0].contains("127.0.0.2") && bursts[0].contains("address"), "{bursts:?}");
    assert!(!stderr.contains(WRONG) && !stderr.contains(&victim.client_secret), "no secret in the log");
}

/// Many addresses guessing one client ID together, each below its own
/// limit: the client-ID bucket runs dry and refuses new addresses, but the
/// holder's address (which authenticated before) still gets tokens.
#[tokio::test]
async fn distributed_guessing_is_limited_per_client_id_without_locking_out_the_holder() {
    let server = Server::start(&[
        "--rate-limit-address-burst",
        "100",
        "--rate-limit-client-burst",
        "6",
        "--rate-limit-client-per-minute",
        "1",
    ]);
    let victim = server.create_client("victim", &[]);
    let other = server.create_client("bystander", &[]);
    let holder = http_from(ip("127.0.0.1"));
    expect_refresh_token(
        &attempt(&server, &holder, &victim.client_id, &victim.client_secret).await,
        "the holder, first",
    );

    for i in 0..6 {
        let from = http_from(ip(&format!("127.0.1.{}", i + 1)));
        expect_error(&attempt(&server, &from, &victim.client_id, WRONG).await, 401, "invalid_client", "a spread guess");
    }
    let newcomer = http_from(ip("127.0.1.99"));
    let resp = attempt(&server, &newcomer, &victim.client_id, WRONG).await;
    expect_limited(&resp, "a new address guessing the drained client ID");
    let resp = attempt(&server, &newcomer, &victim.client_id, &victim.client_secret).await;
    expect_limited(&resp, "a new address, even with the right secret, while the client ID is drained");
    for round in 0..5 {
        let resp = attempt(&server, &holder, &victim.client_id, &victim.client_secret).await;
        expect_refresh_token(&resp, &format!("the trusted holder address ({round})"));
    }
    let resp = attempt(&server, &newcomer, &other.client_id, &other.client_secret).await;
    expect_refresh_token(&resp, "another client ID from the same new address");
}

/// `--rate-limit false` switches it off.
#[tokio::test]
async fn the_limiter_can_be_switched_off() {
    let server = Server::start(&["--rate-limit", "false", "--rate-limit-address-burst", "1"]);
    let victim = server.create_client("victim", &[]);
    let attacker = http_from(ip("127.0.0.2"));
    for _ in 0..5 {
        let resp = attempt(&server, &attacker, &victim.client_id, WRONG).await;
        check_error(&resp, 401, "invalid_client").expect("never 429 when switched off");
    }
    expect_refresh_token(&attempt(&server, &attacker, &victim.client_id, &victim.client_secret).await, "right secret");
}

/// The value of one sample line in a scrape.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().split(' ').next()?.parse().ok()))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Revocation and introspection authenticate clients too, so guessing
/// there is limited like at the token endpoint, and the holder of the
/// secret on another address is not.
#[tokio::test]
async fn introspection_and_revocation_guesses_are_limited_too() {
    let server = Server::start(&["--rate-limit-address-burst", "3", "--rate-limit-address-per-minute", "1"]);
    let victim = server.create_client("victim", &[]);
    let attacker = http_from(ip("127.0.0.2"));
    let holder = http_from(ip("127.0.0.1"));
    let guess = |path: &'static str| {
        TokenCall::new().basic(&victim.client_id, WRONG).f("token", "anything").send_to_with(&attacker, &server, path)
    };
    for (round, path) in ["/oauth2/introspect", "/oauth2/revoke", "/oauth2/introspect"].into_iter().enumerate() {
        expect_error(&guess(path).await, 401, "invalid_client", &format!("guess {round} at {path} within the burst"));
    }
    expect_limited(&guess("/oauth2/introspect").await, "introspection guess after the burst");
    expect_limited(&guess("/oauth2/revoke").await, "revocation guess after the burst");
    let resp = TokenCall::new()
        .basic(&victim.client_id, &victim.client_secret)
        .f("token", "anything")
        .send_to_with(&holder, &server, "/oauth2/introspect")
        .await;
    assert_eq!(resp.status, 200, "the holder on another address: {}", resp.summary());
}
