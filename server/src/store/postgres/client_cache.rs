//! The per-instance cache of client records, so that a token request does
//! not read its client over the network.
//!
//! Correctness rests on three rules:
//! - **Invalidation by notification.** Every change of a `clients` row
//!   notifies (a trigger, in the changing transaction; see
//!   [`super::schema`]); the listener ([`super::listen`]) drops the entry.
//! - **Serve only while listening.** Entries are served only while the
//!   listener is connected and its last heartbeat, sent less than
//!   [`FRESH_FOR`] ago, was answered; otherwise every lookup reads through
//!   and nothing is cached. A (re)connected listener empties the cache
//!   before serving again, so what changed while it was down is re-read.
//! - **No stale fill.** A lookup that missed takes a [`Ticket`]; its answer
//!   from the database is cached only if no invalidation happened since
//!   (the generation is unchanged), so a read racing a change can never
//!   put the old record back after the notification removed it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::records::ClientRecord;

/// How long an answered heartbeat keeps the cache serving: a listener
/// that silently stopped hearing notifications (a network partition
/// without a reset) stops the cache within this time.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Clients held at most; past it an arbitrary entry makes room.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The cache. A std mutex is enough: it is held only for a map operation,
/// never across an await.
#[derive(Debug)]
pub struct ClientCache {
    state: Mutex<State>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, ClientRecord>,
    /// Bumped by every invalidation.
    generation: u64,
    /// Until when entries may be served; `None` while the listener is down.
    serve_until: Option<Instant>,
}

/// What a lookup found.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned by value and unpacked at once; boxing the record would add an allocation per token request"
)]
pub enum Lookup {
    /// Served from the cache.
    Hit(ClientRecord),
    /// Read the database, then hand the answer to [`ClientCache::fill`]
    /// with this ticket.
    Miss(Ticket),
}

/// Proof of when a missed lookup started (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

impl ClientCache {
    /// An empty cache that serves nothing until [`ClientCache::resume`].
    pub fn new(capacity: usize) -> Self {
        Self { state: Mutex::new(State::default()), capacity: capacity.max(1) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-changed
        // in a way that matters: at worst an entry is missing.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Looks `client_id` up.
    pub fn get(&self, client_id: &str) -> Lookup {
        let state = self.state();
        match state.serve_until {
            Some(until) if Instant::now() < until => match state.entries.get(client_id) {
                Some(record) => Lookup::Hit(record.clone()),
                None => Lookup::Miss(Ticket(Some(state.generation))),
            },
            // Not serving: read through, and cache nothing.
            _ => Lookup::Miss(Ticket(None)),
        }
    }

    /// Caches what the database answered for a missed lookup, unless
    /// something was invalidated since it started. Unknown clients are not
    /// cached (a flood of made-up IDs would only evict real ones).
    pub fn fill(&self, ticket: Ticket, record: &ClientRecord) {
        let mut state = self.state();
        if ticket.0.is_none() || ticket.0 != Some(state.generation) || state.serve_until.is_none() {
            return;
        }
        if state.entries.len() >= self.capacity
            && !state.entries.contains_key(&record.client_id)
            && let Some(victim) = state.entries.keys().next().cloned()
        {
            state.entries.remove(&victim);
        }
        state.entries.insert(record.client_id.clone(), record.clone());
    }

    /// Drops one client (it changed).
    pub fn invalidate(&self, client_id: &str) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.remove(client_id);
    }

    /// Drops every client.
    pub fn invalidate_all(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
    }

    /// The listener is down: serve nothing until it is back.
    pub fn suspend(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
        state.serve_until = None;
    }

    /// The listener is (again) listening, as of `listening_since`: start
    /// empty, and serve until [`FRESH_FOR`] after it.
    pub fn resume(&self, listening_since: Instant) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
        state.serve_until = Some(listening_since + FRESH_FOR);
    }

    /// A heartbeat sent at `sent` was answered: the listener heard every
    /// notification committed before then.
    pub fn heard_at(&self, sent: Instant) {
        let mut state = self.state();
        if let Some(until) = state.serve_until.as_mut() {
            *until = (*until).max(sent + FRESH_FOR);
        }
    }

    /// Entries held (for tests and gauges).
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> ClientRecord {
        ClientRecord { name: name.into(), ..crate::store::conformance::client(id) }
    }

    fn ticket(cache: &ClientCache, id: &str) -> Ticket {
        match cache.get(id) {
            Lookup::Miss(ticket) => ticket,
            Lookup::Hit(record) => panic!("unexpected hit {record:?}"),
        }
    }

    fn hit(cache: &ClientCache, id: &str) -> Option<String> {
        match cache.get(id) {
            Lookup::Hit(record) => Some(record.name),
            Lookup::Miss(_) => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn serves_only_while_the_listener_is_heard() {
        let cache = ClientCache::new(8);
        // Before the listener is up nothing is cached.
        let t = ticket(&cache, "a");
        cache.fill(t, &record("a", "one"));
        assert_eq!(hit(&cache, "a"), None);

        cache.resume(Instant::now());
        let t = ticket(&cache, "a");
        cache.fill(t, &record("a", "one"));
        assert_eq!(hit(&cache, "a").as_deref(), Some("one"));

        // No heartbeat answered for FRESH_FOR: read through.
        tokio::time::advance(FRESH_FOR).await;
        assert_eq!(hit(&cache, "a"), None);
        cache.heard_at(Instant::now());
        assert_eq!(hit(&cache, "a").as_deref(), Some("one"));

        // Down, then back: everything is re-read.
        cache.suspend();
        assert_eq!(hit(&cache, "a"), None);
        cache.heard_at(Instant::now());
        assert_eq!(hit(&cache, "a"), None, "a heartbeat does not revive a suspended cache");
        cache.resume(Instant::now());
        assert_eq!(hit(&cache, "a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_racing_an_invalidation_is_not_cached() {
        let cache = ClientCache::new(8);
        cache.resume(Instant::now());
        let before_change = ticket(&cache, "a");
        // The change commits and its notification arrives before the
        // racing read hands in what it read (the old record).
        cache.invalidate("a");
        cache.fill(before_change, &record("a", "old"));
        assert_eq!(hit(&cache, "a"), None);
        let after = ticket(&cache, "a");
        cache.fill(after, &record("a", "new"));
        assert_eq!(hit(&cache, "a").as_deref(), Some("new"));

        // A suspension in between also voids a ticket.
        cache.invalidate_all();
        let t = ticket(&cache, "a");
        cache.suspend();
        cache.resume(Instant::now());
        cache.fill(t, &record("a", "old"));
        assert_eq!(hit(&cache, "a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn stays_within_its_capacity() {
        let cache = ClientCache::new(3);
        cache.resume(Instant::now());
        for n in 0..10 {
            let id = format!("c{n}");
            let t = ticket(&cache, &id);
            cache.fill(t, &record(&id, "x"));
            assert!(cache.len() <= 3);
        }
        assert_eq!(hit(&cache, "c9").as_deref(), Some("x"), "the newest entry is held");
    }
}
