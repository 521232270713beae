//! Every error of `POST /oauth2/token`: status, `error` code and the
//! headers that go with it. Cases of one kind share a server and run as a
//! table; a failing table lists every failing case by name.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_shared::admin::ClientCredentials;

use crate::util::{Cases, Resp, Server, TokenCall, check_error, expect_refresh_token, token_ok};

const UNKNOWN_ID: &str = "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const WRONG_SECRET: &str = "WrongWrongWrongWrongWrongWrongWrongWrong";
const SOME_REFRESH_TOKEN: &str = "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq";

fn cc() -> TokenCall {
    TokenCall::new().q("grant_type", "client_credentials")
}

/// A 401 `invalid_client` with `WWW-Authenticate: Basic realm="tessera"`
/// and the page's exact description, whichever way credentials came.
#[tokio::test]
async fn invalid_client_cases() {
    let server = Server::start(&[]);
    let client = server.create_client("known", &[]);
    let other = server.create_client("other", &[]);
    let id = client.client_id.as_str();

    let cases: Vec<(&str, TokenCall)> = vec![
        ("unknown client ID, Basic", cc().basic(UNKNOWN_ID, &client.client_secret)),
        ("unknown client ID, query", cc().q("client_id", UNKNOWN_ID).q("client_secret", &client.client_secret)),
        ("unknown client ID, form body", cc().f("client_id", UNKNOWN_ID).f("client_secret", &client.client_secret)),
        ("malformed client ID, Basic", cc().basic("not-a-client", &client.client_secret)),
        ("wrong secret, Basic", cc().basic(id, WRONG_SECRET)),
        ("wrong secret, query", cc().q("client_id", id).q("client_secret", WRONG_SECRET)),
        ("wrong secret, form body", cc().f("client_id", id).f("client_secret", WRONG_SECRET)),
        ("empty secret, Basic", cc().basic(id, "")),
        ("another client's secret, Basic", cc().basic(id, &other.client_secret)),
        ("no credentials at all, client_credentials", cc()),
        (
            "no credentials at all, refresh_token",
            TokenCall::new().q("grant_type", "refresh_token").q("refresh_token", SOME_REFRESH_TOKEN),
        ),
        ("Basic header not base64", cc().header("Authorization", "Basic !!!not*base64!!!")),
        ("Basic header without colon", cc().header("Authorization", &format!("Basic {}", STANDARD.encode(id)))),
        ("Basic header with no credentials", cc().header("Authorization", "Basic")),
        ("Bearer instead of Basic", cc().header("Authorization", "Bearer abc.def.ghi")),
        (
            "wrong secret with an unsupported grant type",
            TokenCall::new().q("grant_type", "password").basic(id, WRONG_SECRET),
        ),
        (
            "wrong secret with a refresh grant",
            TokenCall::new()
                .q("grant_type", "refresh_token")
                .q("refresh_token", SOME_REFRESH_TOKEN)
                .basic(id, WRONG_SECRET),
        ),
    ];
    let mut table = Cases::new();
    for (name, call) in cases {
        let resp = call.send(&server).await;
        table.check(name, check_error(&resp, 401, "invalid_client"));
    }
    table.finish();
}

/// 400 `invalid_request` for malformed requests from an authenticated
/// client.
#[tokio::test]
async fn invalid_request_cases() {
    let server = Server::start(&[]);
    let client = server.create_client("malformed", &[]);
    let id = client.client_id.as_str();
    let secret = client.client_secret.as_str();
    let b = || TokenCall::new().basic(id, secret);

    let mut many = b().q("grant_type", "client_credentials");
    for i in 1..=64 {
        many = many.q(&format!("x{i}"), "1");
    }
    let mut many_split = b().q("grant_type", "client_credentials");
    for i in 1..=32 {
        many_split = many_split.q(&format!("q{i}"), "1").f(&format!("f{i}"), "1");
    }

    let cases: Vec<(&str, TokenCall)> = vec![
        ("missing grant_type", b()),
        ("missing grant_type, form body", b().f("scope", "")),
        ("refresh grant without refresh_token", b().q("grant_type", "refresh_token")),
        ("client_id without client_secret, query", cc().q("client_id", id)),
        ("client_secret without client_id, query", cc().q("client_secret", secret)),
        ("client_id without client_secret, form body", cc().f("client_id", id)),
        ("client_secret without client_id, form body", cc().f("client_secret", secret)),
        ("credentials in Basic header and query", cc().basic(id, secret).q("client_id", id).q("client_secret", secret)),
        (
            "credentials in Basic header and form body",
            cc().basic(id, secret).f("client_id", id).f("client_secret", secret),
        ),
        ("grant_type twice in query", b().raw_query("grant_type=client_credentials&grant_type=client_credentials")),
        (
            "grant_type once in query, once in body",
            b().q("grant_type", "client_credentials").f("grant_type", "client_credentials"),
        ),
        ("client_id twice", cc().q("client_id", id).q("client_secret", secret).f("client_id", id)),
        (
            "refresh_token twice",
            b().q("grant_type", "refresh_token")
                .q("refresh_token", SOME_REFRESH_TOKEN)
                .f("refresh_token", SOME_REFRESH_TOKEN),
        ),
        ("scope twice", b().raw_query("grant_type=client_credentials&scope=a&scope=a")),
        ("bad percent-encoding %zz in query", b().raw_query("grant_type=client_credentials&x=%zz")),
        ("truncated percent-encoding in query", b().raw_query("grant_type=client_credentials%2")),
        (
            "bad percent-encoding %zz in body",
            b().body(Some("application/x-www-form-urlencoded"), "grant_type=client_credentials&x=%zz"),
        ),
        ("non-UTF-8 %ff in query", b().raw_query("grant_type=client_credentials&x=%ff")),
        (
            "non-UTF-8 %C3%28 in body",
            b().body(Some("application/x-www-form-urlencoded"), "grant_type=client_credentials&x=%C3%28"),
        ),
        ("65 parameters in query", many),
        ("65 parameters across query and body", many_split),
        ("JSON body", b().body(Some("application/json"), r#"{"grant_type":"client_credentials"}"#)),
        ("text/plain body", b().body(Some("text/plain"), "grant_type=client_credentials")),
        (
            "multipart body",
            b().body(
                Some("multipart/form-data; boundary=XyZ"),
                "--XyZ\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--XyZ--\r\n",
            ),
        ),
    ];
    let mut table = Cases::new();
    for (name, call) in cases {
        let resp = call.send(&server).await;
        table.check(name, check_error(&resp, 400, "invalid_request"));
    }
    table.finish();
}

/// Exactly 64 parameters are within the bound; unknown ones are ignored
/// (RFC 6749 §3.2).
#[tokio::test]
async fn sixty_four_parameters_are_accepted() {
    let server = Server::start(&[]);
    let client = server.create_client("many", &[]);
    let mut call = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials");
    for i in 1..=63 {
        call = call.q(&format!("x{i}"), "1");
    }
    expect_refresh_token(&call.send(&server).await, "grant_type and 63 unknown parameters");
}

/// A token request that is not a POST: 400 `invalid_request` with
/// `Allow: POST`.
#[tokio::test]
async fn other_methods_on_the_token_endpoint() {
    let server = Server::start(&[]);
    let client = server.create_client("methods", &[]);
    let mut table = Cases::new();
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let resp = cc().basic_creds(&client).method(method.clone()).send(&server).await;
        let outcome = check_error(&resp, 400, "invalid_request").and_then(|()| {
            if resp.header("allow") == Some("POST") {
                Ok(())
            } else {
                Err(format!("Allow is {:?}, not POST", resp.header("allow")))
            }
        });
        table.check(method.as_str(), outcome);
    }
    table.finish();
}

fn padded_body(client: &ClientCredentials, total: usize) -> String {
    let head = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&pad=",
        client.client_id, client.client_secret
    );
    assert!(total > head.len());
    // Padding in parameters of at most 4000 bytes, below max_param_bytes.
    let mut body = head;
    let mut i = 0;
    while body.len() < total {
        let room = total - body.len();
        if i > 0 {
            let name = format!("&p{i}=");
            if room <= name.len() {
                body.push_str(&"a".repeat(room));
                break;
            }
            body.push_str(&name);
        }
        let room = total - body.len();
        body.push_str(&"a".repeat(room.min(4000 - 4)));
        i += 1;
    }
    assert_eq!(body.len(), total);
    body
}

/// A body of 16 KiB is accepted; one byte more is 413 with a JSON
/// `invalid_request`. (Far larger bodies go over raw TCP in
/// `hostile_input`, where a server that stops reading mid-body is seen.)
#[tokio::test]
async fn body_over_16_kib_is_413() {
    let server = Server::start(&[]);
    let client = server.create_client("big", &[]);
    let form = Some("application/x-www-form-urlencoded");
    let mut table = Cases::new();

    let resp = TokenCall::new().body(form, padded_body(&client, 16 * 1024)).send(&server).await;
    table.check("exactly 16 KiB", token_ok(&resp));

    for (name, size) in [("16 KiB + 1", 16 * 1024 + 1), ("17 KiB", 17 * 1024)] {
        let resp = TokenCall::new().body(form, padded_body(&client, size)).send(&server).await;
        table.check(name, check_error(&resp, 413, "invalid_request"));
    }
    table.finish();
}

/// Request headers over 16 KiB in all: 431; the server serves on.
#[tokio::test]
async fn headers_over_16_kib_are_431() {
    let server = Server::start(&[]);
    let client = server.create_client("headers", &[]);
    let mut table = Cases::new();
    let status = |resp: &Resp| {
        if resp.status == 431 { Ok(()) } else { Err(format!("expected 431, got {}", resp.summary())) }
    };

    let pad = "h".repeat(9 * 1024);
    let resp = cc().basic_creds(&client).header("X-Pad-1", &pad).header("X-Pad-2", &pad).send(&server).await;
    table.check("two headers of 9 KiB", status(&resp));

    let resp = cc().basic_creds(&client).header("X-Pad", &"h".repeat(17 * 1024)).send(&server).await;
    table.check("one header of 17 KiB", status(&resp));

    let resp = cc().basic_creds(&client).send(&server).await;
    table.check("a normal request afterwards", token_ok(&resp));
    table.finish();
}

/// A grant type Tessera does not support, after successful client
/// authentication: 400 `unsupported_grant_type`.
#[tokio::test]
async fn unsupported_grant_types() {
    let server = Server::start(&[]);
    let client = server.create_client("grants", &[]);
    let mut table = Cases::new();
    for grant in [
        "password",
        "authorization_code",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "CLIENT_CREDENTIALS",
    ] {
        let resp = TokenCall::new().basic_creds(&client).q("grant_type", grant).send(&server).await;
        table.check(grant, check_error(&resp, 400, "unsupported_grant_type"));
    }
    table.finish();
}

/// Asking a scope the client may not have: 400 `invalid_scope`.
#[tokio::test]
async fn invalid_scope_cases() {
    let server = Server::start(&[]);
    let scoped = server.create_client("scoped", &["read", "write"]);
    let unscoped = server.create_client("unscoped", &[]);
    let cases: Vec<(&str, TokenCall)> = vec![
        ("a scope outside the allowed ones", cc().basic_creds(&scoped).q("scope", "admin")),
        ("one allowed and one not", cc().basic_creds(&scoped).q("scope", "read admin")),
        (
            "in a form body",
            TokenCall::new().basic_creds(&scoped).f("grant_type", "client_credentials").f("scope", "admin"),
        ),
        ("a prefix of an allowed scope", cc().basic_creds(&scoped).q("scope", "rea")),
        ("a client without scopes asking one", cc().basic_creds(&unscoped).q("scope", "read")),
    ];
    let mut table = Cases::new();
    for (name, call) in cases {
        let resp = call.send(&server).await;
        table.check(name, check_error(&resp, 400, "invalid_scope"));
    }
    table.finish();
}

/// With `--allow-query-credentials=false`, credentials in the query string
/// are `invalid_request`; Basic and form-body credentials still work.
#[tokio::test]
async fn query_credentials_can_be_switched_off() {
    let server = Server::start(&["--allow-query-credentials=false"]);
    let client = server.create_client("no-query", &[]);
    let mut table = Cases::new();

    let resp = cc().query_creds(&client).send(&server).await;
    table.check("client_credentials with query credentials", check_error(&resp, 400, "invalid_request"));

    let resp = TokenCall::new()
        .q("grant_type", "refresh_token")
        .q("refresh_token", SOME_REFRESH_TOKEN)
        .query_creds(&client)
        .send(&server)
        .await;
    table.check("refresh_token with query credentials", check_error(&resp, 400, "invalid_request"));

    let resp = cc().basic_creds(&client).send(&server).await;
    table.check("Basic credentials, grant_type in query", token_ok(&resp));

    let resp = TokenCall::new().f("grant_type", "client_credentials").form_creds(&client).send(&server).await;
    table.check("form-body credentials", token_ok(&resp));
    table.finish();
}
