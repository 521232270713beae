//! What `tessera-admin` does to clients, seen from the token endpoint: the
//! JSON of create/list/show, revocation, secret rotation with and without
//! grace, deletion, and the CLI's failures.

use tessera_shared::admin::{ClientCredentials, ClientInfo, ClientStatus, KeyInfo, KeyState};

use std::time::Duration;

use crate::util::{Server, TokenCall, admin_in, expect_error, expect_refresh_token, now_unix, pause};

fn cc_basic(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn cc_query(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().q("grant_type", "client_credentials").query_creds(client)
}

fn refresh(client: &ClientCredentials, rt: &str) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "refresh_token").q("refresh_token", rt)
}

fn with_secret(client: &ClientCredentials, secret: &str) -> ClientCredentials {
    ClientCredentials { client_secret: secret.to_owned(), ..client.clone() }
}

/// `create --json`, `list --json` and `show --json` speak the shapes of
/// `tessera_shared::admin`; list and show never print a secret.
#[tokio::test]
async fn create_list_show_json_shapes() {
    let server = Server::start(&[]);
    let client = server.create_client("orders-service", &["orders:read", "orders:write"]);
    assert_eq!(client.name, "orders-service");
    assert_eq!(client.scopes, ["orders:read", "orders:write"]);
    assert!(client.refresh_tokens);

    let list: Vec<ClientInfo> = server.admin_json(&["clients", "list", "--json"]);
    let listed = list.iter().find(|c| c.client_id == client.client_id).expect("the new client is listed");
    assert_eq!(listed.name, "orders-service");
    assert_eq!(listed.status, ClientStatus::Active);
    assert_eq!(listed.scopes, ["orders:read", "orders:write"]);
    assert!(listed.refresh_tokens);
    assert!(listed.created_at.abs_diff(now_unix()) < 120, "created_at {} is now", listed.created_at);

    let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!(shown.client_id, client.client_id);
    assert_eq!(shown.status, ClientStatus::Active);

    for args in [
        vec!["clients", "list"],
        vec!["clients", "list", "--json"],
        vec!["clients", "show", client.client_id.as_str()],
        vec!["clients", "show", client.client_id.as_str(), "--json"],
    ] {
        let out = server.admin(&args);
        assert!(out.status.success(), "tessera-admin {args:?}: {}", out.stderr);
        assert!(
            !out.stdout.contains(&client.client_secret) && !out.stderr.contains(&client.client_secret),
            "tessera-admin {args:?} printed the client secret"
        );
    }
}

/// `keys list --json`: one active ES256 key and a pre-published next key.
#[tokio::test]
async fn keys_list_shows_active_and_next() {
    let server = Server::start(&[]);
    let keys: Vec<KeyInfo> = server.admin_json(&["keys", "list", "--json"]);
    let active: Vec<&KeyInfo> = keys.iter().filter(|k| k.state == KeyState::Active).collect();
    let next: Vec<&KeyInfo> = keys.iter().filter(|k| k.state == KeyState::Next).collect();
    assert_eq!(active.len(), 1, "exactly one active key: {keys:?}");
    assert_eq!(next.len(), 1, "exactly one next key: {keys:?}");
    assert_eq!(active[0].alg, "ES256");
    assert_ne!(active[0].kid, next[0].kid);
}

/// A revoked client is `invalid_client` whichever way it authenticates,
/// and its refresh tokens are revoked with it.
#[tokio::test]
async fn revoked_client_is_refused_and_its_refresh_tokens_die() {
    let server = Server::start(&[]);
    let client = server.create_client("to-revoke", &[]);
    let bystander = server.create_client("bystander", &[]);
    let (_, rt) = expect_refresh_token(&cc_basic(&client).send(&server).await, "before revocation");
    let (_, other_rt) = expect_refresh_token(&cc_basic(&bystander).send(&server).await, "bystander");

    server.admin_ok(&["clients", "revoke", &client.client_id]);

    expect_error(&cc_basic(&client).send(&server).await, 401, "invalid_client", "revoked client, Basic");
    expect_error(&cc_query(&client).send(&server).await, 401, "invalid_client", "revoked client, query");
    expect_error(&refresh(&client, &rt).send(&server).await, 401, "invalid_client", "revoked client's refresh");

    let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert_eq!(shown.status, ClientStatus::Revoked);
    assert_eq!(shown.active_refresh_families, 0, "revocation revokes the client's refresh families");

    expect_refresh_token(&refresh(&bystander, &other_rt).send(&server).await, "another client is untouched");
}

/// `rotate-secret` without grace: the old secret stops at once, the new one
/// works, for Basic and query credentials alike.
#[tokio::test]
async fn rotated_secret_old_fails_new_works() {
    let server = Server::start(&[]);
    let client = server.create_client("rotate", &[]);
    let rotated: ClientCredentials = server.admin_json(&["clients", "rotate-secret", &client.client_id, "--json"]);
    assert_eq!(rotated.client_id, client.client_id);
    assert_ne!(rotated.client_secret, client.client_secret, "a new secret");
    assert_eq!(rotated.client_secret.len(), 40);

    expect_error(&cc_basic(&client).send(&server).await, 401, "invalid_client", "old secret, Basic");
    expect_error(&cc_query(&client).send(&server).await, 401, "invalid_client", "old secret, query");
    let new = with_secret(&client, &rotated.client_secret);
    expect_refresh_token(&cc_basic(&new).send(&server).await, "new secret, Basic");
    expect_refresh_token(&cc_query(&new).send(&server).await, "new secret, query");
}

/// `rotate-secret --grace 60`: both secrets work during the grace period.
#[tokio::test]
async fn rotated_secret_with_grace_keeps_old_working() {
    let server = Server::start(&[]);
    let client = server.create_client("grace", &[]);
    let rotated: ClientCredentials =
        server.admin_json(&["clients", "rotate-secret", &client.client_id, "--grace", "60", "--json"]);
    assert_ne!(rotated.client_secret, client.client_secret);
    let until = rotated.previous_secret_valid_until.expect("previous_secret_valid_until after a rotation with grace");
    let now = now_unix();
    assert!((now + 30..=now + 90).contains(&until), "grace ends at {until}, now is {now}");

    expect_refresh_token(&cc_basic(&client).send(&server).await, "old secret within the grace period");
    expect_refresh_token(&cc_query(&client).send(&server).await, "old secret within the grace period, query");
    let new = with_secret(&client, &rotated.client_secret);
    expect_refresh_token(&cc_basic(&new).send(&server).await, "new secret");

    let shown: ClientInfo = server.admin_json(&["clients", "show", &client.client_id, "--json"]);
    assert!(shown.previous_secret_valid_until.is_some(), "show reports the running grace period");
}

/// After `--grace 1` has run out, the old secret stops working.
#[tokio::test]
async fn rotated_secret_grace_period_ends() {
    let server = Server::start(&[]);
    let client = server.create_client("short-grace", &[]);
    let rotated: ClientCredentials =
        server.admin_json(&["clients", "rotate-secret", &client.client_id, "--grace", "1", "--json"]);
    pause(Duration::from_millis(2500));
    expect_error(&cc_basic(&client).send(&server).await, 401, "invalid_client", "old secret after the grace period");
    let new = with_secret(&client, &rotated.client_secret);
    expect_refresh_token(&cc_basic(&new).send(&server).await, "new secret");
}

/// A deleted client is gone: `invalid_client`, its refresh tokens too, and
/// the CLI no longer finds it.
#[tokio::test]
async fn deleted_client_is_refused() {
    let server = Server::start(&[]);
    let client = server.create_client("to-delete", &[]);
    let (_, rt) = expect_refresh_token(&cc_basic(&client).send(&server).await, "before deletion");

    server.admin_ok(&["clients", "delete", &client.client_id]);

    expect_error(&cc_basic(&client).send(&server).await, 401, "invalid_client", "deleted client, Basic");
    expect_error(&cc_query(&client).send(&server).await, 401, "invalid_client", "deleted client, query");
    expect_error(&refresh(&client, &rt).send(&server).await, 401, "invalid_client", "deleted client's refresh");

    let list: Vec<ClientInfo> = server.admin_json(&["clients", "list", "--json"]);
    assert!(list.iter().all(|c| c.client_id != client.client_id), "a deleted client is not listed");
    let out = server.admin(&["clients", "show", &client.client_id]);
    assert!(!out.status.success(), "show of a deleted client fails");
    assert_eq!(out.stderr_lines().len(), 1, "one line on stderr: {:?}", out.stderr);
}

/// CLI failures: non-zero exit and one line on stderr; without a server it
/// says where it looked.
#[tokio::test]
async fn admin_failures_are_one_line() {
    let server = Server::start(&[]);
    let unknown = "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for args in [
        vec!["clients", "show", unknown],
        vec!["clients", "revoke", unknown],
        vec!["clients", "delete", unknown],
        vec!["clients", "rotate-secret", unknown],
        vec!["tokens", "revoke-family", "--client", unknown],
    ] {
        let out = server.admin(&args);
        assert!(!out.status.success(), "tessera-admin {args:?} must fail");
        assert_eq!(out.stderr_lines().len(), 1, "tessera-admin {args:?}: one line on stderr, got {:?}", out.stderr);
    }

    let empty = crate::util::private_tempdir();
    let out = admin_in(empty.path(), &["clients", "list"]);
    assert!(!out.status.success(), "clients list without a server must fail");
    assert_eq!(out.stderr_lines().len(), 1, "one line on stderr, got {:?}", out.stderr);
    let dir = empty.path().to_string_lossy();
    assert!(out.stderr.contains(dir.as_ref()), "the message says where it looked ({dir}): {:?}", out.stderr);
}
