//! Decoded client records kept in memory, so the token endpoint's client
//! lookup is a hash-map read instead of a tree read and a JSON decode.
//!
//! Every client write goes through this store, so invalidation is exact:
//! a write removes the entry while holding the cache's write lock, and
//! bumps a version that a concurrent reader checks before caching what it
//! read from the tree, so a record read before a write is never cached
//! after it. Only clients that exist are cached (at most [`MAX_ENTRIES`]),
//! so unknown IDs cannot grow it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::store::StoreError;
use crate::store::records::ClientRecord;

/// Most clients kept decoded; beyond it lookups still work, uncached.
pub const MAX_ENTRIES: usize = 100_000;

/// The cache. A std lock is enough: it is held for a map operation, or for
/// one synchronous tree write, never across an await.
#[derive(Debug, Default)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, ClientRecord>>,
    /// Bumped by every write, under the write lock.
    version: AtomicU64,
}

impl ClientCache {
    /// The cached record, if any.
    pub fn get(&self, client_id: &str) -> Option<ClientRecord> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).get(client_id).cloned()
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

    /// Runs `write` (a tree write of this client) with readers held off,
    /// then forgets the cached record.
    ///
    /// # Errors
    /// Whatever `write` returns.
    pub fn write<T>(&self, client_id: &str, write: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.version.fetch_add(1, Ordering::AcqRel);
        let result = write();
        entries.remove(client_id);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::admin::ClientStatus;

    fn record(id: &str, status: ClientStatus) -> ClientRecord {
        ClientRecord {
            client_id: id.into(),
            name: "n".into(),
            secret_digest: [0; 32],
            secret_set_at: 0,
            secret_expires_at: None,
            previous_secret: None,
            scopes: vec![],
            refresh_tokens: true,
            status,
            created_at: 0,
        }
    }

    #[test]
    fn a_read_from_before_a_write_is_not_cached() {
        let cache = ClientCache::default();
        let seen = cache.version();
        // The reader read the active record from the tree; then a writer
        // revoked the client.
        cache.write("a", || Ok(())).unwrap();
        cache.fill(&record("a", ClientStatus::Active), seen);
        assert_eq!(cache.get("a"), None, "the stale record must not be cached");
    }

    #[test]
    fn writes_forget_the_entry() {
        let cache = ClientCache::default();
        cache.fill(&record("a", ClientStatus::Active), cache.version());
        assert!(cache.get("a").is_some());
        cache.write("a", || Ok(())).unwrap();
        assert_eq!(cache.get("a"), None);
    }
}
