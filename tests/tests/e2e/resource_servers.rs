//! What resource servers see: tokens checked by an independent JOSE
//! implementation, the JWKS's `ETag`/304, the shared verifier built from
//! the JWKS URL, the example resource server from token to protected
//! response, and `tessera-admin verify`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::alg::{Ed25519, Es256, VerifyingKey};
use jwt_compact::prelude::*;
use serde_json::Value;
use tessera_shared::admin::ClientCredentials;
use tessera_shared::jwk::Jwk;
use tessera_shared::verify::{Verifier, VerifyError};

use crate::util::{
    EXIT_TIMEOUT, HTTP_TIMEOUT, Resp, START_TIMEOUT, Server, TokenCall, binary, expect_token, get, http, jwks,
    jwt_parts, now_unix, run_to_exit,
};

fn cc(client: &ClientCredentials) -> TokenCall {
    TokenCall::new().basic_creds(client).q("grant_type", "client_credentials")
}

fn b64(value: &Option<String>) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(value.as_deref().expect("the member is present")).expect("base64url")
}

type Es256Key = <Es256 as jwt_compact::Algorithm>::VerifyingKey;
type Ed25519Key = <Ed25519 as jwt_compact::Algorithm>::VerifyingKey;

/// The JWK as jwt-compact's own P-256 key.
fn es256_key(jwk: &Jwk) -> Es256Key {
    let mut point = vec![4u8];
    point.extend(b64(&jwk.x));
    point.extend(b64(&jwk.y));
    <Es256Key as VerifyingKey<Es256>>::from_slice(&point).expect("a P-256 point")
}

/// The JWK as jwt-compact's own Ed25519 key.
fn ed25519_key(jwk: &Jwk) -> Ed25519Key {
    <Ed25519Key as VerifyingKey<Ed25519>>::from_slice(&b64(&jwk.x)).expect("an Ed25519 key")
}

/// Checks `token` with jwt-compact alone (its own P-256 and Ed25519 code),
/// given the JWK the token's kid names; returns the claims.
fn independent_check(token: &str, jwk: &Jwk) -> Value {
    let untrusted = UntrustedToken::new(token).expect("jwt-compact parses the token");
    assert_eq!(untrusted.header().token_type.as_deref(), Some("at+jwt"));
    assert_eq!(untrusted.header().key_id.as_deref(), jwk.kid.as_deref());
    let checked: Token<Value> = match jwk.alg.as_deref() {
        Some("ES256") => Es256.validator(&es256_key(jwk)).validate(&untrusted).expect("jwt-compact accepts ES256"),
        Some("EdDSA") => Ed25519.validator(&ed25519_key(jwk)).validate(&untrusted).expect("jwt-compact accepts EdDSA"),
        other => panic!("unexpected alg {other:?}"),
    };
    let exp = checked.claims().expiration.expect("exp").timestamp();
    assert!(exp > i64::try_from(now_unix()).unwrap(), "not expired");
    checked.claims().custom.clone()
}

/// The server's tokens verify with an independent implementation, and a
/// flipped signature byte makes it refuse them too.
#[tokio::test]
async fn tokens_verify_with_an_independent_jose_implementation() {
    for alg in ["ES256", "EdDSA"] {
        let server = Server::start(&["--signing-alg", alg]);
        let client = server.create_client("interop", &["read"]);
        let token = expect_token(&cc(&client).q("scope", "read").send(&server).await, alg).access_token;
        let keys = jwks(&server).await;
        let (header, _) = jwt_parts(&token);
        let jwk = keys.find(header["kid"].as_str().unwrap()).expect("the kid is published");
        let claims = independent_check(&token, jwk);
        assert_eq!(claims["client_id"], client.client_id.as_str(), "{alg}");
        assert_eq!(claims["iss"], server.base.as_str());
        assert_eq!(claims["aud"], server.base.as_str());
        assert_eq!(claims["scope"], "read");
        // Our verifier agrees.
        let ours = Verifier::new(keys.clone(), &server.base, &server.base).verify(&token).unwrap();
        assert_eq!(ours.client_id, client.client_id);

        let mut tampered = token.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let untrusted = UntrustedToken::new(&tampered).unwrap();
        let refused = match alg {
            "ES256" => Es256.validator::<Value>(&es256_key(jwk)).validate(&untrusted).is_err(),
            _ => Ed25519.validator::<Value>(&ed25519_key(jwk)).validate(&untrusted).is_err(),
        };
        assert!(refused, "{alg}: jwt-compact refuses a tampered signature");
        assert_eq!(Verifier::new(keys, &server.base, &server.base).verify(&tampered), Err(VerifyError::BadSignature));
    }
}

#[tokio::test]
async fn jwks_has_an_etag_and_answers_if_none_match_with_304() {
    let server = Server::start(&[]);
    let first = get(&server, "/.well-known/jwks.json").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), Some("public, max-age=300"));
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong, quoted tag: {etag}");
    assert_eq!(get(&server, "/.well-known/jwks.json").await.header("etag"), Some(etag.as_str()), "stable");

    let revalidate = |tag: String| {
        let url = server.url("/.well-known/jwks.json");
        async move { Resp::from_reqwest(http().get(&url).header("If-None-Match", tag).send().await.unwrap()).await }
    };
    let not_modified = revalidate(etag.clone()).await;
    assert_eq!(not_modified.status, 304, "{}", not_modified.summary());
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(not_modified.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(revalidate(format!("W/{etag}")).await.status, 304, "weak comparison");
    let changed = revalidate("\"something-else\"".into()).await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body, first.body);
}

/// `Verifier::from_jwks_url` against the real server, the README's path.
#[tokio::test]
async fn the_verifier_fetches_the_jwks_from_the_server() {
    let server = Server::start(&[]);
    let client = server.create_client("rs", &["organization:read"]);
    let token = expect_token(&cc(&client).send(&server).await, "token").access_token;
    let verifier =
        Verifier::from_jwks_url(&server.url("/.well-known/jwks.json"), &server.base, &server.base).await.unwrap();
    let claims = verifier.verify_async(&token).await.unwrap();
    assert!(claims.has_scope("organization:read"));
    let elsewhere =
        Verifier::from_jwks_url(&server.url("/.well-known/jwks.json"), &server.base, "https://other").await.unwrap();
    assert_eq!(elsewhere.verify_async(&token).await, Err(VerifyError::WrongAudience));
}

/// The example resource server as a process; killed when dropped.
pub(crate) struct ResourceServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

impl ResourceServer {
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut child = Command::new(binary("resource-server"))
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("resource-server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_TIMEOUT).expect("resource-server prints its listening line");
        let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("line {line:?}")).to_owned();
        Self { child, base }
    }

    async fn get(&self, authorization: Option<&str>) -> Resp {
        let mut request = http().get(format!("{}/api/v1/organization", self.base)).timeout(HTTP_TIMEOUT);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        Resp::from_reqwest(request.send().await.expect("the resource server answers")).await
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// From a token of the real server to the protected response: 200 with the
/// scope, 403 without, 401 for a bad or missing token, each with its
/// RFC 6750 challenge.
#[tokio::test]
async fn the_example_resource_server_protects_its_endpoint() {
    let server = Server::start(&[]);
    let rs = ResourceServer::start(&["--jwks", &server.url("/.well-known/jwks.json"), "--issuer", &server.base]);
    let reader = server.create_client("reader", &["organization:read", "billing"]);
    let other = server.create_client("other", &["billing"]);

    let token = expect_token(&cc(&reader).send(&server).await, "reader").access_token;
    let ok = rs.get(Some(&format!("Bearer {token}"))).await;
    assert_eq!(ok.status, 200, "{}", ok.summary());
    assert_eq!(ok.json().unwrap()["client_id"], reader.client_id.as_str());

    let narrow = expect_token(&cc(&reader).q("scope", "billing").send(&server).await, "narrow").access_token;
    let forbidden = rs.get(Some(&format!("Bearer {narrow}"))).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.summary());
    assert_eq!(
        forbidden.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="organization:read""#)
    );
    assert_eq!(forbidden.json().unwrap()["error"], "insufficient_scope");
    let other_token = expect_token(&cc(&other).send(&server).await, "other").access_token;
    assert_eq!(rs.get(Some(&format!("Bearer {other_token}"))).await.status, 403);

    // Both schemes are offered, with no error attribute, without a token.
    let challenge = r#"Bearer, DPoP algs="ES256 EdDSA RS256 PS256""#;
    let missing = rs.get(None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some(challenge), "no error attribute without a token");
    let basic = rs.get(Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!((basic.status, basic.header("www-authenticate")), (401, Some(challenge)));

    let mut forged = token.clone().into_bytes();
    let at = forged.len() - 5;
    forged[at] = if forged[at] == b'x' { b'y' } else { b'x' };
    let forged = String::from_utf8(forged).unwrap();
    for (name, bad, check) in
        [("forged signature", forged.as_str(), "signature"), ("not a JWT", "abc.def.ghi", "format")]
    {
        let resp = rs.get(Some(&format!("Bearer {bad}"))).await;
        assert_eq!(resp.status, 401, "{name}: {}", resp.summary());
        assert_eq!(
            resp.header("www-authenticate").map(str::to_owned),
            Some(format!(r#"Bearer error="invalid_token", error_description="the token failed the {check} check""#)),
            "{name}"
        );
        assert_eq!(resp.json().unwrap()["error"], "invalid_token");
    }
    let malformed = rs.get(Some("Bearer a b")).await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.header("www-authenticate").unwrap().contains(r#"error="invalid_request""#));

    // A token of another Tessera (its own keys) is refused by this one's keys.
    let stranger = Server::start(&[]);
    let stranger_client = stranger.create_client("s", &["organization:read"]);
    let foreign = expect_token(&cc(&stranger_client).send(&stranger).await, "foreign").access_token;
    let resp = rs.get(Some(&format!("Bearer {foreign}"))).await;
    assert_eq!(resp.status, 401);
    assert!(resp.header("www-authenticate").unwrap().contains("invalid_token"));
}

/// `tessera-admin verify`: claims on success, the failed check otherwise,
/// from a JWKS URL or a file.
#[tokio::test]
async fn admin_verify_prints_claims_or_the_failed_check() {
    let server = Server::start(&[]);
    let client = server.create_client("v", &["read"]);
    let token = expect_token(&cc(&client).send(&server).await, "token").access_token;
    let jwks_url = server.url("/.well-known/jwks.json");

    let ok = server.admin(&["verify", &token, "--jwks", &jwks_url]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(ok.stdout.contains("The token is valid."), "{}", ok.stdout);
    assert!(ok.stdout.contains(&client.client_id), "{}", ok.stdout);

    let json = server.admin_json::<Value>(&["verify", &token, "--jwks", &jwks_url, "--json"]);
    assert_eq!(json["client_id"], client.client_id.as_str());
    assert_eq!(json["scope"], "read");

    let dir = crate::util::private_tempdir();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, &get(&server, "/.well-known/jwks.json").await.body).unwrap();
    let file = file.to_str().unwrap();
    let from_file = server.admin(&["verify", &token, "--jwks", file, "--issuer", &server.base]);
    assert!(from_file.status.success(), "{from_file:?}");

    let wrong_aud = server.admin(&["verify", &token, "--jwks", file, "--issuer", &server.base, "--audience", "x"]);
    assert_eq!(wrong_aud.status.code(), Some(1));
    assert_eq!(
        wrong_aud.stderr_lines(),
        ["tessera-admin: the token is not valid: the token is not meant for this audience (failed check: aud)"]
    );
    let no_issuer = server.admin(&["verify", &token, "--jwks", file]);
    assert_eq!(no_issuer.status.code(), Some(1));
    assert!(no_issuer.stderr.contains("--issuer is required"), "{}", no_issuer.stderr);

    // `-` reads the token from stdin, keeping it out of the process list.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"printf '%s\n' "$TOKEN" | "$ADMIN" verify - --jwks "$JWKS""#])
        .env("TOKEN", &token)
        .env("ADMIN", binary("tessera-admin"))
        .env("JWKS", &jwks_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_to_exit(cmd, EXIT_TIMEOUT, "tessera-admin verify -");
    assert!(out.status.success(), "the token from stdin: {out:?}");

    let nobody = server.admin(&["verify", &token, "--jwks", "http://127.0.0.1:1/jwks.json"]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(nobody.stderr.contains("cannot fetch the JWKS"), "{}", nobody.stderr);
}

/// A JWKS endpoint on 127.0.0.1 that answers its first request with
/// `keys` (`Cache-Control: max-age=1`) and then hangs: every later
/// connection is read and held open, never answered, until the test ends.
/// Returns its URL and the count of requests it has seen.
async fn hanging_jwks(keys: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if counter.fetch_add(1, Ordering::SeqCst) > 0 {
                held.push(stream);
                continue;
            }
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=1\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                keys.len()
            )
            .into_bytes();
            response.extend_from_slice(&keys);
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, seen)
}

/// Issue 13, item 1: the issuer's JWKS endpoint hangs after its first
/// answer. Once the cached keys are past their max-age and the background
/// refresh is stuck on the hanging endpoint, concurrent requests to the
/// example resource server with a token whose key is cached are all
/// answered at once (each within 1.5 s; before, they queued behind the
/// refresh: 10, 20, 30 and 40 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_jwks_endpoint_does_not_hold_up_requests_with_cached_keys() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let server = Server::start(&[]);
    let reader = server.create_client("reader", &["organization:read"]);
    let token = expect_token(&cc(&reader).send(&server).await, "reader").access_token;
    let keys = get(&server, "/.well-known/jwks.json").await.body;
    let (url, seen) = hanging_jwks(keys).await;
    let rs = ResourceServer::start(&["--jwks", &url, "--issuer", &server.base]);
    assert_eq!(rs.get(Some(&format!("Bearer {token}"))).await.status, 200, "fresh keys");

    // Wait (bounded) for the background refresh of the stale keys to reach
    // the endpoint and hang there; a verifier without one would instead
    // refresh (and hang) inside the requests below.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let (url, bearer) = (format!("{}/api/v1/organization", rs.base), bearer.clone());
            tokio::spawn(async move {
                let sent = Instant::now();
                let resp = http().get(url).header("Authorization", bearer).timeout(HTTP_TIMEOUT).send().await;
                (resp.map(|r| r.status().as_u16()).map_err(|e| e.to_string()), sent.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    for (status, took) in &answers {
        assert_eq!(status, &Ok(200), "a token with a cached key is accepted while the issuer hangs: {answers:?}");
        assert!(*took < Duration::from_millis(1500), "answered in {took:?}, all: {answers:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{answers:?}");
}
