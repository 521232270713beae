//! The `jti` replay cache of RFC 9449 §11.1: a proof is accepted once while
//! its `iat` is within the window, and the cache forgets it afterwards.
//!
//! Bounded: at most `capacity` proofs are remembered; when that many are
//! still within their window, new proofs are refused ([`DpopError::ReplayCacheFull`])
//! rather than forgetting one that could still be replayed (fails closed).
//! Memory follows the proofs of the last window, not all proofs ever seen:
//! expired entries are swept at least once per window and whenever the
//! cache is full.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{DpopError, Proof};

/// Remembered proofs. A std mutex is enough: it is held for a hash-map
/// lookup and insert, never across an await.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    window: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Digest of (key thumbprint, jti) → the last second the proof could
    /// still be accepted.
    seen: HashMap<[u8; 32], u64>,
    /// When expired entries were last swept.
    last_sweep: u64,
}

impl ReplayCache {
    /// A cache for at most `capacity` proofs whose `iat` may be `window`
    /// seconds from now.
    pub fn new(capacity: usize, window: u64) -> Self {
        Self { capacity, window, inner: Mutex::new(Inner::default()) }
    }

    /// How many proofs are remembered now.
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers `proof`, unless a proof with the same key and `jti` was
    /// seen within its window.
    ///
    /// # Errors
    /// [`DpopError::Replayed`] for a proof seen before,
    /// [`DpopError::ReplayCacheFull`] if `capacity` proofs are still live.
    pub fn remember(&self, proof: &Proof, now: u64) -> Result<(), DpopError> {
        let key = key_of(proof);
        let until = proof.iat.max(now).saturating_add(self.window);
        let mut inner = self.lock();
        if inner.seen.get(&key).is_some_and(|end| *end >= now) {
            return Err(DpopError::Replayed);
        }
        if now >= inner.last_sweep.saturating_add(self.window) || inner.seen.len() >= self.capacity {
            inner.seen.retain(|_, end| *end >= now);
            inner.last_sweep = now;
        }
        if inner.seen.len() >= self.capacity {
            return Err(DpopError::ReplayCacheFull);
        }
        inner.seen.insert(key, until);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (each operation is one map call), so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Fixed-size key: a `jti` of any length costs 32 bytes, and proofs of
/// different keys never collide.
fn key_of(proof: &Proof) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&proof.thumbprint);
    context.update(proof.jti.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(jti: &str, iat: u64) -> Proof {
        Proof { thumbprint: [7; 32], jti: jti.into(), iat }
    }

    #[test]
    fn a_jti_is_accepted_once_within_the_window() {
        let cache = ReplayCache::new(10, 60);
        assert_eq!(cache.remember(&proof("a", 1000), 1000), Ok(()));
        assert_eq!(cache.remember(&proof("a", 1000), 1030), Err(DpopError::Replayed));
        assert_eq!(cache.remember(&proof("b", 1000), 1030), Ok(()));
        let other_key = Proof { thumbprint: [8; 32], ..proof("a", 1000) };
        assert_eq!(cache.remember(&other_key, 1030), Ok(()), "another key's jti is its own");
    }

    #[test]
    fn a_full_cache_fails_closed_then_recovers_when_entries_expire() {
        let cache = ReplayCache::new(3, 60);
        for jti in ["a", "b", "c"] {
            assert_eq!(cache.remember(&proof(jti, 1000), 1000), Ok(()));
        }
        assert_eq!(cache.remember(&proof("d", 1000), 1010), Err(DpopError::ReplayCacheFull));
        assert_eq!(cache.len(), 3);
        // Past the window the old proofs are stale anyway and are forgotten.
        assert_eq!(cache.remember(&proof("d", 1061), 1061), Ok(()));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn memory_follows_the_window_not_the_history() {
        let cache = ReplayCache::new(1_000, 60);
        for i in 0..5_000u64 {
            let now = 1_000 + i / 10; // 10 proofs a second for 500 s
            assert_eq!(cache.remember(&proof(&i.to_string(), now), now), Ok(()), "{i}");
        }
        assert!(cache.len() <= 2 * 60 * 10 + 10, "{}", cache.len());
    }

    #[test]
    fn a_future_iat_is_remembered_until_it_goes_stale() {
        let cache = ReplayCache::new(10, 60);
        assert_eq!(cache.remember(&proof("a", 1060), 1000), Ok(()));
        assert_eq!(cache.remember(&proof("a", 1060), 1119), Err(DpopError::Replayed));
    }
}
