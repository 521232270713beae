//! The JWKS cache against a small HTTP server on 127.0.0.1, with the
//! cache's clock moved by hand.

use std::sync::Mutex;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::verify::tests::{AUDIENCE, ISSUER, TestKey, good_claims};
use crate::verify::{Keys, Verifier, VerifyError};

/// What the test server answers, and what it saw.
#[derive(Default)]
struct Script {
    jwks: Vec<u8>,
    cache_control: Option<&'static str>,
    etag: Option<&'static str>,
    fail: bool,
    /// Read the request, then never answer (a hanging issuer).
    hang: bool,
    /// Answer 302 to this location.
    redirect: Option<String>,
    requests: usize,
    if_none_match: Vec<Option<String>>,
}

/// Serves `script` on 127.0.0.1 until the test ends; one request per
/// connection.
async fn serve(script: Arc<Mutex<Script>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Connections of a hanging issuer, kept open until the test ends.
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            // Bounded: a request head larger than 64 KiB ends the exchange.
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let inm = head.lines().find_map(|l| l.strip_prefix("if-none-match:")).map(|v| v.trim().to_owned());
            let response = {
                let mut s = script.lock().unwrap();
                s.requests += 1;
                s.if_none_match.push(inm.clone());
                if s.hang {
                    None
                } else if let Some(location) = &s.redirect {
                    Some(
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .into_bytes(),
                    )
                } else {
                    let mut headers = String::new();
                    if let Some(cc) = s.cache_control {
                        headers.push_str(&format!("Cache-Control: {cc}\r\n"));
                    }
                    if let Some(etag) = s.etag {
                        headers.push_str(&format!("ETag: {etag}\r\n"));
                    }
                    Some(if s.fail {
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
                    } else if inm.is_some() && inm.as_deref() == s.etag.map(str::to_ascii_lowercase).as_deref() {
                        format!("HTTP/1.1 304 Not Modified\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
                            .into_bytes()
                    } else {
                        let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        s.jwks.len()
                    )
                    .into_bytes();
                        r.extend_from_slice(&s.jwks);
                        r
                    })
                }
            };
            let Some(response) = response else {
                held.push(stream);
                continue;
            };
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

fn jwks_of(keys: &[&TestKey]) -> Vec<u8> {
    serde_json::to_vec(&JwkSet { keys: keys.iter().map(|k| k.jwk().clone()).collect() }).unwrap()
}

/// A clock the test moves.
struct Clock(Mutex<Instant>);

impl Clock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Instant::now())))
    }
    fn advance(&self, seconds: u64) {
        *self.0.lock().unwrap() += Duration::from_secs(seconds);
    }
    fn now_fn(self: &Arc<Self>) -> Now {
        let me = self.clone();
        Arc::new(move || *me.0.lock().unwrap())
    }
}

async fn remote(url: &str, clock: &Arc<Clock>) -> RemoteJwks {
    let options = FetchOptions { min_refetch_interval: Duration::from_secs(10), ..FetchOptions::default() };
    remote_with(url, clock, options).await
}

async fn remote_with(url: &str, clock: &Arc<Clock>, options: FetchOptions) -> RemoteJwks {
    RemoteJwks::fetch_first(url, options, clock.now_fn()).await.unwrap()
}

fn verifier_of(remote: &Arc<RemoteJwks>) -> Verifier {
    Verifier::with_keys(Keys::Remote(remote.clone()), ISSUER.to_owned(), AUDIENCE.to_owned())
}

/// Fails the test if `future` takes longer than a generous bound: a step
/// that must not wait for the issuer (which here never answers) would
/// otherwise wait for the 60 s fetch timeout.
async fn promptly<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future).await.expect("answered without waiting for the issuer")
}

fn requests(script: &Arc<Mutex<Script>>) -> usize {
    script.lock().unwrap().requests
}

#[tokio::test]
async fn max_age_is_honoured() {
    let key = TestKey::es256();
    let script = Arc::new(Mutex::new(Script {
        jwks: jwks_of(&[&key]),
        cache_control: Some("public, max-age=60"),
        ..Script::default()
    }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let jwks = remote(&url, &clock).await;
    assert_eq!(requests(&script), 1);
    clock.advance(59);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 1, "still fresh at 59 s");
    clock.advance(2);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 2, "stale at 61 s: fetched again");
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 2, "fresh again");
}

#[tokio::test]
async fn without_max_age_the_default_applies_and_no_cache_is_bounded_by_the_interval() {
    let key = TestKey::es256();
    let script = Arc::new(Mutex::new(Script { jwks: jwks_of(&[&key]), ..Script::default() }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let jwks = remote(&url, &clock).await;
    clock.advance(299);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 1, "the default max-age is 300 s");

    script.lock().unwrap().cache_control = Some("no-cache");
    clock.advance(2);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 2);
    jwks.refresh_if_stale().await;
    clock.advance(5);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 2, "max-age 0, but not more than once per interval");
    clock.advance(5);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 3);
}

#[tokio::test]
async fn an_etag_is_revalidated_with_if_none_match() {
    let key = TestKey::es256();
    let script = Arc::new(Mutex::new(Script {
        jwks: jwks_of(&[&key]),
        cache_control: Some("max-age=60"),
        etag: Some("\"v1\""),
        ..Script::default()
    }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let jwks = remote(&url, &clock).await;
    clock.advance(61);
    jwks.refresh_if_stale().await;
    let seen = script.lock().unwrap().if_none_match.clone();
    assert_eq!(seen, vec![None, Some("\"v1\"".to_owned())]);
    assert_eq!(jwks.keys().keys.len(), 1, "a 304 keeps the keys");
    clock.advance(30);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 2, "the 304's max-age made the keys fresh again");
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_interval() {
    let old = TestKey::es256();
    let new = TestKey::es256();
    let script = Arc::new(Mutex::new(Script {
        jwks: jwks_of(&[&old]),
        cache_control: Some("max-age=3600"),
        ..Script::default()
    }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let verifier =
        Verifier::with_keys(Keys::Remote(Arc::new(remote(&url, &clock).await)), ISSUER.to_owned(), AUDIENCE.to_owned());
    let token = new.token(&good_claims());

    // Right after the first fetch: too soon to fetch again.
    assert_eq!(verifier.verify_async(&token).await, Err(VerifyError::UnknownKey(new.kid())));
    assert_eq!(requests(&script), 1);

    // The issuer rotates; after the interval the unknown kid triggers one fetch.
    script.lock().unwrap().jwks = jwks_of(&[&old, &new]);
    clock.advance(11);
    assert!(verifier.verify_async(&token).await.is_ok());
    assert_eq!(requests(&script), 2);

    // Made-up kids do not flood the issuer.
    let stranger = TestKey::es256().token(&good_claims());
    for _ in 0..20 {
        assert!(matches!(verifier.verify_async(&stranger).await, Err(VerifyError::UnknownKey(_))));
    }
    assert_eq!(requests(&script), 2);
    clock.advance(11);
    assert!(matches!(verifier.verify_async(&stranger).await, Err(VerifyError::UnknownKey(_))));
    assert_eq!(requests(&script), 3);
    // The sync path never fetches.
    clock.advance(11);
    assert!(matches!(verifier.verify(&stranger), Err(VerifyError::UnknownKey(_))));
    assert_eq!(requests(&script), 3);
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_keys() {
    let key = TestKey::ed25519();
    let script =
        Arc::new(Mutex::new(Script { jwks: jwks_of(&[&key]), cache_control: Some("max-age=1"), ..Script::default() }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let jwks = Arc::new(remote(&url, &clock).await);
    let verifier = verifier_of(&jwks);
    script.lock().unwrap().fail = true;
    clock.advance(20);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 2, "it tried");
    assert!(verifier.verify_async(&key.token(&good_claims())).await.is_ok());
    assert_eq!(requests(&script), 2, "a request with a cached kid never fetches");
}

/// Issue 13, item 1: while the issuer hangs, a token whose key is cached
/// is verified at once, stale keys or not, however many requests come.
#[tokio::test]
async fn a_hanging_issuer_never_holds_up_a_cached_kid() {
    let key = TestKey::es256();
    let script =
        Arc::new(Mutex::new(Script { jwks: jwks_of(&[&key]), cache_control: Some("max-age=1"), ..Script::default() }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let options = FetchOptions { timeout: Duration::from_secs(60), ..FetchOptions::default() };
    let jwks = Arc::new(remote_with(&url, &clock, options).await);
    let verifier = verifier_of(&jwks);
    script.lock().unwrap().hang = true;
    clock.advance(30);
    // The background refresh starts and hangs.
    let refresh = tokio::spawn({
        let jwks = jwks.clone();
        async move { jwks.refresh_if_stale().await }
    });
    promptly(async {
        while requests(&script) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let token = key.token(&good_claims());
    let checks: Vec<_> = (0..8)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify_async(&token).await })
        })
        .collect();
    for check in checks {
        assert!(promptly(check).await.unwrap().is_ok());
    }
    assert_eq!(requests(&script), 2, "no request started a fetch of its own");
    refresh.abort();
}

/// A token with an unknown kid waits for the fetch it starts only
/// `unknown_kid_wait`; the fetch goes on without it.
#[tokio::test]
async fn an_unknown_kid_waits_only_briefly_for_a_hanging_issuer() {
    let key = TestKey::es256();
    let script = Arc::new(Mutex::new(Script { jwks: jwks_of(&[&key]), ..Script::default() }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let options = FetchOptions {
        timeout: Duration::from_secs(60),
        unknown_kid_wait: Duration::from_millis(100),
        ..FetchOptions::default()
    };
    let jwks = Arc::new(remote_with(&url, &clock, options).await);
    let verifier = verifier_of(&jwks);
    script.lock().unwrap().hang = true;
    clock.advance(11);
    let stranger = TestKey::es256();
    let result = promptly(verifier.verify_async(&stranger.token(&good_claims()))).await;
    assert_eq!(result, Err(VerifyError::UnknownKey(stranger.kid())));
    assert!(promptly(verifier.verify_async(&key.token(&good_claims()))).await.is_ok(), "cached keys still serve");
}

/// Keys that could not be refreshed are used up to `max_stale` past their
/// max-age, then every token is refused with a clear error, until a
/// refresh succeeds.
#[tokio::test]
async fn stale_keys_are_refused_after_the_bound() {
    let key = TestKey::es256();
    let script =
        Arc::new(Mutex::new(Script { jwks: jwks_of(&[&key]), cache_control: Some("max-age=60"), ..Script::default() }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let options = FetchOptions { max_stale: Duration::from_secs(100), ..FetchOptions::default() };
    let jwks = Arc::new(remote_with(&url, &clock, options).await);
    let verifier = verifier_of(&jwks);
    let token = key.token(&good_claims());
    script.lock().unwrap().fail = true;
    clock.advance(61);
    jwks.refresh_if_stale().await;
    clock.advance(99);
    assert!(verifier.verify_async(&token).await.is_ok(), "stale, but within the bound");
    clock.advance(2);
    assert_eq!(verifier.verify_async(&token).await, Err(VerifyError::StaleKeys));
    assert_eq!(verifier.verify(&token), Err(VerifyError::StaleKeys), "the offline path too");
    assert!(VerifyError::StaleKeys.to_string().contains("could not be refreshed"));
    assert_eq!(VerifyError::StaleKeys.check(), "jwks");
    script.lock().unwrap().fail = false;
    clock.advance(600);
    jwks.refresh_if_stale().await;
    assert!(verifier.verify_async(&token).await.is_ok(), "a successful refresh makes them usable again");
}

/// After failures the background refresh backs off: the wait doubles from
/// the interval, up to `max_backoff`, and a success resets it.
#[tokio::test]
async fn failed_refreshes_back_off() {
    let key = TestKey::es256();
    let script =
        Arc::new(Mutex::new(Script { jwks: jwks_of(&[&key]), cache_control: Some("max-age=1"), ..Script::default() }));
    let url = serve(script.clone()).await;
    let clock = Clock::new();
    let options = FetchOptions { max_backoff: Duration::from_secs(40), ..FetchOptions::default() };
    let jwks = remote_with(&url, &clock, options).await;
    script.lock().unwrap().fail = true;
    let mut seen = vec![];
    // One look every 5 s for 150 s: attempts at 10, 20, 40, 80, 120 (capped).
    for step in 1..=30 {
        clock.advance(5);
        let before = requests(&script);
        jwks.refresh_if_stale().await;
        if requests(&script) > before {
            seen.push(step * 5);
        }
    }
    assert_eq!(seen, vec![10, 20, 40, 80, 120]);
    script.lock().unwrap().fail = false;
    clock.advance(40);
    jwks.refresh_if_stale().await;
    assert_eq!(requests(&script), 7, "retried after the capped backoff, and succeeded");
}

#[test]
fn plain_http_only_to_loopback() {
    for url in [
        "https://auth.example.com/.well-known/jwks.json",
        "http://127.0.0.1:8080/.well-known/jwks.json",
        "http://127.9.9.9/jwks",
        "http://[::1]:8080/jwks",
        "http://localhost:8080/jwks",
    ] {
        assert!(check_url(url).is_ok(), "{url}");
    }
    for url in [
        "http://auth.example.com/.well-known/jwks.json",
        "http://10.0.0.1/jwks",
        "http://localhost.example.com/jwks",
        "ftp://127.0.0.1/jwks",
        "not a url",
    ] {
        let error = check_url(url).unwrap_err();
        assert!(matches!(error, KeyLoadError::InsecureUrl(_)), "{url}: {error}");
        assert!(error.to_string().contains("https://"), "{error}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let key = TestKey::es256();
    let target = Arc::new(Mutex::new(Script { jwks: jwks_of(&[&key]), ..Script::default() }));
    let target_url = serve(target.clone()).await;
    let script = Arc::new(Mutex::new(Script { redirect: Some(target_url), ..Script::default() }));
    let url = serve(script.clone()).await;
    let error = Verifier::from_jwks_url(&url, ISSUER, AUDIENCE).await.unwrap_err();
    assert!(error.to_string().contains("redirects are not followed"), "{error}");
    assert_eq!(requests(&target), 0, "the redirect's target was never asked");
}

#[tokio::test]
async fn the_first_fetch_must_succeed() {
    let script = Arc::new(Mutex::new(Script { fail: true, ..Script::default() }));
    let url = serve(script.clone()).await;
    let error = Verifier::from_jwks_url(&url, ISSUER, AUDIENCE).await.unwrap_err();
    assert!(matches!(error, KeyLoadError::Fetch { .. }), "{error}");
    script.lock().unwrap().fail = false;
    script.lock().unwrap().jwks = serde_json::to_vec(&json!({"keys": []})).unwrap();
    assert!(matches!(Verifier::from_jwks_url(&url, ISSUER, AUDIENCE).await, Err(KeyLoadError::NoUsableKey)));
}

#[test]
fn cache_control_is_parsed() {
    let parse = |v: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, http::HeaderValue::from_static(v));
        max_age(&h)
    };
    assert_eq!(parse("public, max-age=300"), Some(Duration::from_secs(300)));
    assert_eq!(parse("Max-Age=7"), Some(Duration::from_secs(7)));
    assert_eq!(parse("no-store"), Some(Duration::ZERO));
    assert_eq!(parse("max-age=999999999"), Some(MAX_MAX_AGE));
    assert_eq!(parse("public"), None);
    assert_eq!(parse("max-age=abc"), None);
}
