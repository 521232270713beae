//! Decoded client records kept in memory, so the token endpoint's client
//! lookup is a hash-map read instead of a tree read and a JSON decode.
//!
//! Every client write goes through this store, so invalidation is exact:
//! once a write is committed, it removes the entry under the cache's write
//! lock and bumps a version that a concurrent reader checks before caching
//! what it read from the tree, so a record read before a write is never
//! cached after it. Only clients that exist are cached (at most [`MAX_ENTRIES`]),
//! so unknown IDs cannot grow it.
//!
//! Opened on a database with at most [`MAX_ENTRIES`] clients, the cache
//! holds every client ([`ClientCache::complete`]) and writes put the new
//! record in place instead of forgetting it. A lookup is then answered from
//! memory whether the client exists or not, with the same work (one hash
//! lookup and one record clone, of a decoy when absent): an unknown client
//! ID is not told apart by the time a tree read takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::store::records::ClientRecord;

/// Most clients kept decoded; beyond it lookups still work, uncached.
pub const MAX_ENTRIES: usize = 100_000;

/// The cache. A std lock is enough: it is held for a map operation, never
/// across an await.
#[derive(Debug)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, ClientRecord>>,
    /// Bumped by every write, under the write lock.
    version: AtomicU64,
    /// Whether `entries` holds every client, so a miss means "no such client".
    complete: AtomicBool,
    /// Cloned on a miss of a complete cache, so a miss costs what a hit does.
    decoy: ClientRecord,
}

impl Default for ClientCache {
    fn default() -> Self {
        Self {
            entries: RwLock::default(),
            version: AtomicU64::new(0),
            complete: AtomicBool::new(false),
            // Shaped like a real client (ID, name, a scope) so cloning it
            // costs about what cloning one does.
            decoy: ClientRecord {
                client_id: format!("oa2-client-id_{}", "-".repeat(32)),
                name: "decoy client record".into(),
                secret_digest: [0; 32],
                secret_set_at: 0,
                secret_expires_at: None,
                access_token_ttl: None,
                audiences: Vec::new(),
                require_dpop: false,
                public_keys: Vec::new(),
                previous_secret: None,
                scopes: vec!["decoy".into()],
                refresh_tokens: true,
                status: tessera_shared::admin::ClientStatus::Revoked,
                created_at: 0,
                family_epoch: 0,
            },
        }
    }
}

/// What the cache knows of a client ID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned by value and unpacked at once; boxing the record would add an allocation per token request"
)]
pub enum Lookup {
    /// The client's record.
    Hit(ClientRecord),
    /// The cache is complete and holds no such client: it does not exist.
    Absent,
    /// Not cached: read the tree.
    Unknown,
}

impl ClientCache {
    /// A cache holding all of `clients` (every client of the database),
    /// complete unless there are more than [`MAX_ENTRIES`].
    pub fn complete(clients: Vec<ClientRecord>) -> Self {
        if clients.len() > MAX_ENTRIES {
            return Self::default();
        }
        let entries = clients.into_iter().map(|c| (c.client_id.clone(), c)).collect();
        Self { entries: RwLock::new(entries), complete: AtomicBool::new(true), ..Self::default() }
    }

    /// Whether the cache holds every client.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Looks `client_id` up; a complete cache answers misses too, with the
    /// same work as a hit.
    pub fn lookup(&self, client_id: &str) -> Lookup {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let found = entries.get(client_id);
        let record = found.unwrap_or(&self.decoy).clone();
        match (found.is_some(), self.is_complete()) {
            (true, _) => Lookup::Hit(record),
            (false, true) => Lookup::Absent,
            (false, false) => Lookup::Unknown,
        }
    }

    /// The version to pass to [`ClientCache::fill`]; read it before reading the tree.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Caches `record`, read from the tree after [`ClientCache::version`]
    /// returned `seen`, unless a write happened since.
    pub fn fill(&self, record: &ClientRecord, seen: u64) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.version.load(Ordering::Acquire) == seen && entries.len() < MAX_ENTRIES {
            entries.insert(record.client_id.clone(), record.clone());
        }
    }

    /// Records that the trees now hold `stored` for `client_id` (`None`:
    /// no client): forgets the cached record, or, in a complete cache, puts
    /// `stored` in its place. Called in commit order, once the commit is
    /// visible to reads ([`super::journal::Journal::commit_and_publish`]),
    /// so a reader that read the tree before it either fails the version
    /// check in [`ClientCache::fill`] or has its entry replaced here.
    pub fn published(&self, client_id: &str, stored: Option<&ClientRecord>) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.version.fetch_add(1, Ordering::AcqRel);
        entries.remove(client_id);
        if let Some(record) = stored.filter(|_| self.is_complete()) {
            if entries.len() < MAX_ENTRIES {
                entries.insert(client_id.to_owned(), record.clone());
            } else {
                self.complete.store(false, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::admin::ClientStatus;

    fn record(id: &str, status: ClientStatus) -> ClientRecord {
        ClientRecord { status, ..crate::store::conformance::client(id) }
    }

    #[test]
    fn a_read_from_before_a_write_is_not_cached() {
        let cache = ClientCache::default();
        let seen = cache.version();
        // The reader read the active record from the tree; then a writer
        // revoked the client.
        cache.published("a", None);
        cache.fill(&record("a", ClientStatus::Active), seen);
        assert_eq!(cache.lookup("a"), Lookup::Unknown, "the stale record must not be cached");
    }

    #[test]
    fn writes_forget_the_entry() {
        let cache = ClientCache::default();
        cache.fill(&record("a", ClientStatus::Active), cache.version());
        assert!(matches!(cache.lookup("a"), Lookup::Hit(_)));
        cache.published("a", Some(&record("a", ClientStatus::Revoked)));
        assert_eq!(cache.lookup("a"), Lookup::Unknown);
    }

    /// Issue 13, item 7: a complete cache answers an unknown ID from memory
    /// as it answers a known one (no tree read for either), and stays
    /// complete through inserts, updates and deletions.
    #[test]
    fn a_complete_cache_answers_known_and_unknown_ids_alike() {
        let cache = ClientCache::complete(vec![record("a", ClientStatus::Active)]);
        assert!(cache.is_complete());
        assert_eq!(cache.lookup("a"), Lookup::Hit(record("a", ClientStatus::Active)));
        assert_eq!(cache.lookup("nobody"), Lookup::Absent, "no tree read for an unknown ID");
        cache.published("b", Some(&record("b", ClientStatus::Active)));
        assert_eq!(cache.lookup("b"), Lookup::Hit(record("b", ClientStatus::Active)), "an insert is in place");
        cache.published("a", Some(&record("a", ClientStatus::Revoked)));
        assert_eq!(cache.lookup("a"), Lookup::Hit(record("a", ClientStatus::Revoked)), "an update is in place");
        cache.published("a", None);
        assert_eq!(cache.lookup("a"), Lookup::Absent, "a deletion is gone");
        assert_eq!(ClientCache::default().lookup("a"), Lookup::Unknown, "an incomplete cache reads the tree");
    }
}
