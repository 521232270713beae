//! Rate limiting of failed client authentications: token buckets per source
//! address and per client ID, in bounded memory.
//!
//! Only *failures* (`invalid_client`) take tokens; a client that
//! authenticates correctly never spends any. While a bucket is empty, token
//! requests it covers are answered 429 with `Retry-After` before the secret
//! is even looked at.
//!
//! # Why two keys, and how the client-ID bucket spares the holder
//!
//! - The **address** bucket stops one source guessing (against any number
//!   of client IDs). It never touches other addresses, so the legitimate
//!   holder of an attacked client ID, on its own address, keeps getting
//!   tokens. IPv6 addresses are keyed by their /64, the unit one host gets.
//!   One address can be a whole NAT or /64 shared with others, so an empty
//!   address bucket, too, spares the clients that authenticated
//!   successfully from that address recently (its *trusted sources*,
//!   below): a few bad requests from a neighbour cannot lock them out.
//! - The **client-ID** bucket stops many addresses guessing one client's
//!   secret together (each address staying under its own limit). Applied
//!   to everyone, it would let any attacker lock the holder out just by
//!   failing often enough. So while it is empty it refuses only addresses
//!   that have *not* authenticated successfully as that client recently: a
//!   success from an address makes it a *trusted source* of the client
//!   (for [`TRUST_TTL`]). Trust cannot be earned without the secret, so the
//!   attacker gains nothing; the holder, already known from earlier
//!   requests, is not locked out. A holder appearing on a brand-new address
//!   in the middle of a distributed attack waits like everyone else.
//!
//! Secrets carry 240 random bits, so online guessing cannot succeed anyway;
//! the limiter keeps floods of failures from costing CPU (every failure
//! computes an HMAC), log volume and storage reads, and makes abuse visible:
//! each time a bucket runs dry a security event is raised through
//! [`SecurityEvents`] (logged as `event="auth_failure_burst"`).
//!
//! Memory: each table holds at most `max_tracked` keys. When one is full,
//! entries whose bucket has refilled (as good as absent) are dropped first;
//! if that frees less than a quarter, the least recently seen quarter goes.
//! An evicted key starts again with a full bucket, which is the worst an
//! attacker who floods the table can achieve.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// How long a successful authentication makes its address a trusted source
/// of the client.
pub const TRUST_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the limiter says of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead and authenticate.
    Allowed,
    /// Refuse with 429.
    Limited {
        /// Which bucket is empty.
        scope: Scope,
        /// When it holds a token again.
        retry_after: Duration,
    },
}

/// Which bucket a decision or event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The source address (an IPv6 /64).
    Address,
    /// The client ID.
    ClientId,
}

impl Scope {
    /// As logged and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::ClientId => "client_id",
        }
    }
}

/// A bucket ran dry: many failed authentications in a short time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstEvent {
    /// Which bucket.
    pub scope: Scope,
    /// The source address of the failure that emptied it.
    pub address: IpAddr,
    /// The client ID it named, if well-formed.
    pub client_id: Option<String>,
    /// How long requests it covers are refused, at least.
    pub retry_after: Duration,
}

/// Where security events go. The default logs them; an audit trail can
/// implement this and be handed to [`AuthLimiter::with_events`].
pub trait SecurityEvents: Send + Sync + std::fmt::Debug {
    /// A bucket ran dry.
    fn auth_failure_burst(&self, event: &BurstEvent);
}

/// Logs security events as `WARN` lines with `event="auth_failure_burst"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSecurityEvents;

impl SecurityEvents for LogSecurityEvents {
    fn auth_failure_burst(&self, event: &BurstEvent) {
        tracing::warn!(
            target: "tessera::security",
            event = "auth_failure_burst",
            scope = event.scope.as_str(),
            address = %event.address,
            client_id = event.client_id.as_deref(),
            retry_after_s = event.retry_after.as_secs_f64().ceil() as u64,
            "too many failed client authentications; limiting"
        );
    }
}

/// A bucket's size and refill speed.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: f64,
    per_second: f64,
}

impl Rate {
    fn new(burst: u32, per_minute: u32) -> Self {
        Self { burst: f64::from(burst.max(1)), per_second: f64::from(per_minute.max(1)) / 60.0 }
    }
}

/// A token bucket, refilled lazily when looked at.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self { tokens: rate.burst, updated: now }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = self.updated.max(now);
    }

    fn is_empty(&self) -> bool {
        self.tokens < 1.0
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut copy = *self;
        copy.refill(rate, now);
        copy.tokens >= rate.burst
    }

    /// Time until the bucket holds one token again.
    fn retry_after(&self, rate: Rate) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / rate.per_second)
    }
}

/// A map with a cap; see the module docs for what goes when it is full.
#[derive(Debug)]
struct Table<K, V> {
    entries: HashMap<K, V>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    fn new(cap: usize) -> Self {
        Self { entries: HashMap::new(), cap: cap.max(4) }
    }

    /// The entry for `key`, made room for and created with `make` if absent.
    fn entry(
        &mut self,
        key: &K,
        make: impl FnOnce() -> V,
        idle: impl Fn(&V) -> bool,
        seen: impl Fn(&V) -> Instant,
    ) -> &mut V {
        if !self.entries.contains_key(key) && self.entries.len() >= self.cap {
            self.make_room(idle, seen);
        }
        self.entries.entry(key.clone()).or_insert_with(make)
    }

    fn make_room(&mut self, idle: impl Fn(&V) -> bool, seen: impl Fn(&V) -> Instant) {
        let before = self.entries.len();
        self.entries.retain(|_, v| !idle(v));
        if before - self.entries.len() >= self.cap / 4 {
            return;
        }
        // Evict the least recently seen quarter; O(n) once per cap/4 inserts.
        let mut ages: Vec<(Instant, K)> = self.entries.iter().map(|(k, v)| (seen(v), k.clone())).collect();
        let evict = (self.cap / 4).min(ages.len());
        if evict == 0 {
            return;
        }
        ages.select_nth_unstable_by_key(evict - 1, |(at, _)| *at);
        for (_, key) in ages.into_iter().take(evict) {
            self.entries.remove(&key);
        }
    }
}

/// The source-address key: IPv4 as is (mapped IPv6 too), IPv6 by /64.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The limiter. Shared by all connections; each table has its own lock,
/// held for a lookup and a little arithmetic only (a std mutex suffices:
/// nothing is awaited under it).
#[derive(Debug)]
pub struct AuthLimiter {
    enabled: bool,
    address_rate: Rate,
    client_rate: Rate,
    addresses: Mutex<Table<IpAddr, Bucket>>,
    clients: Mutex<Table<String, Bucket>>,
    /// (client ID, address) → last successful authentication.
    trusted: Mutex<Table<(String, IpAddr), Instant>>,
    events: Arc<dyn SecurityEvents>,
}

impl AuthLimiter {
    /// A limiter that logs its security events.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            enabled: config.enabled,
            address_rate: Rate::new(config.address_burst, config.address_per_minute),
            client_rate: Rate::new(config.client_burst, config.client_per_minute),
            addresses: Mutex::new(Table::new(config.max_tracked)),
            clients: Mutex::new(Table::new(config.max_tracked)),
            trusted: Mutex::new(Table::new(config.max_tracked)),
            events: Arc::new(LogSecurityEvents),
        }
    }

    /// Sends security events to `events` instead of the log.
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn SecurityEvents>) -> Self {
        self.events = events;
        self
    }

    /// Whether a token request from `address` for `client_id` (if
    /// well-formed) may try to authenticate.
    pub fn check(&self, address: IpAddr, client_id: Option<&str>, now: Instant) -> Admission {
        if !self.enabled {
            return Admission::Allowed;
        }
        let address = address_key(address);
        let address_dry = {
            let mut table = self.addresses.lock().unwrap_or_else(PoisonError::into_inner);
            table.entries.get_mut(&address).and_then(|bucket| {
                bucket.refill(self.address_rate, now);
                bucket.is_empty().then(|| bucket.retry_after(self.address_rate))
            })
        };
        if let Some(retry_after) = address_dry {
            // A shared address (NAT, /64) does not lock out a client that
            // authenticated from it recently.
            let trusted = client_id.is_some_and(|id| self.is_trusted(id, address, now));
            if !trusted {
                return Admission::Limited { scope: Scope::Address, retry_after };
            }
        }
        let Some(client_id) = client_id else { return Admission::Allowed };
        let retry_after = {
            let mut table = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            match table.entries.get_mut(client_id) {
                Some(bucket) => {
                    bucket.refill(self.client_rate, now);
                    if !bucket.is_empty() {
                        return Admission::Allowed;
                    }
                    bucket.retry_after(self.client_rate)
                }
                None => return Admission::Allowed,
            }
        };
        if self.is_trusted(client_id, address, now) {
            Admission::Allowed
        } else {
            Admission::Limited { scope: Scope::ClientId, retry_after }
        }
    }

    /// Records a failed authentication; raises a [`BurstEvent`] for each
    /// bucket this empties.
    pub fn failure(&self, address: IpAddr, client_id: Option<&str>, now: Instant) {
        if !self.enabled {
            return;
        }
        let key = address_key(address);
        let mut events = Vec::new();
        {
            let rate = self.address_rate;
            let mut table = self.addresses.lock().unwrap_or_else(PoisonError::into_inner);
            let bucket = table.entry(&key, || Bucket::full(rate, now), |b| b.is_full(rate, now), |b| b.updated);
            if let Some(retry_after) = take(bucket, rate, now) {
                events.push(BurstEvent {
                    scope: Scope::Address,
                    address,
                    client_id: client_id.map(str::to_owned),
                    retry_after,
                });
            }
        }
        if let Some(client_id) = client_id {
            let rate = self.client_rate;
            let mut table = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let owned = client_id.to_owned();
            let bucket = table.entry(&owned, || Bucket::full(rate, now), |b| b.is_full(rate, now), |b| b.updated);
            if let Some(retry_after) = take(bucket, rate, now) {
                events.push(BurstEvent { scope: Scope::ClientId, address, client_id: Some(owned), retry_after });
            }
        }
        for event in &events {
            self.events.auth_failure_burst(event);
        }
    }

    /// Records a successful authentication: `address` becomes a trusted
    /// source of `client_id`.
    pub fn success(&self, address: IpAddr, client_id: &str, now: Instant) {
        if !self.enabled {
            return;
        }
        let key = (client_id.to_owned(), address_key(address));
        let mut table = self.trusted.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = |at: &Instant| now.saturating_duration_since(*at) > TRUST_TTL;
        *table.entry(&key, || now, expired, |at| *at) = now;
    }

    fn is_trusted(&self, client_id: &str, address: IpAddr, now: Instant) -> bool {
        let table = self.trusted.lock().unwrap_or_else(PoisonError::into_inner);
        table
            .entries
            .get(&(client_id.to_owned(), address))
            .is_some_and(|at| now.saturating_duration_since(*at) <= TRUST_TTL)
    }
}

/// Takes one token; returns the wait if this emptied the bucket (the start
/// of a burst, reported once, not for every later failure).
fn take(bucket: &mut Bucket, rate: Rate, now: Instant) -> Option<Duration> {
    bucket.refill(rate, now);
    let was_empty = bucket.is_empty();
    bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    (!was_empty && bucket.is_empty()).then(|| bucket.retry_after(rate))
}

#[cfg(test)]
mod tests;
