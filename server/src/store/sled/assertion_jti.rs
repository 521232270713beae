//! The private_key_jwt replay set in sled: `assertion_jti` answers "was
//! this `jti` of this client seen, and until when must it be remembered",
//! `assertion_expiry` (ordered by that time) lets the purge find what can
//! go. Both trees are written only through the journal, like the
//! refresh-token trees, so a claim is durable when it is answered.
//!
//! A client has at most `max_per_client` entries: a claim beyond that
//! fails closed ([`JtiClaim::Full`]) until the purge removes expired ones.
//! The per-client counts are kept in memory, taken from the tree on a
//! client's first claim after the store opened and kept by every commit
//! that adds or removes one of its entries (commits run one at a time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::backend;
use super::journal::{Journal, ReadTree, Ticket, TreeId};
use crate::clock::UnixTime;
use crate::store::records::Digest32;
use crate::store::{JtiClaim, StoreError};

/// The two trees and the counts.
#[derive(Debug, Clone)]
pub(super) struct AssertionJtis {
    /// The set itself, read by `migrate-storage`; written only through the journal.
    jti: ReadTree,
    /// Read by the purge; written only through the journal.
    expiry: ReadTree,
    /// Entries per client, as the journal sees them.
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

fn prefix(client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(client_id.len() + 33);
    key.extend_from_slice(client_id.as_bytes());
    key.push(0);
    key
}

fn jti_key(client_id: &str, jti: &Digest32) -> Vec<u8> {
    let mut key = prefix(client_id);
    key.extend_from_slice(jti);
    key
}

fn expiry_key(until: UnixTime, key: &[u8]) -> Vec<u8> {
    let mut index = Vec::with_capacity(8 + key.len());
    index.extend_from_slice(&until.to_be_bytes());
    index.extend_from_slice(key);
    index
}

fn decode_until(raw: &[u8]) -> Result<UnixTime, StoreError> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StoreError::Corrupt("assertion jti expiry".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

impl AssertionJtis {
    /// Over the journaled trees `jti` and its purge index `expiry`, read-only.
    pub(super) fn new(jti: ReadTree, expiry: ReadTree) -> Self {
        Self { jti, expiry, counts: Arc::default() }
    }

    /// Every entry: client ID, `jti` digest, until when (for `migrate-storage`).
    pub(super) fn entries(&self) -> Result<Vec<(String, Digest32, UnixTime)>, StoreError> {
        let mut entries = Vec::new();
        for entry in self.jti.iter() {
            let (key, value) = entry.map_err(backend)?;
            let split =
                key.len().checked_sub(33).ok_or_else(|| StoreError::Corrupt("assertion_jti key too short".into()))?;
            let client_id = String::from_utf8(key[..split].to_vec())
                .map_err(|_| StoreError::Corrupt("an assertion_jti client ID is not UTF-8".into()))?;
            let digest: Digest32 = key[split + 1..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("an assertion_jti digest has the wrong length".into()))?;
            entries.push((client_id, digest, decode_until(&value)?));
        }
        Ok(entries)
    }

    /// Only whole numbers inside: a panic elsewhere cannot leave them torn.
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `jti` of `client_id` until `until`, if it is not remembered
    /// at `now` and the client has room.
    pub(super) fn claim(
        &self,
        journal: &Journal,
        client_id: &str,
        jti: &Digest32,
        until: UnixTime,
        now: UnixTime,
        max_per_client: usize,
    ) -> Result<(JtiClaim, Ticket), StoreError> {
        let key = jti_key(client_id, jti);
        journal.commit(|view| {
            if let Some(raw) = view.get(TreeId::AssertionJti, &key)? {
                let stored = decode_until(&raw)?;
                if now < stored {
                    return Ok(JtiClaim::Replayed);
                }
                // Expired but not purged yet: the entry is reused.
                view.remove(TreeId::AssertionExpiry, &expiry_key(stored, &key));
                view.insert(TreeId::AssertionJti, &key, until.to_be_bytes().to_vec());
                view.insert(TreeId::AssertionExpiry, &expiry_key(until, &key), Vec::new());
                return Ok(JtiClaim::First);
            }
            let mut counts = self.counts();
            let count = match counts.get(client_id) {
                Some(count) => *count,
                None => view.keys_with_prefix(TreeId::AssertionJti, &prefix(client_id))?.len(),
            };
            if count >= max_per_client {
                counts.insert(client_id.to_owned(), count);
                return Ok(JtiClaim::Full);
            }
            view.insert(TreeId::AssertionJti, &key, until.to_be_bytes().to_vec());
            view.insert(TreeId::AssertionExpiry, &expiry_key(until, &key), Vec::new());
            counts.insert(client_id.to_owned(), count + 1);
            Ok(JtiClaim::First)
        })
    }

    /// Removes up to `batch` entries that need not be remembered at `now`;
    /// returns how many, and the ticket to wait for.
    pub(super) fn purge(&self, journal: &Journal, now: UnixTime, batch: usize) -> Result<(u64, Ticket), StoreError> {
        let bound = now.saturating_add(1).to_be_bytes();
        let expired: Vec<sled::IVec> =
            self.expiry.range(..bound.as_slice()).keys().take(batch).collect::<Result<_, _>>().map_err(backend)?;
        let mut removed = 0;
        for index_key in expired {
            let (Some(until), Some(key)) = (index_key.get(..8), index_key.get(8..)) else {
                return Err(StoreError::Corrupt("assertion_expiry key too short".into()));
            };
            let (gone, _) = journal.commit(|view| {
                view.remove(TreeId::AssertionExpiry, &index_key);
                // Only if the entry still ends then (a later claim reused it).
                if view.get(TreeId::AssertionJti, key)?.is_some_and(|raw| raw == until) {
                    view.remove(TreeId::AssertionJti, key);
                    let client_id = key.get(..key.len().saturating_sub(33)).unwrap_or_default();
                    if let Some(count) = self.counts().get_mut(String::from_utf8_lossy(client_id).as_ref()) {
                        *count = count.saturating_sub(1);
                    }
                    return Ok(1);
                }
                Ok(0)
            })?;
            removed += gone;
        }
        Ok((removed, journal.ticket_now()?))
    }
}
