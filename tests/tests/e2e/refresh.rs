//! Refresh tokens: rotation, reuse detection (RFC 9700 §4.14.2), expiry,
//! revocation, scope narrowing, and the 32-way race on one token.

use std::collections::BTreeSet;
use std::time::Duration;

use tessera_shared::admin::ClientCredentials;

use crate::util::{
    Cases, Resp, Server, TokenCall, check_error, expect_error, expect_refresh_token, expect_token, jwt_parts, pause,
    race_refreshes, scope_set, scopes,
};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

/// A fresh family: the refresh token of a client_credentials grant.
async fn family(server: &Server, client: &ClientCredentials) -> String {
    expect_refresh_token(&cc(client).send(server).await, "client_credentials").1
}

fn claim_scopes(token: &str) -> BTreeSet<String> {
    let (_, claims) = jwt_parts(token);
    scope_set(claims.get("scope").and_then(|s| s.as_str()))
}

/// Each refresh returns a new refresh token; a chain of them works.
#[tokio::test]
async fn rotation_gives_a_new_token_each_time() {
    let server = Server::start(&[]);
    let client = server.create_client("rotate", &[]);
    let mut current = family(&server, &client).await;
    let mut seen = BTreeSet::from([current.clone()]);
    for step in 1..=5 {
        let resp = refresh(&client, &current).send(&server).await;
        let (_, next) = expect_refresh_token(&resp, &format!("refresh #{step}"));
        assert!(seen.insert(next.clone()), "refresh #{step} returned a token seen before");
        current = next;
    }
}

/// Presenting a rotated token again is `invalid_grant` and revokes the
/// whole family: its successor stops working too. Other families live on.
#[tokio::test]
async fn reuse_of_a_rotated_token_revokes_the_family() {
    let server = Server::start(&[]);
    let client = server.create_client("reuse", &[]);
    let other_family = family(&server, &client).await;
    let r0 = family(&server, &client).await;
    let (_, r1) = expect_refresh_token(&refresh(&client, &r0).send(&server).await, "first refresh");

    let resp = refresh(&client, &r0).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "reusing the rotated token");

    let resp = refresh(&client, &r1).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "the successor after reuse was detected");

    let resp = refresh(&client, &other_family).send(&server).await;
    expect_refresh_token(&resp, "another family of the same client is untouched");
    let resp = cc(&client).send(&server).await;
    expect_refresh_token(&resp, "the client itself still gets tokens");
}

/// The same with credentials in the query string, as the page's example 4.
#[tokio::test]
async fn reuse_detection_with_query_credentials() {
    let server = Server::start(&[]);
    let client = server.create_client("reuse-query", &[]);
    let r0 = family(&server, &client).await;
    let q = |rt: &str| TokenCall::new().q("grant_type", "refresh_token").q("refresh_token", rt).query_creds(&client);
    let (_, r1) = expect_refresh_token(&q(&r0).send(&server).await, "first refresh");
    expect_error(&q(&r0).send(&server).await, 400, "invalid_grant", "reuse");
    expect_error(&q(&r1).send(&server).await, 400, "invalid_grant", "successor after reuse");
}

/// Unknown and malformed refresh tokens: `invalid_grant`.
#[tokio::test]
async fn unknown_refresh_tokens_are_invalid_grant() {
    let server = Server::start(&[]);
    let client = server.create_client("unknown-rt", &[]);
    let mut table = Cases::new();
    for (name, rt) in [
        ("well-formed but unknown", "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq"),
        ("too short", "abc"),
        ("41 characters", "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQqX"),
        ("characters outside the alphabet", "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4Qo+/"),
        ("an access-token-shaped string", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
    ] {
        let resp = refresh(&client, rt).send(&server).await;
        table.check(name, check_error(&resp, 400, "invalid_grant"));
    }
    table.finish();
}

/// A refresh token presented by another client: `invalid_grant`.
#[tokio::test]
async fn refresh_token_of_another_client_is_invalid_grant() {
    let server = Server::start(&[]);
    let owner = server.create_client("owner", &[]);
    let thief = server.create_client("thief", &[]);
    let rt = family(&server, &owner).await;

    let resp = refresh(&thief, &rt).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "another client's refresh token, Basic");

    let resp = TokenCall::new()
        .q("grant_type", "refresh_token")
        .q("refresh_token", &rt)
        .query_creds(&thief)
        .send(&server)
        .await;
    expect_error(&resp, 400, "invalid_grant", "another client's refresh token, query");
}

/// With `--refresh-token-ttl 1`, a refresh token is dead two seconds later.
#[tokio::test]
async fn expired_refresh_token_is_invalid_grant() {
    let server = Server::start(&["--refresh-token-ttl", "1"]);
    let client = server.create_client("expiry", &[]);
    let rt = family(&server, &client).await;
    pause(Duration::from_millis(2500));
    let resp = refresh(&client, &rt).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "a refresh token past its TTL");
}

/// `--max-families-per-client 2`: a third grant retires one of the
/// client's families (the oldest by the second it started in; these three
/// may share one), so two of the three refresh tokens work and one is
/// `invalid_grant`.
#[tokio::test]
async fn a_grant_beyond_the_family_cap_retires_a_family() {
    let server = Server::start(&["--max-families-per-client", "2"]);
    let client = server.create_client("capped", &[]);
    let mut started = Vec::new();
    for _ in 0..3 {
        started.push(family(&server, &client).await);
    }
    let mut working = 0;
    for (n, rt) in started.iter().enumerate() {
        let resp = refresh(&client, rt).send(&server).await;
        if resp.status == 200 {
            working += 1;
        } else {
            expect_error(&resp, 400, "invalid_grant", &format!("family {n}, retired by the cap"));
        }
    }
    assert_eq!(working, 2, "the cap keeps two families");
    let info: tessera_shared::admin::ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!(info.active_refresh_families, 2);
}

/// `tessera-admin tokens revoke-family --client ID` kills every live family
/// of the client; new grants work again.
#[tokio::test]
async fn revoke_family_from_the_admin_cli() {
    let server = Server::start(&[]);
    let client = server.create_client("families", &[]);
    let bystander = server.create_client("bystander", &[]);
    let a = family(&server, &client).await;
    let b = family(&server, &client).await;
    let (_, b1) = expect_refresh_token(&refresh(&client, &b).send(&server).await, "rotate family b");
    let untouched = family(&server, &bystander).await;

    let families = |server: &Server| {
        let info: tessera_shared::admin::ClientInfo =
            server.admin_json(&["clients", "show", &client.client_id, "--json"]);
        info.active_refresh_families
    };
    assert_eq!(families(&server), 2, "two live families before revoke-family");

    server.admin_ok(&["tokens", "revoke-family", "--client", &client.client_id]);
    assert_eq!(families(&server), 0, "no live family after revoke-family");

    expect_error(&refresh(&client, &a).send(&server).await, 400, "invalid_grant", "family a after revoke-family");
    expect_error(&refresh(&client, &b1).send(&server).await, 400, "invalid_grant", "family b after revoke-family");
    expect_refresh_token(&refresh(&bystander, &untouched).send(&server).await, "another client's family");

    let fresh = family(&server, &client).await;
    expect_refresh_token(&refresh(&client, &fresh).send(&server).await, "a family started after the revocation");
}

/// With no scope asked, a client gets all its allowed scopes, in the
/// response and the token; a client without scopes gets neither.
#[tokio::test]
async fn default_scope_is_all_allowed_scopes() {
    let server = Server::start(&[]);
    let scoped = server.create_client("scoped", &["read", "write"]);
    let unscoped = server.create_client("unscoped", &[]);

    let resp = cc(&scoped).send(&server).await;
    let (token, rt) = expect_refresh_token(&resp, "scoped client, no scope asked");
    assert_eq!(scope_set(token.scope.as_deref()), scopes(&["read", "write"]), "response scope");
    assert_eq!(claim_scopes(&token.access_token), scopes(&["read", "write"]), "scope claim");

    let resp = refresh(&scoped, &rt).send(&server).await;
    let (token, _) = expect_refresh_token(&resp, "refresh without scope");
    assert_eq!(claim_scopes(&token.access_token), scopes(&["read", "write"]), "scope claim after refresh");

    let resp = cc(&unscoped).send(&server).await;
    let token = expect_token(&resp, "unscoped client");
    assert_eq!(token.scope, None, "no scope field for a client without scopes: {}", resp.text());
    let (_, claims) = jwt_parts(&token.access_token);
    assert!(claims.get("scope").is_none(), "no scope claim for a client without scopes: {claims}");
}

/// A subset may be asked; `+` in a form body is a space.
#[tokio::test]
async fn asking_a_subset_of_scopes() {
    let server = Server::start(&[]);
    let client = server.create_client("subset", &["read", "write", "admin"]);
    let mut table = Cases::new();
    let check = |resp: &Resp, want: &[&str]| {
        crate::util::token_ok(resp).and_then(|t| {
            let (got_resp, got_claim) = (scope_set(t.scope.as_deref()), claim_scopes(&t.access_token));
            if got_resp == scopes(want) && got_claim == scopes(want) {
                Ok(())
            } else {
                Err(format!("scope {got_resp:?} / claim {got_claim:?}, wanted {want:?}"))
            }
        })
    };
    let resp = cc(&client).q("scope", "read").send(&server).await;
    table.check("one scope in the query", check(&resp, &["read"]));
    let resp = cc(&client).q("scope", "write read").send(&server).await;
    table.check("two scopes in the query", check(&resp, &["read", "write"]));
    let resp = TokenCall::new()
        .basic_creds(&client)
        .body(Some("application/x-www-form-urlencoded"), "grant_type=client_credentials&scope=read+admin")
        .send(&server)
        .await;
    table.check("plus as space in a form body", check(&resp, &["read", "admin"]));
    table.finish();
}

/// A refresh may narrow the scope (`scope=a` of `a b`); a later refresh
/// without scope gets the original `a b`; it may never widen.
#[tokio::test]
async fn refresh_narrows_but_never_widens_scope() {
    let server = Server::start(&[]);
    let client = server.create_client("narrow", &["a", "b", "c"]);
    let original = || cc(&client).q("scope", "a b");

    let (token, r0) = expect_refresh_token(&original().send(&server).await, "client_credentials scope=a b");
    assert_eq!(claim_scopes(&token.access_token), scopes(&["a", "b"]));

    let resp = refresh(&client, &r0).q("scope", "a").send(&server).await;
    let (token, r1) = expect_refresh_token(&resp, "refresh narrowing to a");
    assert_eq!(claim_scopes(&token.access_token), scopes(&["a"]), "narrowed scope claim");
    assert_eq!(scope_set(token.scope.as_deref()), scopes(&["a"]), "narrowed response scope");

    let resp = refresh(&client, &r1).send(&server).await;
    let (token, _) = expect_refresh_token(&resp, "refresh without scope after narrowing");
    assert_eq!(claim_scopes(&token.access_token), scopes(&["a", "b"]), "the original scope comes back");

    let mut table = Cases::new();
    for (name, asked) in [("a scope the grant never had", "c"), ("original plus one", "a b c"), ("unknown scope", "z")]
    {
        let (_, rt) = expect_refresh_token(&original().send(&server).await, "a fresh family");
        let resp = refresh(&client, &rt).q("scope", asked).send(&server).await;
        table.check(name, check_error(&resp, 400, "invalid_scope"));
    }
    table.finish();
}

/// A client created with `--no-refresh` gets no refresh token and may not
/// use the refresh grant: `unauthorized_client`.
#[tokio::test]
async fn no_refresh_client_gets_no_refresh_token() {
    let server = Server::start(&[]);
    let client = server.create_client_without_refresh("no-refresh");
    let other = server.create_client("with-refresh", &[]);

    let resp = cc(&client).send(&server).await;
    let token = expect_token(&resp, "client_credentials of a --no-refresh client");
    let body = resp.json().unwrap_or_default();
    assert!(body.get("refresh_token").is_none(), "no refresh_token field at all: {}", resp.text());
    assert_eq!(token.refresh_token, None);

    let resp = refresh(&client, "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq").send(&server).await;
    expect_error(&resp, 400, "unauthorized_client", "refresh grant of a --no-refresh client");

    let someone_elses = family(&server, &other).await;
    let resp = refresh(&client, &someone_elses).send(&server).await;
    expect_error(&resp, 400, "unauthorized_client", "refresh grant of a --no-refresh client with a real token");
}

/// 32 concurrent refreshes of one token: exactly one 200, every other
/// request 400 `invalid_grant`; the losers reused a rotated token, so the
/// winner's successor is revoked with the family.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_refreshes_exactly_one_wins() {
    const N: usize = 32;
    let server = Server::start(&[]);
    let client = server.create_client("race", &[]);
    let rt = family(&server, &client).await;

    let winner = race_refreshes(&[&server], &client, &rt, N).await;
    let (_, successor) = expect_refresh_token(&winner, "the winner");

    let resp = refresh(&client, &successor).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "the winner's successor after the losers' reuse");
}

/// `--refresh-reuse-grace 60` tolerates a client's network retry: the
/// retried token gets a fresh successor instead of revoking the family, and
/// the successor the lost response carried is superseded (presenting it
/// afterwards means two parties hold the family: theft).
#[tokio::test]
async fn reuse_within_grace_rotates_again_and_supersedes_the_lost_successor() {
    let server = Server::start(&["--refresh-reuse-grace", "60"]);
    let client = server.create_client("retry", &[]);
    let r0 = family(&server, &client).await;
    let (_, lost) = expect_refresh_token(&refresh(&client, &r0).send(&server).await, "first refresh");

    let (_, retried) =
        expect_refresh_token(&refresh(&client, &r0).send(&server).await, "the retry within the grace period");
    assert_ne!(retried, lost);
    let (_, next) = expect_refresh_token(&refresh(&client, &retried).send(&server).await, "the retry's successor");

    let resp = refresh(&client, &lost).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "the superseded successor");
    let resp = refresh(&client, &next).send(&server).await;
    expect_error(&resp, 400, "invalid_grant", "the family after the superseded successor was presented");
}
