//! Hostile input over raw TCP: bytes no well-behaved client sends. Every
//! request must get a well-formed HTTP response that is not a 5xx (with the
//! specific status and error code where the contract names one), and the
//! server must keep serving afterwards. A connection that trickles is
//! closed without holding anyone else up.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::util::{Cases, Resp, Server, TokenCall, check_error, expect_refresh_token, get, raw_exchange, raw_request};

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status and (for the token endpoint's JSON errors) this code.
    Error(u16, &'static str),
    /// One of these status/code pairs.
    OneOf(&'static [(u16, &'static str)]),
    /// Exactly this status, whatever the body.
    Status(u16),
    /// Any 4xx.
    ClientError,
}

fn judge(resp: &Resp, expect: Expect) -> Result<(), String> {
    if resp.status >= 500 {
        return Err(format!("a {} for client input: {}", resp.status, resp.summary()));
    }
    match expect {
        Expect::Error(status, code) => check_error(resp, status, code),
        Expect::OneOf(options) => {
            if options.iter().any(|(s, c)| check_error(resp, *s, c).is_ok()) {
                Ok(())
            } else {
                Err(format!("expected one of {options:?}, got {}", resp.summary()))
            }
        }
        Expect::Status(status) if resp.status == status => Ok(()),
        Expect::Status(status) => Err(format!("expected {status}, got {}", resp.summary())),
        Expect::ClientError if (400..500).contains(&resp.status) => Ok(()),
        Expect::ClientError => Err(format!("expected a 4xx, got {}", resp.summary())),
    }
}

/// A token request with raw header bytes (for bytes that are not UTF-8).
fn raw_bytes_request(target: &[u8], extra_header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut req = b"POST ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    req.extend_from_slice(extra_header);
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    req
}

#[tokio::test]
async fn hostile_requests_get_well_formed_non_5xx_answers() {
    let mut server = Server::start(&[]);
    let client = server.create_client("target", &[]);
    let addr = server.addr;
    let id = client.client_id.as_str();
    let secret = client.client_secret.as_str();
    let good_auth = crate::util::basic(id, secret);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let cc = "/oauth2/token?grant_type=client_credentials";
    let post = |target: &str, headers: &[(&str, &str)], body: &[u8]| raw_request("POST", target, addr, headers, body);

    let non_utf8_basic = format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', 0xc3, 0x28]));
    let no_colon = format!("Basic {}", STANDARD.encode(id));
    let long_basic = format!("Basic {}", STANDARD.encode("x".repeat(10 * 1024)));
    let long_id = format!("{cc}&client_id={}&client_secret={secret}", "a".repeat(10 * 1024));
    let unicode_id = format!("{cc}&client_id=%C3%BC%E2%82%AC&client_secret={secret}");
    let many_params = format!("{cc}&{}", (1..=64).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&"));
    let body_64k = "a".repeat(64 * 1024);
    let body_1m = "a".repeat(1024 * 1024);
    let mut chunked_64k = Vec::new();
    for _ in 0..16 {
        chunked_64k.extend_from_slice(format!("1000\r\n{}\r\n", "a".repeat(4096)).as_bytes());
    }
    chunked_64k.extend_from_slice(b"0\r\n\r\n");
    let huge_header = "h".repeat(20 * 1024);
    let long_scope_body = format!("grant_type=client_credentials&scope={}", "s".repeat(5 * 1024));
    let mut many_headers: Vec<(String, &str)> = vec![("Authorization".to_owned(), good_auth.as_str())];
    many_headers.extend((0..67).map(|i| (format!("X-H{i}"), "1")));

    let mut bad_header_bytes = b"Authorization: Basic \xff\xfe\xfd\r\n".to_vec();
    bad_header_bytes.extend_from_slice(b"X-Ignore: 1\r\n");

    let either_auth_error: &[(u16, &str)] = &[(400, "invalid_request"), (401, "invalid_client")];
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("Basic not base64", post(cc, &[("Authorization", "Basic %%%***")], b""), Expect::Error(401, "invalid_client")),
        (
            "Basic with non-UTF-8 inside",
            post(cc, &[("Authorization", &non_utf8_basic)], b""),
            Expect::OneOf(either_auth_error),
        ),
        ("Basic without colon", post(cc, &[("Authorization", &no_colon)], b""), Expect::Error(401, "invalid_client")),
        ("Basic of 10 KiB", post(cc, &[("Authorization", &long_basic)], b""), Expect::Error(401, "invalid_client")),
        (
            "Authorization with raw non-UTF-8 bytes",
            raw_bytes_request(cc.as_bytes(), &bad_header_bytes, b""),
            Expect::OneOf(either_auth_error),
        ),
        (
            "two Authorization headers",
            post(cc, &[("Authorization", &good_auth), ("Authorization", &good_auth)], b""),
            Expect::OneOf(either_auth_error),
        ),
        ("client_id of 10 KiB (over max_param_bytes)", post(&long_id, &[], b""), Expect::Error(400, "invalid_request")),
        (
            "scope of 5 KiB in the body",
            post("/oauth2/token", &[("Authorization", &good_auth), form], long_scope_body.as_bytes()),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "70 header fields (over max_headers)",
            post(cc, &many_headers.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), b""),
            Expect::Status(431),
        ),
        ("non-ASCII client_id", post(&unicode_id, &[], b""), Expect::Error(401, "invalid_client")),
        (
            "%zz in the query",
            post(&format!("{cc}&x=%zz"), &[("Authorization", &good_auth)], b""),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "lone % at the end of the query",
            post(&format!("{cc}%"), &[("Authorization", &good_auth)], b""),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "%ff in the query",
            post(&format!("{cc}&x=%ff"), &[("Authorization", &good_auth)], b""),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "%zz in the body",
            post("/oauth2/token", &[("Authorization", &good_auth), form], b"grant_type=client_credentials&x=%zz"),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "raw non-UTF-8 byte in the body",
            post("/oauth2/token", &[("Authorization", &good_auth), form], b"grant_type=client_credentials&x=\xff"),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "NUL in grant_type",
            post("/oauth2/token?grant_type=client%00credentials", &[("Authorization", &good_auth)], b""),
            Expect::OneOf(&[(400, "invalid_request"), (400, "unsupported_grant_type")]),
        ),
        (
            "raw non-UTF-8 byte in the target",
            raw_bytes_request(b"/oauth2/token?grant_type=\xff", b"", b""),
            Expect::ClientError,
        ),
        (
            "grant_type twice",
            post(&format!("{cc}&grant_type=client_credentials"), &[("Authorization", &good_auth)], b""),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "grant_type in query and body",
            post(cc, &[("Authorization", &good_auth), form], b"grant_type=client_credentials"),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "65 parameters",
            post(&many_params, &[("Authorization", &good_auth)], b""),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "JSON content type",
            post(
                "/oauth2/token",
                &[("Authorization", &good_auth), ("Content-Type", "application/json")],
                br#"{"grant_type":"client_credentials"}"#,
            ),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "body of 64 KiB",
            post("/oauth2/token", &[("Authorization", &good_auth), form], body_64k.as_bytes()),
            Expect::Error(413, "invalid_request"),
        ),
        (
            "body of 1 MiB",
            post("/oauth2/token", &[("Authorization", &good_auth), form], body_1m.as_bytes()),
            Expect::Error(413, "invalid_request"),
        ),
        (
            "chunked body of 64 KiB",
            post(
                "/oauth2/token",
                &[("Authorization", &good_auth), form, ("Transfer-Encoding", "chunked")],
                &chunked_64k,
            ),
            Expect::Error(413, "invalid_request"),
        ),
        (
            "Content-Length of 10 MB, no body sent",
            post("/oauth2/token", &[("Authorization", &good_auth), form, ("Content-Length", "10000000")], b""),
            Expect::Error(413, "invalid_request"),
        ),
        (
            "a header of 20 KiB",
            post(cc, &[("Authorization", &good_auth), ("X-Pad", &huge_header)], b""),
            Expect::Status(431),
        ),
        (
            "Content-Length not a number",
            post("/oauth2/token", &[("Authorization", &good_auth), ("Content-Length", "abc")], b""),
            Expect::ClientError,
        ),
        (
            "Content-Length and Transfer-Encoding",
            post(
                "/oauth2/token",
                &[("Authorization", &good_auth), form, ("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                b"0\r\n\r\n",
            ),
            Expect::ClientError,
        ),
        ("garbage request line", b"\x00\x01\x02 garbage \xff\r\n\r\n".to_vec(), Expect::ClientError),
        ("header line without colon", raw_bytes_request(cc.as_bytes(), b"NoColonHere\r\n", b""), Expect::ClientError),
        ("unknown path", post("/oauth2/nothing-here", &[("Authorization", &good_auth)], b""), Expect::Status(404)),
        ("path traversal", post("/oauth2/../oauth2/token", &[("Authorization", &good_auth)], b""), Expect::ClientError),
    ];

    let valid = post(cc, &[("Authorization", &good_auth)], b"");
    let mut table = Cases::new();
    for (name, request, expect) in cases {
        let outcome = raw_exchange(addr, &request).and_then(|resp| judge(&resp, expect));
        table.check(name, outcome);
        if !server.is_running() {
            table.check(name, Err::<(), _>("the server died".to_owned()));
            break;
        }
        let after = raw_exchange(addr, &valid).and_then(|resp| crate::util::token_ok(&resp).map(drop));
        table.check(&format!("a valid request right after {name:?}"), after);
    }

    assert!(server.is_running(), "the server survives hostile input");
    assert_eq!(get(&server, "/healthz").await.status, 200);
    let resp = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials").send(&server).await;
    expect_refresh_token(&resp, "a normal request after the hostile ones");

    let status = server.terminate();
    let (_, stderr) = server.output();
    table.check("graceful exit afterwards", if status.code() == Some(0) { Ok(()) } else { Err(format!("{status}")) });
    table.check("no panic in the server's log", if stderr.contains("panicked") { Err(stderr) } else { Ok(()) });
    table.finish();
}

/// The contract's default bound on receiving one whole request.
const REQUEST_BOUND: Duration = Duration::from_secs(10);
/// Slack past that bound for a loaded 2-core machine.
const BOUND_MARGIN: Duration = Duration::from_secs(5);

/// A request that trickles in is cut off (the contract: complete within
/// 10 s), and other clients are served meanwhile.
#[tokio::test]
async fn trickling_connection_is_closed_and_others_are_served() {
    let server = Server::start(&[]);
    let client = server.create_client("patient", &[]);
    let started = Instant::now();
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(b"POST /oauth2/token?grant_type=client_credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .expect("write the first bytes");
    slow.set_read_timeout(Some(Duration::from_millis(500))).expect("read timeout");

    let resp = TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials").send(&server).await;
    expect_refresh_token(&resp, "another client while one trickles");

    // One byte every half second until the server closes the connection
    // (possibly after a 408), which it must do at the 10 s request bound:
    // not before it, and not much after it (the margin is for a loaded
    // machine). The loop gives up at twice the bound.
    let mut buf = [0u8; 1024];
    let mut closed = false;
    while started.elapsed() < 2 * REQUEST_BOUND {
        let _ = slow.write_all(b"a");
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let lasted = started.elapsed();
    assert!(closed, "a connection trickling a header byte every 0.5 s is still open after {lasted:?}");
    // The server's clock starts at accept, after our connect: never early.
    assert!(lasted >= REQUEST_BOUND - Duration::from_millis(500), "closed after {lasted:?}, before the 10 s bound");
    assert!(lasted <= REQUEST_BOUND + BOUND_MARGIN, "closed only after {lasted:?}; the bound is 10 s");
    expect_refresh_token(
        &TokenCall::new().basic_creds(&client).q("grant_type", "client_credentials").send(&server).await,
        "after the trickling connection",
    );
}

/// Property: whatever bytes arrive as the `Authorization` header (CR and LF
/// excluded, they would end it), the real server answers with a
/// well-formed response: 401 `invalid_client` with the challenge, or 400
/// `invalid_request`, as JSON (or hyper's empty 400 for exactly the values
/// HTTP forbids in a header), never a 5xx, and keeps serving.
#[test]
fn any_authorization_bytes_get_a_well_formed_answer() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    // The limiter would turn the flood of failures into 429s.
    let server = Server::start(&["--rate-limit", "false"]);
    let client = server.create_client("prop", &[]);
    let addr = server.addr;
    let header_bytes =
        proptest::collection::vec(any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'), 0..200);
    let strategy =
        (prop_oneof![Just(&b"Basic "[..]), Just(&b""[..]), Just(&b"basic  "[..])], header_bytes, any::<bool>());
    let mut runner = TestRunner::new(Config { cases: 160, failure_persistence: None, ..Config::default() });
    runner
        .run(&strategy, |(prefix, bytes, encode)| {
            let mut value = prefix.to_vec();
            if encode {
                value.extend_from_slice(STANDARD.encode(&bytes).as_bytes());
            } else {
                value.extend_from_slice(&bytes);
            }
            let mut header = b"Authorization: ".to_vec();
            header.extend_from_slice(&value);
            header.extend_from_slice(b"\r\n");
            let request = raw_bytes_request(b"/oauth2/token?grant_type=client_credentials", &header, b"");
            let resp = raw_exchange(addr, &request).map_err(TestCaseError::fail)?;
            // hyper itself refuses a value HTTP forbids, with an empty 400,
            // before the token endpoint runs; every other value reaches the
            // endpoint and gets its JSON answer.
            let reaches_endpoint = http::HeaderValue::from_bytes(&value).is_ok();
            let ok = match resp.status {
                400 if !reaches_endpoint && resp.body.is_empty() => Ok(()),
                _ if !reaches_endpoint => Err(format!("hyper's empty 400 expected, got {}", resp.summary())),
                401 => check_error(&resp, 401, "invalid_client"),
                400 => check_error(&resp, 400, "invalid_request"),
                _ => Err(format!("unexpected answer {}", resp.summary())),
            };
            ok.map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{e}"));

    let valid = raw_request(
        "POST",
        "/oauth2/token?grant_type=client_credentials",
        addr,
        &[("Authorization", &crate::util::basic(&client.client_id, &client.client_secret))],
        b"",
    );
    crate::util::token_ok(&raw_exchange(addr, &valid).expect("a response")).expect("a valid request afterwards");
}

/// Property: any bytes as the query string and as a form body get a
/// non-5xx answer: a token, or a JSON error with both members (the status
/// and challenge `check_error` expects for its code), for everything that
/// reaches the token endpoint.
#[test]
fn any_query_and_body_bytes_get_a_well_formed_answer() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let server = Server::start(&["--rate-limit", "false"]);
    let client = server.create_client("prop", &[]);
    let addr = server.addr;
    let auth = crate::util::basic(&client.client_id, &client.client_secret);
    // Bytes allowed in a request target by hyper, plus '%' and '&' and '='.
    let query =
        proptest::collection::vec(prop_oneof![Just(b'%'), Just(b'&'), Just(b'='), Just(b'+'), 0x21u8..0x7f], 0..120);
    let body = proptest::collection::vec(any::<u8>(), 0..300);
    let mut runner = TestRunner::new(Config { cases: 160, failure_persistence: None, ..Config::default() });
    runner
        .run(&(query, body), |(query, body)| {
            let mut target = b"/oauth2/token?".to_vec();
            target.extend(query.iter().filter(|b| **b != b'#'));
            let header = format!("Authorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\n");
            let request = raw_bytes_request(&target, header.as_bytes(), &body);
            let resp = raw_exchange(addr, &request).map_err(TestCaseError::fail)?;
            if resp.status >= 500 {
                return Err(TestCaseError::fail(format!("a 5xx: {}", resp.summary())));
            }
            // Only a request target that is not a URI at all is refused by
            // hyper (an empty 400) before the token endpoint sees it.
            if http::Uri::try_from(&target[..]).is_err() {
                return if resp.status == 400 && resp.body.is_empty() {
                    Ok(())
                } else {
                    Err(TestCaseError::fail(format!("hyper's empty 400 expected: {}", resp.summary())))
                };
            }
            if resp.status == 200 {
                return crate::util::token_ok(&resp).map(|_| ()).map_err(TestCaseError::fail);
            }
            let body = resp.json().ok_or_else(|| TestCaseError::fail(format!("not JSON: {}", resp.summary())))?;
            let code = body["error"].as_str().unwrap_or_default().to_owned();
            let status = if code == "invalid_client" { 401 } else { 400 };
            check_error(&resp, status, &code).map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let valid =
        raw_request("POST", "/oauth2/token?grant_type=client_credentials", addr, &[("Authorization", &auth)], b"");
    crate::util::token_ok(&raw_exchange(addr, &valid).expect("a response")).expect("a valid request afterwards");
}
