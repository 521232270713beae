//! The embedded default backend: sled, in `<data-dir>/db`.
//!
//! Trees:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | name | bytes |
//! | `clients` | client ID | [`ClientRecord`] (JSON) |
//! | `client_last_used` | client ID | u64 big-endian |
//! | `refresh_tokens` | SHA-256 of the token | [`RefreshRecord`] (postcard) |
//! | `refresh_expiry` | expiry (u64 BE) ++ digest | empty: the purge's index |
//! | `families` | family ID | [`FamilyRecord`] (postcard) |
//! | `client_families` | client ID ++ family ID | empty: revocation's index |
//! | `keys` | kid | [`KeyRecord`] (JSON) |
//! | `audit` | sequence number (u64 BE) | [`AuditEvent`] (JSON) |
//! | `denied_jti` | access-token `jti` | its `exp`, u64 big-endian |
//! | `denied_expiry` | `exp` (u64 BE) ++ `jti` | empty: the deny-list purge's index |
//!
//! Multi-tree changes run in sled transactions, which sled 0.34 serialises,
//! so a rotation can never interleave with another rotation, a revocation or
//! the purge.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional, TransactionalTree};

use super::codec::{decode_compact, decode_json, encode_compact, encode_json};
use super::flusher::GroupFlusher;
use super::records::{ClientRecord, Digest32, FamilyId, FamilyRecord, KeyRecord, NewRefreshToken, RefreshRecord};
use super::{ClientChange, PurgeReport, RefreshJudge, RefreshTransition, RefreshUse, Store, StoreError};
use crate::clock::UnixTime;
use tessera_shared::admin::AuditEvent;

/// sled's page cache, in bytes. Its default (1 GiB) would let a busy server
/// hold most of a large database in memory; the hot records (clients, the
/// newest refresh tokens) fit in far less.
const CACHE_CAPACITY: u64 = 32 * 1024 * 1024;

/// The sled store. Cheap to clone: sled trees are handles.
#[derive(Debug, Clone)]
pub struct SledStore {
    meta: sled::Tree,
    clients: sled::Tree,
    client_last_used: sled::Tree,
    refresh_tokens: sled::Tree,
    refresh_expiry: sled::Tree,
    families: sled::Tree,
    client_families: sled::Tree,
    keys: sled::Tree,
    denied_jti: sled::Tree,
    denied_expiry: sled::Tree,
    flusher: GroupFlusher,
    /// The audit trail, keyed by sequence number.
    audit: sled::Tree,
    /// Serialises audit appends: the next number is the last key plus one,
    /// read and written under this lock (held only around sled calls, never
    /// across an await).
    audit_append: Arc<Mutex<()>>,
    /// Serialises [`Store::replace_keys`]: its compare reads the whole tree,
    /// which a sled transaction cannot.
    keys_swap: Arc<Mutex<()>>,
    /// Decoded clients, so the token endpoint skips a tree read and a
    /// JSON decode; every client write below goes through it.
    client_cache: Arc<ClientCache>,
    /// The database itself, for the operations that walk every tree
    /// (`tessera-server compact`).
    db: sled::Db,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn from_tx(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn expiry_key(expires_at: UnixTime, digest: &Digest32) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&expires_at.to_be_bytes());
    key[8..].copy_from_slice(digest);
    key
}

fn client_family_key(client_id: &str, family_id: &FamilyId) -> Vec<u8> {
    let mut key = Vec::with_capacity(client_id.len() + family_id.len());
    key.extend_from_slice(client_id.as_bytes());
    key.extend_from_slice(family_id);
    key
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot open it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).cache_capacity(CACHE_CAPACITY).open().map_err(backend)?;
        Self::from_db(db)
    }

    /// A throw-away database for tests.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot create it.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new().temporary(true).open().map_err(backend)?;
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(Self {
            meta: tree("meta")?,
            clients: tree("clients")?,
            client_last_used: tree("client_last_used")?,
            refresh_tokens: tree("refresh_tokens")?,
            refresh_expiry: tree("refresh_expiry")?,
            families: tree("families")?,
            client_families: tree("client_families")?,
            keys: tree("keys")?,
            audit: tree("audit")?,
            audit_append: Arc::new(Mutex::new(())),
            keys_swap: Arc::new(Mutex::new(())),
            denied_jti: tree("denied_jti")?,
            denied_expiry: tree("denied_expiry")?,
            flusher: GroupFlusher::start(db.clone())?,
            client_cache: Arc::new(ClientCache::default()),
            db,
        })
    }

    /// Writes `keys` in one transaction, replacing any with the same kid.
    fn write_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        let encoded: Vec<(String, Vec<u8>)> =
            keys.iter().map(|k| Ok((k.kid.clone(), encode_json(k)?))).collect::<Result<_, StoreError>>()?;
        self.keys
            .transaction(|tree| {
                for (kid, bytes) in &encoded {
                    tree.insert(kid.as_bytes(), bytes.as_slice())?;
                }
                Ok(())
            })
            .map_err(|e: TransactionError<StoreError>| from_tx(e))
    }

    async fn durable(&self) -> Result<(), StoreError> {
        self.flusher.flush().await
    }

    fn family_ids_of(&self, client_id: &str) -> Result<Vec<FamilyId>, StoreError> {
        let mut ids = Vec::new();
        for entry in self.client_families.scan_prefix(client_id.as_bytes()).keys() {
            let key = entry.map_err(backend)?;
            let id: FamilyId = key
                .get(client_id.len()..)
                .and_then(|rest| rest.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt("client_families key has the wrong length".into()))?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Revokes one family if it is live; returns whether it was.
    fn revoke_family(&self, family_id: &FamilyId, now: UnixTime) -> Result<bool, StoreError> {
        self.families
            .transaction(|families| {
                let Some(raw) = families.get(family_id)? else { return Ok(false) };
                let mut family: FamilyRecord = decode_compact(&raw).map_err(abort)?;
                if !family.is_live(now) {
                    return Ok(false);
                }
                family.revoked_at = Some(now);
                families.insert(family_id, encode_compact(&family).map_err(abort)?)?;
                Ok(true)
            })
            .map_err(from_tx)
    }

    fn revoke_families_of(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let mut revoked = 0;
        for family_id in self.family_ids_of(client_id)? {
            if self.revoke_family(&family_id, now)? {
                revoked += 1;
            }
        }
        Ok(revoked)
    }
}

fn get_token(
    tokens: &TransactionalTree,
    digest: &Digest32,
) -> Result<Option<RefreshRecord>, ConflictableTransactionError<StoreError>> {
    match tokens.get(digest)? {
        Some(raw) => decode_compact(&raw).map(Some).map_err(abort),
        None => Ok(None),
    }
}

#[async_trait]
impl Store for SledStore {
    async fn installation_value(&self, name: &str, init: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let value =
            match self.meta.compare_and_swap(name, None as Option<&[u8]>, Some(init.as_slice())).map_err(backend)? {
                Ok(()) => {
                    self.durable().await?;
                    init
                }
                Err(existing) => existing.current.map(|v| v.to_vec()).unwrap_or_default(),
            };
        Ok(value)
    }

    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let encoded = encode_json(client)?;
        self.client_cache.write(&client.client_id, || {
            self.clients
                .compare_and_swap(&client.client_id, None as Option<&[u8]>, Some(encoded))
                .map_err(backend)?
                .map_err(|_| StoreError::AlreadyExists(client.client_id.clone()))
        })?;
        self.durable().await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        if let Some(cached) = self.client_cache.get(client_id) {
            return Ok(Some(cached));
        }
        let seen = self.client_cache.version();
        let found: Option<ClientRecord> =
            self.clients.get(client_id).map_err(backend)?.map(|raw| decode_json(&raw)).transpose()?;
        if let Some(client) = &found {
            self.client_cache.fill(client, seen);
        }
        Ok(found)
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.clients.iter().values().map(|raw| decode_json(&raw.map_err(backend)?)).collect()
    }

    async fn update_client(
        &self,
        client_id: &str,
        change: &ClientChange<'_>,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let updated = self.client_cache.write(client_id, || {
            self.clients
                .transaction(|clients| {
                    let Some(raw) = clients.get(client_id)? else { return Ok(None) };
                    let mut client: ClientRecord = decode_json(&raw).map_err(abort)?;
                    change(&mut client);
                    clients.insert(client_id.as_bytes(), encode_json(&client).map_err(abort)?)?;
                    Ok(Some(client))
                })
                .map_err(from_tx)
        })?;
        if updated.is_some() {
            self.durable().await?;
        }
        Ok(updated)
    }

    async fn delete_client(&self, client_id: &str, now: UnixTime) -> Result<Option<u64>, StoreError> {
        if self.client_cache.write(client_id, || self.clients.remove(client_id).map_err(backend))?.is_none() {
            return Ok(None);
        }
        self.client_last_used.remove(client_id).map_err(backend)?;
        let revoked = self.revoke_families_of(client_id, now)?;
        self.durable().await?;
        Ok(Some(revoked))
    }

    async fn record_client_use(&self, client_id: &str, at: UnixTime) -> Result<(), StoreError> {
        self.client_last_used.insert(client_id, &at.to_be_bytes()).map_err(backend)?;
        Ok(())
    }

    async fn client_last_used(&self, client_id: &str) -> Result<Option<UnixTime>, StoreError> {
        let Some(raw) = self.client_last_used.get(client_id).map_err(backend)? else { return Ok(None) };
        let bytes: [u8; 8] = raw.as_ref().try_into().map_err(|_| StoreError::Corrupt("last-used time".into()))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    async fn create_family(&self, family: &FamilyRecord, first: &NewRefreshToken) -> Result<(), StoreError> {
        let token = first.active_record(family);
        let token_bytes = encode_compact(&token)?;
        let family_bytes = encode_compact(family)?;
        (&self.families, &self.refresh_tokens, &self.refresh_expiry, &self.client_families)
            .transaction(|(families, tokens, expiry, client_families)| {
                families.insert(&family.family_id, family_bytes.as_slice())?;
                tokens.insert(&first.digest, token_bytes.as_slice())?;
                expiry.insert(expiry_key(first.expires_at, &first.digest).as_slice(), &[])?;
                client_families.insert(client_family_key(&family.client_id, &family.family_id), &[])?;
                Ok(())
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    async fn use_refresh_token(
        &self,
        presented: &Digest32,
        successor: &NewRefreshToken,
        judge: &RefreshJudge<'_>,
    ) -> Result<RefreshUse, StoreError> {
        let outcome = (&self.refresh_tokens, &self.families, &self.refresh_expiry)
            .transaction(|(tokens, families, expiry)| {
                let Some(token) = get_token(tokens, presented)? else { return Ok(RefreshUse::Unknown) };
                let Some(raw_family) = families.get(token.family_id)? else {
                    // The family was purged before this token was: treat the
                    // token as gone too.
                    return Ok(RefreshUse::Unknown);
                };
                let mut family: FamilyRecord = decode_compact(&raw_family).map_err(abort)?;
                let transition = judge(&token, &family);
                match transition {
                    RefreshTransition::Refuse => {}
                    RefreshTransition::RevokeFamily => {
                        family.revoked_at = Some(successor.issued_at);
                        families.insert(&family.family_id, encode_compact(&family).map_err(abort)?)?;
                    }
                    RefreshTransition::Rotate => {
                        tokens.insert(presented, encode_compact(&token.used(successor)).map_err(abort)?)?;
                        // Within the reuse grace the family's current token may be
                        // the presented token's unused successor: it is superseded.
                        if family.current != *presented
                            && let Some(current) = get_token(tokens, &family.current)?
                        {
                            let superseded = current.superseded(successor.issued_at);
                            tokens.insert(&family.current, encode_compact(&superseded).map_err(abort)?)?;
                        }
                        let new_token = successor.active_record(&family);
                        tokens.insert(&successor.digest, encode_compact(&new_token).map_err(abort)?)?;
                        expiry.insert(expiry_key(successor.expires_at, &successor.digest).as_slice(), &[])?;
                        family.advance_to(successor);
                        families.insert(&family.family_id, encode_compact(&family).map_err(abort)?)?;
                    }
                }
                Ok(RefreshUse::Applied { transition, token, family })
            })
            .map_err(from_tx)?;
        if matches!(
            outcome,
            RefreshUse::Applied { transition: RefreshTransition::Rotate | RefreshTransition::RevokeFamily, .. }
        ) {
            self.durable().await?;
        }
        Ok(outcome)
    }

    async fn revoke_client_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let revoked = self.revoke_families_of(client_id, now)?;
        self.durable().await?;
        Ok(revoked)
    }

    async fn count_live_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let mut live = 0;
        for family_id in self.family_ids_of(client_id)? {
            if let Some(raw) = self.families.get(family_id).map_err(backend)? {
                let family: FamilyRecord = decode_compact(&raw)?;
                if family.is_live(now) {
                    live += 1;
                }
            }
        }
        Ok(live)
    }

    async fn purge_expired(&self, now: UnixTime, batch: usize) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let bound = now.saturating_add(1).to_be_bytes();
        let expired: Vec<sled::IVec> = self
            .refresh_expiry
            .range(..bound.as_slice())
            .keys()
            .take(batch)
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        for index_key in expired {
            let digest: Digest32 = index_key
                .get(8..)
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt("refresh_expiry key has the wrong length".into()))?;
            let (tokens_removed, family_removed) =
                (&self.refresh_expiry, &self.refresh_tokens, &self.families, &self.client_families)
                    .transaction(|(expiry, tokens, families, client_families)| {
                        expiry.remove(&index_key)?;
                        let Some(token) = get_token(tokens, &digest)? else { return Ok((0, 0)) };
                        tokens.remove(&digest)?;
                        let family_removed = match families.get(token.family_id)? {
                            Some(raw) => {
                                let family: FamilyRecord = decode_compact(&raw).map_err(abort)?;
                                if family.current == digest {
                                    families.remove(&family.family_id)?;
                                    client_families.remove(client_family_key(&family.client_id, &family.family_id))?;
                                    1
                                } else {
                                    0
                                }
                            }
                            None => 0,
                        };
                        Ok((1, family_removed))
                    })
                    .map_err(from_tx)?;
            report.tokens += tokens_removed;
            report.families += family_removed;
        }
        Ok(report)
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.keys.iter().values().map(|raw| decode_json(&raw.map_err(backend)?)).collect()
    }

    async fn put_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        self.write_keys(keys)?;
        self.durable().await
    }

    async fn replace_keys(&self, expected: &[KeyRecord], changed: &[KeyRecord]) -> Result<bool, StoreError> {
        {
            // Only this process writes the tree (the data dir is locked), and
            // every writer of the key set comes through here or `put_keys`
            // at start, so compare-then-write under the lock is atomic.
            let _guard = self.keys_swap.lock().map_err(|_| backend("key lock poisoned"))?;
            let mut stored: Vec<KeyRecord> =
                self.keys.iter().values().map(|raw| decode_json(&raw.map_err(backend)?)).collect::<Result<_, _>>()?;
            stored.sort_by(|a, b| a.kid.cmp(&b.kid));
            let mut expected = expected.to_vec();
            expected.sort_by(|a, b| a.kid.cmp(&b.kid));
            if stored != expected {
                return Ok(false);
            }
            self.write_keys(changed)?;
        }
        self.durable().await?;
        Ok(true)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.meta.insert("health_probe", &[1u8]).map_err(backend)?;
        self.meta.get("health_probe").map_err(backend)?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEvent, StoreError> {
        let stored = {
            let _guard = self.audit_append.lock().map_err(|_| backend("audit lock poisoned"))?;
            let last = match self.audit.last().map_err(backend)? {
                Some((key, _)) => audit_seq(&key)?,
                None => 0,
            };
            let stored = AuditEvent { seq: last.saturating_add(1), ..event.clone() };
            self.audit.insert(stored.seq.to_be_bytes(), encode_json(&stored)?).map_err(backend)?;
            stored
        };
        self.durable().await?;
        Ok(stored)
    }

    async fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        self.audit.range(start..).values().take(limit).map(|raw| decode_json(&raw.map_err(backend)?)).collect()
    }

    async fn audit_latest(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events: Vec<AuditEvent> = self
            .audit
            .iter()
            .values()
            .rev()
            .take(limit)
            .map(|raw| decode_json(&raw.map_err(backend)?))
            .collect::<Result<_, _>>()?;
        events.reverse();
        Ok(events)
    }

    async fn purge_audit(&self, keep: usize, before: UnixTime, batch: usize) -> Result<u64, StoreError> {
        // Appends only add at the end and the purge only removes from the
        // front, so the keys are contiguous and the count is last - first + 1.
        let (Some((first, _)), Some((last, _))) =
            (self.audit.first().map_err(backend)?, self.audit.last().map_err(backend)?)
        else {
            return Ok(0);
        };
        let last = audit_seq(&last)?;
        let mut count = last.saturating_sub(audit_seq(&first)?).saturating_add(1);
        let keep = u64::try_from(keep.max(1)).unwrap_or(u64::MAX);
        let mut removed = 0;
        for entry in self.audit.iter().take(batch) {
            let (key, raw) = entry.map_err(backend)?;
            let seq = audit_seq(&key)?;
            if seq == last {
                break;
            }
            let event: AuditEvent = decode_json(&raw)?;
            if count <= keep && event.at >= before {
                break;
            }
            self.audit.remove(&key).map_err(backend)?;
            count -= 1;
            removed += 1;
        }
        if removed > 0 {
            self.durable().await?;
        }
        Ok(removed)
    }

    async fn deny_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        revocation::deny(&self.denied_jti, &self.denied_expiry, jti, expires_at)?;
        self.durable().await
    }

    async fn is_access_token_denied(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        revocation::is_denied(&self.denied_jti, jti, now)
    }

    async fn purge_denied(&self, now: UnixTime, batch: usize) -> Result<u64, StoreError> {
        revocation::purge(&self.denied_jti, &self.denied_expiry, now, batch)
    }

    async fn refresh_token(&self, digest: &Digest32) -> Result<Option<(RefreshRecord, FamilyRecord)>, StoreError> {
        let Some(raw) = self.refresh_tokens.get(digest).map_err(backend)? else { return Ok(None) };
        let token: RefreshRecord = decode_compact(&raw)?;
        let Some(raw) = self.families.get(token.family_id).map_err(backend)? else { return Ok(None) };
        Ok(Some((token, decode_compact(&raw)?)))
    }

    async fn revoke_family_of_token(&self, digest: &Digest32, now: UnixTime) -> Result<bool, StoreError> {
        let Some(raw) = self.refresh_tokens.get(digest).map_err(backend)? else { return Ok(false) };
        let token: RefreshRecord = decode_compact(&raw)?;
        let revoked = self.revoke_family(&token.family_id, now)?;
        if revoked {
            self.durable().await?;
        }
        Ok(revoked)
    }
}

fn audit_seq(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt("audit key has the wrong length".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

mod client_cache;
pub mod compact;
mod export;
mod revocation;

use client_cache::ClientCache;

#[cfg(test)]
mod tests;
