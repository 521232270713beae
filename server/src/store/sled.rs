//! The embedded default backend: sled, in `<data-dir>/db`.
//!
//! Trees:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | name | bytes |
//! | `clients` | client ID | [`ClientRecord`] (JSON) |
//! | `client_last_used` | client ID | u64 big-endian |
//! | `families` | family ID | [`FamilyRecord`] (postcard): one per family, however often it rotates |
//! | `client_families` | client ID ++ family ID | empty: the client's families, by prefix |
//! | `family_expiry` | expiry day (u32 BE) ++ family ID | empty: the purge's index |
//! | `keys` | kid | [`KeyRecord`] (JSON) |
//! | `audit` | sequence number (u64 BE) | [`AuditEvent`] (JSON) |
//! | `denied_jti` | access-token `jti` | its `exp`, u64 big-endian |
//! | `denied_expiry` | `exp` (u64 BE) ++ `jti` | empty: the deny-list purge's index |
//! | `assertion_jti` | client ID ++ 0 ++ SHA-256 of an assertion's `jti` | until when (u64 BE) |
//! | `assertion_expiry` | until when (u64 BE) ++ `assertion_jti` key | empty: its purge's index |
//!
//! Every change to every one of these trees is a commit of the write-ahead
//! [`journal`] in `<dir>.journal/`, which owns them: the store holds only
//! read-only handles ([`ReadTree`]). Commits are serialised, so a rotation
//! can never interleave with another rotation, a revocation, the purge or
//! a client change, and a commit is durable after one append and
//! `fdatasync` shared by all concurrent writers. Every write waits for that
//! before it returns (one durability rule), except
//! [`Store::record_client_use`], a best-effort time stamp.
//!
//! `meta` holds `storage_format` ([`format`]): a data dir of another format
//! is refused at open, never misread.
//!
//! A rotation overwrites the one family record; it touches `family_expiry`
//! only when the family's expiry moves into another day, at most once a
//! day per family, and the purge re-checks the record before removing it.
//!
//! `families` and `family_expiry` reach sled only at the journal's
//! checkpoints ([`journal::TreeId::applied_at_checkpoint`]), so the store
//! reads them through the journal, never through a [`ReadTree`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::codec::{decode_compact, decode_json, encode_compact, encode_json};
use super::records::{ClientRecord, Digest32, FamilyId, FamilyRecord, KeyRecord, NewRefreshToken};
use super::{BackendSource, ClientChange, FamilyStart, JtiClaim, PurgeReport, RefreshUse, Store, StoreError};
use crate::clock::UnixTime;
use crate::grant::refresh::token::RefreshToken;
use crate::grant::refresh::{self, Presentation};
use journal::{Journal, JournaledTrees, ReadTree, SegmentLimits, Ticket, TreeId, View};
use tessera_shared::admin::{AuditEvent, ClientStatus};

/// sled's page cache, in bytes. Its default (1 GiB) would let a busy server
/// hold most of a large database in memory; the hot records (clients, the
/// newest refresh tokens) fit in far less. Measured under the benchmark's
/// refresh-token load: 8 MiB issues as fast as 32 MiB (about 11,000/s) with
/// a peak resident size of about 50 MiB instead of 120 MiB; 4 MiB is about
/// 10% slower for no further saving.
const CACHE_CAPACITY: u64 = 8 * 1024 * 1024;

/// How often [`Store::health`] writes through the journal at most.
const HEALTH_PROBE_EVERY: Duration = Duration::from_secs(1);

/// The sled store. Cheap to clone: its trees are handles. Every tree is
/// read-only here; writes are journal commits.
#[derive(Debug, Clone)]
pub struct SledStore {
    meta: ReadTree,
    clients: ReadTree,
    client_last_used: ReadTree,
    keys: ReadTree,
    denied_jti: ReadTree,
    denied_expiry: ReadTree,
    /// The audit trail, keyed by sequence number.
    audit: ReadTree,
    /// Decoded clients, so the token endpoint skips a tree read and a
    /// JSON decode; every client write below goes through it.
    client_cache: Arc<ClientCache>,
    /// The write-ahead journal: the only writer of every tree.
    journal: Arc<Journal>,
    /// How many families each client has, and its oldest ones, for the
    /// family cap (see [`family_cap`]).
    family_tallies: Arc<Mutex<FamilyTallies>>,
    /// When [`Store::health`] last wrote its probe through the journal and
    /// saw it synced: it writes at most once per [`HEALTH_PROBE_EVERY`], so
    /// a flood of `/healthz` costs no flood of syncs.
    last_health_probe: Arc<Mutex<Option<Instant>>>,
    /// The private_key_jwt replay set (journaled) and its per-client counts.
    assertion_jtis: assertion_jti::AssertionJtis,
    /// The directory of a [`SledStore::temporary`] store, removed when the
    /// last handle goes (declared last: dropped after the journal).
    _temporary_dir: Option<Arc<tempfile::TempDir>>,
}

fn backend(e: impl Into<BackendSource>) -> StoreError {
    StoreError::backend("sled", e)
}

use super::records::expiry_day as day_of;

fn expiry_key(day: u32, family_id: &FamilyId) -> [u8; 14] {
    let mut key = [0u8; 14];
    key[..4].copy_from_slice(&day.to_be_bytes());
    key[4..].copy_from_slice(family_id);
    key
}

fn client_family_key(client_id: &str, family_id: &FamilyId) -> Vec<u8> {
    let mut key = Vec::with_capacity(client_id.len() + family_id.len());
    key.extend_from_slice(client_id.as_bytes());
    key.extend_from_slice(family_id);
    key
}

/// The family ID in a `client_families` key of `client_id`: the inverse of
/// [`client_family_key`].
fn family_id_in(client_id: &str, key: &[u8]) -> Result<FamilyId, StoreError> {
    key.get(client_id.len()..)
        .and_then(|rest| rest.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("client_families key has the wrong length".into()))
}

impl SledStore {
    /// Opens (or creates) the database in `dir`. Its journal lives beside
    /// it, in `<dir>.journal/`; whatever a crash left there is replayed
    /// first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot open it or the journal cannot
    /// be replayed; [`StoreError::Corrupt`] if the journal is damaged.
    /// [`StoreError::Format`] if it holds another storage format.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = open_db(dir)?;
        format::check_or_initialise(&db)?;
        Self::from_db(db, &journal_dir(dir))
    }

    /// A throw-away database for tests, in a temporary directory.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if it cannot be created.
    pub fn temporary() -> Result<Self, StoreError> {
        let dir = tempfile::tempdir().map_err(backend)?;
        let store = Self::open(&dir.path().join("db"))?;
        Ok(Self { _temporary_dir: Some(Arc::new(dir)), ..store })
    }

    fn from_db(db: sled::Db, journal_dir: &Path) -> Result<Self, StoreError> {
        // The writable handles go to the journal; from here on the store
        // reads through `ReadTree`s and writes through commits.
        let journal = Arc::new(Journal::open(journal_dir, &db, JournaledTrees::open(&db)?, SegmentLimits::default())?);
        drop(db);
        let clients = journal.reader(TreeId::Clients);
        Ok(Self {
            meta: journal.reader(TreeId::Meta),
            clients: clients.clone(),
            client_last_used: journal.reader(TreeId::ClientLastUsed),
            keys: journal.reader(TreeId::Keys),
            audit: journal.reader(TreeId::Audit),
            denied_jti: journal.reader(TreeId::DeniedJti),
            denied_expiry: journal.reader(TreeId::DeniedExpiry),
            // A record that cannot be read leaves the cache incomplete: that
            // client's lookups then fail alone, as before, instead of the start.
            client_cache: Arc::new(
                clients
                    .iter()
                    .values()
                    .map(|raw| decode_json(&raw.map_err(backend)?))
                    .collect::<Result<Vec<ClientRecord>, StoreError>>()
                    .map_or_else(|_| ClientCache::default(), ClientCache::complete),
            ),
            assertion_jtis: assertion_jti::AssertionJtis::new(
                journal.reader(TreeId::AssertionJti),
                journal.reader(TreeId::AssertionExpiry),
            ),
            journal,
            family_tallies: Arc::default(),
            last_health_probe: Arc::default(),
            _temporary_dir: None,
        })
    }

    /// Applies the synced changes still waiting for their checkpoint to
    /// sled now: for tests that need them in sled's files.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled fails.
    #[cfg(test)]
    pub(crate) fn apply_checkpoint_changes(&self) -> Result<(), StoreError> {
        self.journal.settle()
    }

    /// The per-client family tallies. A panic elsewhere cannot leave one
    /// wrong in a way that matters (a count is corrected by the next
    /// retirement's scan, a key read is checked before use), so a poisoned
    /// lock is taken as is.
    fn family_tallies(&self) -> std::sync::MutexGuard<'_, FamilyTallies> {
        self.family_tallies.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Commits `change` and waits until it is durable.
    async fn commit_durably<T>(
        &self,
        change: impl FnOnce(&mut View<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (value, ticket) = self.journal.commit(change)?;
        self.journal.wait(ticket).await?;
        Ok(value)
    }

    /// The client with this ID, from the cache when it can.
    fn lookup_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        match self.client_cache.lookup(client_id) {
            Lookup::Hit(cached) => return Ok(Some(cached)),
            // Every client is in memory: an unknown ID is answered as fast.
            Lookup::Absent => return Ok(None),
            Lookup::Unknown => {}
        }
        let seen = self.client_cache.version();
        // Through the journal, not sled alone: a commit publishes a client
        // to the cache once it is committed, before sled has it, and a read
        // of sled could cache the record from before it.
        let found: Option<ClientRecord> =
            self.journal.get(TreeId::Clients, client_id.as_bytes())?.map(|raw| decode_json(&raw)).transpose()?;
        if let Some(client) = &found {
            self.client_cache.fill(client, seen);
        }
        Ok(found)
    }

    fn family_ids_of(&self, client_id: &str) -> Result<Vec<FamilyId>, StoreError> {
        self.journal
            .keys_with_prefix(TreeId::ClientFamilies, client_id.as_bytes())?
            .iter()
            .map(|key| family_id_in(client_id, key))
            .collect()
    }

    /// Revokes one family if it is live; returns whether it was.
    fn revoke_one(&self, family_id: &FamilyId, now: UnixTime) -> Result<(bool, Ticket), StoreError> {
        self.journal.commit(|view| {
            let Some(family) = get_family(view, family_id)? else { return Ok(false) };
            if !family.is_live(now) {
                return Ok(false);
            }
            let revoked = FamilyRecord { revoked_at: Some(now), ..family.clone() };
            view.insert(TreeId::Families, family_id, encode_compact(&revoked)?);
            reindex(view, &family, &revoked);
            Ok(true)
        })
    }

    /// Revokes every live family of `client_id`; returns how many, and the
    /// ticket to wait for before saying so.
    async fn revoke_families_of(&self, client_id: &str, now: UnixTime) -> Result<(u64, Ticket), StoreError> {
        // The scan below sees every commit made so far, not one still
        // deciding: wait for those (an empty commit takes its turn after
        // them), so a family whose creation saw the client active is found
        // too.
        let ((), barrier) = self.journal.commit(|_| Ok(()))?;
        self.journal.wait(barrier).await?;
        let mut revoked = 0;
        for family_id in self.family_ids_of(client_id)? {
            if self.revoke_one(&family_id, now)?.0 {
                revoked += 1;
            }
        }
        Ok((revoked, self.journal.ticket_now()?))
    }
}

/// A family's one entry in the purge's index: the day its current token
/// expires, or day 0 once it is revoked, ahead of every family still to
/// expire, so a dead family goes at the next purge however many expire
/// today. Every write of a family keeps exactly this entry
/// ([`reindex`]), so the index holds one entry per family, not one per
/// day or event of its history.
fn index_key(family: &FamilyRecord) -> [u8; 14] {
    let day = if family.revoked_at.is_some() { DUE_AT_ONCE } else { day_of(family.expires_at) };
    expiry_key(day, &family.family_id)
}

/// Moves the family's index entry from where `before` had it to where
/// `after` needs it: a write at most once a day per family (a rotation
/// moves the expiry by the refresh-token lifetime) or at its revocation.
fn reindex(view: &mut View<'_>, before: &FamilyRecord, after: &FamilyRecord) {
    let (old, new) = (index_key(before), index_key(after));
    if old != new {
        view.remove(TreeId::FamilyExpiry, &old);
        view.insert(TreeId::FamilyExpiry, &new, Vec::new());
    }
}

/// The expiry-index day of a revoked family.
const DUE_AT_ONCE: u32 = 0;

fn get_family(view: &View<'_>, family_id: &FamilyId) -> Result<Option<FamilyRecord>, StoreError> {
    view.get(TreeId::Families, family_id)?.map(|raw| decode_compact(&raw)).transpose()
}

/// Removes a family and its index entries, keeping the count.
fn remove_family(view: &mut View<'_>, tallies: &mut FamilyTallies, family: &FamilyRecord) {
    remove_family_keys(view, family);
    family_cap::count_removed(tallies, family);
}

/// Removes a family's record and its two index entries.
fn remove_family_keys(view: &mut View<'_>, family: &FamilyRecord) {
    view.remove(TreeId::Families, &family.family_id);
    view.remove(TreeId::FamilyExpiry, &index_key(family));
    view.remove(TreeId::ClientFamilies, &client_family_key(&family.client_id, &family.family_id));
}

#[async_trait]
impl Store for SledStore {
    async fn installation_value(&self, name: &str, init: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        // A value already there may still be on its way to the disk: the
        // wait covers it too.
        self.commit_durably(|view| match view.get(TreeId::Meta, name.as_bytes())? {
            Some(existing) => Ok(existing),
            None => {
                view.insert(TreeId::Meta, name.as_bytes(), init.clone());
                Ok(init)
            }
        })
        .await
    }

    async fn replace_installation_value(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.commit_durably(|view| {
            view.insert(TreeId::Meta, name.as_bytes(), value);
            Ok(())
        })
        .await
    }

    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let encoded = encode_json(client)?;
        let id = client.client_id.as_bytes();
        let ((), ticket) = self.journal.commit_and_publish(
            |view| {
                if view.get(TreeId::Clients, id)?.is_some() {
                    return Err(StoreError::AlreadyExists(client.client_id.clone()));
                }
                view.insert(TreeId::Clients, id, encoded);
                Ok(())
            },
            |()| self.client_cache.published(&client.client_id, Some(client)),
        )?;
        self.journal.wait(ticket).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.lookup_client(client_id)
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.clients.iter().values().map(|raw| decode_json(&raw.map_err(backend)?)).collect()
    }

    async fn update_client(
        &self,
        client_id: &str,
        change: &ClientChange<'_>,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let id = client_id.as_bytes();
        let (updated, ticket) = self.journal.commit_and_publish(
            |view| {
                let Some(raw) = view.get(TreeId::Clients, id)? else { return Ok(None) };
                let mut client: ClientRecord = decode_json(&raw)?;
                change(&mut client);
                view.insert(TreeId::Clients, id, encode_json(&client)?);
                Ok(Some(client))
            },
            |updated| {
                if let Some(client) = updated {
                    self.client_cache.published(client_id, Some(client));
                }
            },
        )?;
        self.journal.wait(ticket).await?;
        Ok(updated)
    }

    async fn delete_client(&self, client_id: &str, now: UnixTime) -> Result<Option<u64>, StoreError> {
        let id = client_id.as_bytes();
        let (existed, ticket) = self.journal.commit_and_publish(
            |view| {
                if view.get(TreeId::Clients, id)?.is_none() {
                    return Ok(false);
                }
                view.remove(TreeId::Clients, id);
                view.remove(TreeId::ClientLastUsed, id);
                Ok(true)
            },
            |existed| {
                if *existed {
                    self.client_cache.published(client_id, None);
                }
            },
        )?;
        if !existed {
            self.journal.wait(ticket).await?;
            return Ok(None);
        }
        // A deleted client starts no family again: its count would only
        // grow the map with every deletion. (A count is derivable: one
        // dropped is counted again if ever needed.)
        self.family_tallies().remove(client_id);
        // The revocations' ticket comes after the deletion's: it covers both.
        let (revoked, ticket) = self.revoke_families_of(client_id, now).await?;
        self.journal.wait(ticket).await?;
        Ok(Some(revoked))
    }

    async fn record_client_use(&self, client_id: &str, at: UnixTime) -> Result<(), StoreError> {
        // Best effort: journaled like every write, but the request it
        // stamps does not wait for the sync (a crash may lose the last
        // stamps). Reads go through the journal, so they see it at once.
        self.journal.commit(|view| {
            view.insert(TreeId::ClientLastUsed, client_id.as_bytes(), at.to_be_bytes().to_vec());
            Ok(())
        })?;
        Ok(())
    }

    async fn client_last_used(&self, client_id: &str) -> Result<Option<UnixTime>, StoreError> {
        let Some(raw) = self.journal.get(TreeId::ClientLastUsed, client_id.as_bytes())? else { return Ok(None) };
        let bytes: [u8; 8] = raw.as_slice().try_into().map_err(|_| StoreError::Corrupt("last-used time".into()))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    async fn create_family(&self, family: &FamilyRecord, max_families: usize) -> Result<FamilyStart, StoreError> {
        let family_bytes = encode_compact(family)?;
        let (started, ticket) = self.journal.commit(|view| {
            // Read inside the commit: a revocation raised the client's
            // epoch in the same step as it revoked it, so a client revoked
            // since the grant authenticated (even re-activated since) is
            // seen here.
            let current = self
                .lookup_client(&family.client_id)?
                .is_some_and(|c| c.status == ClientStatus::Active && c.family_epoch == family.client_epoch);
            if !current {
                return Ok(FamilyStart::ClientNotActive);
            }
            if view.get(TreeId::Families, &family.family_id)?.is_some() {
                return Err(StoreError::AlreadyExists("a refresh-token family with this ID".into()));
            }
            let retired =
                make_room(view, &mut self.family_tallies(), &family.client_id, max_families, family.created_at)?;
            view.insert(TreeId::Families, &family.family_id, family_bytes);
            view.insert(TreeId::FamilyExpiry, &index_key(family), Vec::new());
            view.insert(TreeId::ClientFamilies, &client_family_key(&family.client_id, &family.family_id), Vec::new());
            Ok(FamilyStart::Started { retired })
        })?;
        self.journal.wait(ticket).await?;
        Ok(started)
    }

    async fn use_refresh_token(
        &self,
        presented: &RefreshToken,
        successor: &NewRefreshToken,
        request: &Presentation<'_>,
    ) -> Result<RefreshUse, StoreError> {
        let (outcome, ticket) = self.journal.commit(|view| {
            let Some(family) = get_family(view, &presented.family_id)? else { return Ok(RefreshUse::Unknown) };
            let decision = refresh::decide(presented, &family, successor, request);
            if let Some(after) = &decision.write {
                view.insert(TreeId::Families, &after.family_id, encode_compact(after)?);
                reindex(view, &family, after);
            }
            let family = decision.family_after(&family).clone();
            Ok(RefreshUse::Decided { verdict: decision.verdict, family })
        })?;
        // Even a refusal waits: it may rest on a rotation that is not on
        // disk yet, and must not be answered from state a crash would undo.
        self.journal.wait(ticket).await?;
        Ok(outcome)
    }

    async fn revoke_client_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let (revoked, ticket) = self.revoke_families_of(client_id, now).await?;
        self.journal.wait(ticket).await?;
        Ok(revoked)
    }

    async fn count_live_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        // A family of an epoch its client has left behind is dead too.
        let Some(owner) = self.lookup_client(client_id)? else { return Ok(0) };
        let mut live = 0;
        for family_id in self.family_ids_of(client_id)? {
            if let Some(raw) = self.journal.get(TreeId::Families, &family_id)? {
                let family: FamilyRecord = decode_compact(&raw)?;
                if family.is_live(now) && family.client_epoch >= owner.family_epoch {
                    live += 1;
                }
            }
        }
        Ok(live)
    }

    async fn purge_expired(&self, now: UnixTime, batch: usize) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let bound = day_of(now).saturating_add(1).to_be_bytes();
        let due = self.journal.first_keys_below(TreeId::FamilyExpiry, &bound, batch)?;
        for index_key in due {
            let (day, family_id): (u32, FamilyId) = index_key
                .get(..4)
                .zip(index_key.get(4..))
                .and_then(|(day, id)| Some((u32::from_be_bytes(day.try_into().ok()?), id.try_into().ok()?)))
                .ok_or_else(|| StoreError::Corrupt("family_expiry key has the wrong length".into()))?;
            let (removed, _) = self.journal.commit(|view| {
                let Some(family) = get_family(view, &family_id)? else {
                    view.remove(TreeId::FamilyExpiry, &index_key);
                    return Ok(0);
                };
                let client = self.lookup_client(&family.client_id)?;
                let dead = !family.is_live(now) || client.is_none_or(|c| c.family_epoch > family.client_epoch);
                if dead {
                    view.remove(TreeId::FamilyExpiry, &index_key);
                    remove_family(view, &mut self.family_tallies(), &family);
                    return Ok(1);
                }
                if day_of(family.expires_at) != day {
                    // Read before a commit that moved the family's entry:
                    // the entry it has now is elsewhere.
                    view.remove(TreeId::FamilyExpiry, &index_key);
                }
                // Otherwise it expires later today: its entry stays.
                Ok(0)
            })?;
            report.families += removed;
        }
        // Waiting keeps the report honest: the removals are on disk.
        self.journal.wait(self.journal.ticket_now()?).await?;
        Ok(report)
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.keys.iter().values().map(|raw| decode_json(&raw.map_err(backend)?)).collect()
    }

    async fn put_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        let encoded: Vec<(String, Vec<u8>)> =
            keys.iter().map(|k| Ok((k.kid.clone(), encode_json(k)?))).collect::<Result<_, StoreError>>()?;
        self.commit_durably(|view| {
            for (kid, bytes) in encoded {
                view.insert(TreeId::Keys, kid.as_bytes(), bytes);
            }
            Ok(())
        })
        .await
    }

    async fn replace_keys(&self, expected: &[KeyRecord], changed: &[KeyRecord]) -> Result<bool, StoreError> {
        let mut expected = expected.to_vec();
        expected.sort_by(|a, b| a.kid.cmp(&b.kid));
        let encoded: Vec<(String, Vec<u8>)> =
            changed.iter().map(|k| Ok((k.kid.clone(), encode_json(k)?))).collect::<Result<_, StoreError>>()?;
        // Compare and write in one commit: commits are serialised, so no
        // other write of the key set comes between. Even a refusal waits:
        // it may rest on a commit not on disk yet.
        self.commit_durably(|view| {
            let mut stored: Vec<KeyRecord> = Vec::new();
            for kid in view.keys_with_prefix(TreeId::Keys, &[])? {
                if let Some(raw) = view.get(TreeId::Keys, &kid)? {
                    stored.push(decode_json(&raw)?);
                }
            }
            stored.sort_by(|a, b| a.kid.cmp(&b.kid));
            if stored != expected {
                return Ok(false);
            }
            for (kid, bytes) in encoded {
                view.insert(TreeId::Keys, kid.as_bytes(), bytes);
            }
            Ok(true)
        })
        .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        // A failed journal refuses every write: unhealthy. Otherwise a
        // write takes the whole path (append, sync, apply to sled), at most
        // once a second, and is read back.
        self.journal.check()?;
        let due = {
            let last = self.last_health_probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            last.is_none_or(|at| at.elapsed() >= HEALTH_PROBE_EVERY)
        };
        if due {
            self.commit_durably(|view| {
                view.insert(TreeId::Meta, b"health_probe", vec![1]);
                Ok(())
            })
            .await?;
            *self.last_health_probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        }
        self.meta.get("health_probe").map_err(backend)?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.journal.wait(self.journal.ticket_now()?).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEvent, StoreError> {
        // The next number is the last key plus one, as this commit sees the
        // trail: commits are serialised, so no two events get one number.
        self.commit_durably(|view| {
            let last = match view.last_key(TreeId::Audit)? {
                Some(key) => audit_seq(&key)?,
                None => 0,
            };
            let stored = AuditEvent { seq: last.saturating_add(1), ..event.clone() };
            view.insert(TreeId::Audit, &stored.seq.to_be_bytes(), encode_json(&stored)?);
            Ok(stored)
        })
        .await
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
        let Some((last, _)) = self.audit.last().map_err(backend)? else { return Ok(0) };
        let last = audit_seq(&last)?;
        // Operators' actions and security events are counted apart, so a
        // flood of security events never pushes out an operator's action.
        // The trail is bounded (two budgets of `keep`), so one pass to count
        // and one to remove stay small.
        let mut counts = [0u64; 2];
        for entry in self.audit.iter() {
            let (_, raw) = entry.map_err(backend)?;
            let event: AuditEvent = decode_json(&raw)?;
            counts[usize::from(event.kind.is_security())] += 1;
        }
        let keep = u64::try_from(keep.max(1)).unwrap_or(u64::MAX);
        let batch = u64::try_from(batch).unwrap_or(u64::MAX);
        let mut removed = 0;
        let mut doomed = Vec::new();
        for entry in self.audit.iter() {
            if removed >= batch {
                break;
            }
            let (key, raw) = entry.map_err(backend)?;
            let seq = audit_seq(&key)?;
            if seq == last {
                break;
            }
            let event: AuditEvent = decode_json(&raw)?;
            let class = usize::from(event.kind.is_security());
            if counts[class] <= keep && event.at >= before {
                continue;
            }
            doomed.push(key);
            counts[class] -= 1;
            removed += 1;
        }
        if !doomed.is_empty() {
            // What sled holds is every earlier purge's doing (each waits for
            // its commit), plus perhaps appends still on their way, which
            // are newer than anything chosen here.
            self.commit_durably(|view| {
                for key in &doomed {
                    view.remove(TreeId::Audit, key);
                }
                Ok(())
            })
            .await?;
        }
        Ok(removed)
    }

    async fn deny_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        self.commit_durably(|view| revocation::deny(view, jti, expires_at)).await
    }

    async fn is_access_token_denied(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        revocation::is_denied(&self.denied_jti, jti, now)
    }

    async fn purge_denied(&self, now: UnixTime, batch: usize) -> Result<u64, StoreError> {
        let expired = revocation::expired(&self.denied_expiry, now, batch)?;
        if expired.is_empty() {
            return Ok(0);
        }
        // Each entry is checked again in the commit: a denial since may
        // have moved it to a later expiry.
        self.commit_durably(|view| {
            for index_key in &expired {
                revocation::remove_expired(view, index_key)?;
            }
            Ok(())
        })
        .await?;
        Ok(expired.len() as u64)
    }

    async fn claim_assertion_jti(
        &self,
        client_id: &str,
        jti: &Digest32,
        until: UnixTime,
        now: UnixTime,
        max_per_client: usize,
    ) -> Result<JtiClaim, StoreError> {
        let (claim, ticket) = self.assertion_jtis.claim(&self.journal, client_id, jti, until, now, max_per_client)?;
        // A replay's refusal waits too: the first use may not be on disk yet.
        self.journal.wait(ticket).await?;
        Ok(claim)
    }

    async fn purge_assertion_jtis(&self, now: UnixTime, batch: usize) -> Result<u64, StoreError> {
        let (removed, ticket) = self.assertion_jtis.purge(&self.journal, now, batch)?;
        self.journal.wait(ticket).await?;
        Ok(removed)
    }

    async fn family(&self, family_id: &FamilyId) -> Result<Option<FamilyRecord>, StoreError> {
        self.journal.get(TreeId::Families, family_id)?.map(|raw| decode_compact(&raw)).transpose()
    }

    async fn revoke_family(&self, family_id: &FamilyId, now: UnixTime) -> Result<bool, StoreError> {
        let (revoked, ticket) = self.revoke_one(family_id, now)?;
        self.journal.wait(ticket).await?;
        Ok(revoked)
    }
}

fn audit_seq(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt("audit key has the wrong length".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Where the journal of the database in `dir` lives: beside it, so the
/// database directory stays sled's alone.
fn journal_dir(dir: &Path) -> std::path::PathBuf {
    dir.with_extension("journal")
}

mod assertion_jti;
mod client_cache;
pub mod compact;
mod export;
mod family_cap;
mod format;
mod journal;
mod open;
mod revocation;

use client_cache::{ClientCache, Lookup};
use family_cap::{FamilyTallies, make_room};
use open::open_db;

#[cfg(test)]
mod tests;
