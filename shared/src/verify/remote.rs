//! The issuer's JWKS URL as a key source: fetched over HTTPS (reqwest,
//! rustls with ring; plain HTTP only to a loopback address), never
//! following a redirect, kept as long as the response's `Cache-Control:
//! max-age` allows, revalidated with `If-None-Match` when the response had
//! an `ETag`.
//!
//! No request waits for the issuer while its key is cached: one background
//! task refreshes the keys when they go stale, backing off after failures,
//! and requests keep using the keys held meanwhile. Only a token whose
//! `kid` is unknown starts a fetch itself and waits for it, at most
//! [`FetchOptions::unknown_kid_wait`]. Keys that could not be refreshed
//! for [`FetchOptions::max_stale`] past their `max-age` are no longer used:
//! every token is refused with [`VerifyError::StaleKeys`] until a refresh
//! succeeds.
//!
//! Every fetch, whatever its reason, is at least
//! [`FetchOptions::min_refetch_interval`] after the previous attempt, so
//! tokens with made-up `kid`s cannot turn a resource server into a flood of
//! requests to the issuer. A failed fetch keeps the keys already held.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use http::header::{CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};

use super::{KeyLoadError, VerifyError, parse_jwks};
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
    /// How long a token with an unknown `kid` waits for the fetch it
    /// starts (default 2 s); the fetch itself goes on in the background.
    pub unknown_kid_wait: Duration,
    /// How long past their `max-age` keys that could not be refreshed are
    /// still used (default 24 h); after that every token is refused with
    /// [`VerifyError::StaleKeys`] until a refresh succeeds.
    pub max_stale: Duration,
    /// The longest wait between two attempts after failures (default 5
    /// minutes); the wait doubles from `min_refetch_interval` with each
    /// failure in a row.
    pub max_backoff: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            min_refetch_interval: Duration::from_secs(10),
            default_max_age: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            unknown_kid_wait: Duration::from_secs(2),
            max_stale: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(300),
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
    /// When the last fetch was started, successful or not.
    last_attempt: Instant,
    /// Failed attempts since the last success, for the backoff.
    failures: u32,
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
    /// One fetch at a time. Only fetches wait for it, never a request whose
    /// key is cached.
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

/// Refuses a JWKS URL that is not `https://`, unless it points at this
/// machine (`http://127.0.0.1`, `http://[::1]`, `http://localhost`).
///
/// # Errors
/// [`KeyLoadError::InsecureUrl`] for anything else.
pub(crate) fn check_url(url: &str) -> Result<(), KeyLoadError> {
    let insecure = || KeyLoadError::InsecureUrl(url.to_owned());
    let parsed = reqwest::Url::parse(url).map_err(|_| insecure())?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback { Ok(()) } else { Err(insecure()) }
        }
        _ => Err(insecure()),
    }
}

impl RemoteJwks {
    /// Fetches `url` once; fails if that fetch does.
    pub(crate) async fn fetch_first(url: &str, options: FetchOptions, now: Now) -> Result<Self, KeyLoadError> {
        check_url(url)?;
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            // A redirect could take the fetch to a server the operator never named.
            .redirect(reqwest::redirect::Policy::none())
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
            failures: 0,
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

    /// The keys held now, stale or not.
    pub(crate) fn keys(&self) -> Arc<JwkSet> {
        self.snapshot().map(|c| c.keys).unwrap_or_default()
    }

    /// The keys held now, unless they are past their `max-age` by more than
    /// [`FetchOptions::max_stale`].
    ///
    /// # Errors
    /// [`VerifyError::StaleKeys`] then.
    pub(crate) fn usable_keys(&self) -> Result<Arc<JwkSet>, VerifyError> {
        let cached = self.snapshot().ok_or(VerifyError::StaleKeys)?;
        if (self.now)() > cached.fresh_until + self.options.max_stale {
            return Err(VerifyError::StaleKeys);
        }
        Ok(cached.keys)
    }

    fn may_fetch(&self, cached: &Cached, now: Instant) -> bool {
        now >= cached.last_attempt + self.options.min_refetch_interval
    }

    /// When the background task should fetch next: when the keys go stale,
    /// but not before the interval after the last attempt, which doubles
    /// with each failure in a row up to [`FetchOptions::max_backoff`].
    fn next_due(&self, cached: &Cached) -> Instant {
        let interval = self.options.min_refetch_interval;
        if cached.failures == 0 {
            return cached.fresh_until.max(cached.last_attempt + interval);
        }
        let doublings = cached.failures.saturating_sub(1).min(16);
        let backoff = interval.saturating_mul(1 << doublings).min(self.options.max_backoff).max(interval);
        cached.last_attempt + backoff
    }

    /// Fetches again if the keys are past their `max-age` and the last
    /// attempt is far enough back (see [`RemoteJwks::next_due`]). The
    /// background task calls it; requests never do.
    pub(crate) async fn refresh_if_stale(&self) {
        let due = |c: &Cached, now: Instant| now >= c.fresh_until && now >= self.next_due(c);
        if self.snapshot().is_some_and(|c| due(&c, (self.now)())) {
            self.fetch_if(due).await;
        }
    }

    /// Fetches again because a token named an unknown `kid`, waiting for it
    /// at most [`FetchOptions::unknown_kid_wait`]; returns whether the keys
    /// changed meanwhile (here or through a concurrent fetch), so the
    /// caller knows whether to check the token again.
    pub(crate) async fn refetch_for_unknown_kid(self: &Arc<Self>) -> bool {
        let Some(before) = self.snapshot() else { return false };
        if !self.may_fetch(&before, (self.now)()) {
            return false;
        }
        let seen = before.last_attempt;
        let me = self.clone();
        // The fetch runs on as a task of its own: a slow issuer delays this
        // one token by `unknown_kid_wait` at most, and the keys it brings
        // serve the next requests.
        let fetch = tokio::spawn(async move {
            me.fetch_if(|c, now| c.last_attempt == seen && me.may_fetch(c, now)).await;
        });
        let _ = tokio::time::timeout(self.options.unknown_kid_wait, fetch).await;
        self.snapshot().is_some_and(|after| !Arc::ptr_eq(&after.keys, &before.keys))
    }

    /// Under the fetch lock, fetches if `due` still says so. The attempt is
    /// recorded before the request goes out, so no one starts another
    /// while it runs.
    async fn fetch_if(&self, due: impl Fn(&Cached, Instant) -> bool) {
        let _guard = self.fetching.lock().await;
        let at = (self.now)();
        let Some(current) = self.snapshot() else { return };
        if !due(&current, at) {
            return;
        }
        self.store(Cached { last_attempt: at, ..current.clone() });
        let result = fetch(&self.client, &self.url, current.etag.as_ref()).await;
        let Some(mut next) = self.snapshot() else { return };
        match result {
            Ok(Fetched::Keys { keys, etag, max_age }) => {
                next.keys = Arc::new(keys);
                next.etag = etag;
                next.fresh_until = at + max_age.unwrap_or(self.options.default_max_age);
                next.failures = 0;
            }
            Ok(Fetched::NotModified { max_age }) => {
                next.fresh_until = at + max_age.unwrap_or(self.options.default_max_age);
                next.failures = 0;
            }
            // Keep the keys we have; the next attempt waits for the backoff.
            Err(_) => next.failures = next.failures.saturating_add(1),
        }
        self.store(next);
    }

    fn store(&self, cached: Cached) {
        if let Ok(mut slot) = self.cached.write() {
            *slot = cached;
        }
    }

    /// How long the background task sleeps before its next look.
    fn until_due(&self) -> Duration {
        let Some(cached) = self.snapshot() else { return self.options.min_refetch_interval };
        self.next_due(&cached).saturating_duration_since((self.now)())
    }
}

/// The background refresher of one [`RemoteJwks`]: sleeps until the keys
/// are due, refreshes them, and so on. It holds the cache only weakly and
/// ends once the last verifier sharing it is dropped.
pub(crate) async fn refresh_in_background(remote: Weak<RemoteJwks>) {
    loop {
        let wait = match remote.upgrade() {
            // At least a second between looks, whatever the clock says.
            Some(remote) => remote.until_due().max(Duration::from_secs(1)),
            None => return,
        };
        tokio::time::sleep(wait).await;
        match remote.upgrade() {
            Some(remote) => remote.refresh_if_stale().await,
            None => return,
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
    if status.is_redirection() {
        return Err(failed(format!("HTTP status {status}: redirects are not followed; give the JWKS URL itself")));
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
