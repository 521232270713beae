//! The issuer's JWKS URL as a key source: fetched over HTTP(S) (reqwest,
//! rustls with ring), kept as long as the response's `Cache-Control:
//! max-age` allows, revalidated with `If-None-Match` when the response had
//! an `ETag`, and fetched again early when a token names an unknown `kid`.
//!
//! Every fetch, whatever its reason, is at least
//! [`FetchOptions::min_refetch_interval`] after the previous one, so tokens
//! with made-up `kid`s cannot turn a resource server into a flood of
//! requests to the issuer. A failed fetch keeps the keys already held.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::header::{CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};

use super::{KeyLoadError, parse_jwks};
use crate::jwk::JwkSet;

/// A larger JWKS is refused: real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// However long the issuer says, keys are looked at again at least daily.
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How the JWKS URL is fetched and cached.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The least time between two fetches (default 10 s): the bound on
    /// refetches for unknown `kid`s and for a `max-age` of 0.
    pub min_refetch_interval: Duration,
    /// How long keys are kept when the response has no `max-age` (default
    /// 5 minutes).
    pub default_max_age: Duration,
    /// Timeout of one fetch, connection included (default 10 s).
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            min_refetch_interval: Duration::from_secs(10),
            default_max_age: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The clock of the cache; a parameter so tests move time by hand.
pub(crate) type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

/// What the cache holds.
#[derive(Debug, Clone)]
struct Cached {
    keys: Arc<JwkSet>,
    /// The `ETag` of the response the keys came from.
    etag: Option<http::HeaderValue>,
    /// Until when the keys may be used without asking again.
    fresh_until: Instant,
    /// When the last fetch was attempted, successful or not.
    last_attempt: Instant,
}

/// A JWKS URL with its cached keys.
pub(crate) struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    options: FetchOptions,
    now: Now,
    // A std lock is enough: it is held only to copy or replace `Cached`,
    // never across an await.
    cached: RwLock<Cached>,
    /// One fetch at a time; the others wait and then use its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks").field("url", &self.url).field("options", &self.options).finish_non_exhaustive()
    }
}

/// The outcome of one successful HTTP exchange.
enum Fetched {
    /// 200 with a key set.
    Keys { keys: JwkSet, etag: Option<http::HeaderValue>, max_age: Option<Duration> },
    /// 304: what we hold is still current.
    NotModified { max_age: Option<Duration> },
}

impl RemoteJwks {
    /// Fetches `url` once; fails if that fetch does.
    pub(crate) async fn fetch_first(url: &str, options: FetchOptions, now: Now) -> Result<Self, KeyLoadError> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| KeyLoadError::Fetch { url: url.to_owned(), reason: e.to_string() })?;
        let at = now();
        let Fetched::Keys { keys, etag, max_age } = fetch(&client, url, None).await? else {
            return Err(KeyLoadError::Fetch { url: url.to_owned(), reason: "304 to a request without a tag".into() });
        };
        let cached = Cached {
            keys: Arc::new(keys),
            etag,
            fresh_until: at + max_age.unwrap_or(options.default_max_age),
            last_attempt: at,
        };
        Ok(Self {
            url: url.to_owned(),
            client,
            options,
            now,
            cached: RwLock::new(cached),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Option<Cached> {
        self.cached.read().ok().map(|c| c.clone())
    }

    /// The keys held now.
    pub(crate) fn keys(&self) -> Arc<JwkSet> {
        self.snapshot().map(|c| c.keys).unwrap_or_default()
    }

    fn may_fetch(&self, cached: &Cached, now: Instant) -> bool {
        now >= cached.last_attempt + self.options.min_refetch_interval
    }

    /// Fetches again if the keys are past their `max-age` (and the last
    /// fetch is not too recent).
    pub(crate) async fn refresh_if_stale(&self) {
        let due = |c: &Cached, now: Instant| now >= c.fresh_until && self.may_fetch(c, now);
        if self.snapshot().is_some_and(|c| due(&c, (self.now)())) {
            self.fetch_if(due).await;
        }
    }

    /// Fetches again because a token named an unknown `kid`; returns
    /// whether a fetch happened (here or in a concurrent call) since the
    /// token was checked, so the caller knows whether to check it again.
    pub(crate) async fn refetch_for_unknown_kid(&self) -> bool {
        let Some(before) = self.snapshot() else { return false };
        if !self.may_fetch(&before, (self.now)()) {
            return false;
        }
        let seen = before.last_attempt;
        // A concurrent call may have fetched while we waited for the lock.
        self.fetch_if(|c, now| c.last_attempt == seen && self.may_fetch(c, now)).await;
        self.snapshot().is_some_and(|c| c.last_attempt != seen)
    }

    /// Under the fetch lock, fetches if `due` still says so.
    async fn fetch_if(&self, due: impl Fn(&Cached, Instant) -> bool) {
        let _guard = self.fetching.lock().await;
        let at = (self.now)();
        let Some(current) = self.snapshot() else { return };
        if !due(&current, at) {
            return;
        }
        let mut next = Cached { last_attempt: at, ..current.clone() };
        match fetch(&self.client, &self.url, current.etag.as_ref()).await {
            Ok(Fetched::Keys { keys, etag, max_age }) => {
                next.keys = Arc::new(keys);
                next.etag = etag;
                next.fresh_until = at + max_age.unwrap_or(self.options.default_max_age);
            }
            Ok(Fetched::NotModified { max_age }) => {
                next.fresh_until = at + max_age.unwrap_or(self.options.default_max_age);
            }
            // Keep the keys we have; the next attempt waits for the interval.
            Err(_) => {}
        }
        if let Ok(mut slot) = self.cached.write() {
            *slot = next;
        }
    }
}

/// One GET of the JWKS, with `If-None-Match` when we hold a tag.
async fn fetch(client: &reqwest::Client, url: &str, etag: Option<&http::HeaderValue>) -> Result<Fetched, KeyLoadError> {
    let failed = |reason: String| KeyLoadError::Fetch { url: url.to_owned(), reason };
    let mut request = client.get(url).header(http::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag.clone());
    }
    let mut response = request.send().await.map_err(|e| failed(e.to_string()))?;
    let max_age = max_age(response.headers());
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(Fetched::NotModified { max_age });
    }
    if status != reqwest::StatusCode::OK {
        return Err(failed(format!("HTTP status {status}")));
    }
    let etag = response.headers().get(ETAG).cloned();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(failed(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched::Keys { keys: parse_jwks(&body)?, etag, max_age })
}

/// The freshness lifetime `Cache-Control` gives, if any: `max-age=N`, or
/// zero for `no-cache`/`no-store`; capped at a day.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return Some(Duration::ZERO);
            }
            if let Some(seconds) = lower.strip_prefix("max-age=")
                && let Ok(seconds) = seconds.trim_matches('"').parse::<u64>()
            {
                found = Some(Duration::from_secs(seconds).min(MAX_MAX_AGE));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
