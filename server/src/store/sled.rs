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
//! | `assertion_jti` | client ID ++ 0 ++ SHA-256 of an assertion's `jti` | until when (u64 BE) |
//! | `assertion_expiry` | until when (u64 BE) ++ `assertion_jti` key | empty: its purge's index |
//!
//! Every change to the four refresh-token trees (`refresh_tokens`,
//! `refresh_expiry`, `families`, `client_families`) and to the two
//! private_key_jwt replay trees is a commit of the
//! write-ahead [`journal`] in `<dir>.journal/`: commits are serialised, so a
//! rotation can never interleave with another rotation, a revocation or the
//! purge, and a commit is durable after one append and sync shared by all
//! concurrent writers. The other trees are written directly and made durable
//! by flushing sled ([`GroupFlusher`]), which only admin actions wait for.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::codec::{decode_compact, decode_json, encode_compact, encode_json};
use super::flusher::GroupFlusher;
use super::records::{ClientRecord, Digest32, FamilyId, FamilyRecord, KeyRecord, NewRefreshToken, RefreshRecord};
use super::{BackendSource, ClientChange, FamilyStart, JtiClaim, PurgeReport, RefreshUse, Store, StoreError};
use crate::clock::UnixTime;
use crate::grant::refresh::{self, Presentation, Writes};
use journal::{Journal, JournaledTrees, SegmentLimits, Ticket, TreeId, View};
use tessera_shared::admin::{AuditEvent, ClientStatus};

/// sled's page cache, in bytes. Its default (1 GiB) would let a busy server
/// hold most of a large database in memory; the hot records (clients, the
/// newest refresh tokens) fit in far less. Measured under the benchmark's
/// refresh-token load: 8 MiB issues as fast as 32 MiB (about 11,000/s) with
/// a peak resident size of about 50 MiB instead of 120 MiB; 4 MiB is about
/// 10% slower for no further saving.
const CACHE_CAPACITY: u64 = 8 * 1024 * 1024;

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
    /// The write-ahead journal for the refresh-token trees.
    journal: Arc<Journal>,
    /// How many families each client has (its `client_families` keys), as
    /// the journal sees them, so the family cap costs no scan of them per
    /// grant. A client's count is taken on its first family start after
    /// the store opened, and kept by every commit that adds or removes one
    /// of its keys; all of them run inside journal commits, one at a time.
    family_counts: Arc<Mutex<HashMap<String, usize>>>,
    /// The private_key_jwt replay set (journaled) and its per-client counts.
    assertion_jtis: assertion_jti::AssertionJtis,
    /// The database itself, for the operations that walk every tree
    /// (`tessera-server compact`).
    db: sled::Db,
    /// The directory of a [`SledStore::temporary`] store, removed when the
    /// last handle goes (declared last: dropped after the journal).
    _temporary_dir: Option<Arc<tempfile::TempDir>>,
}

fn backend(e: impl Into<BackendSource>) -> StoreError {
    StoreError::backend("sled", e)
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
    /// Opens (or creates) the database in `dir`. Its journal lives beside
    /// it, in `<dir>.journal/`; whatever a crash left there is replayed
    /// first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if sled cannot open it or the journal cannot
    /// be replayed; [`StoreError::Corrupt`] if the journal is damaged.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = open_db(dir)?;
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
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let clients = tree("clients")?;
        let journaled = JournaledTrees {
            families: tree("families")?,
            refresh_tokens: tree("refresh_tokens")?,
            refresh_expiry: tree("refresh_expiry")?,
            client_families: tree("client_families")?,
            assertion_jti: tree("assertion_jti")?,
            assertion_expiry: tree("assertion_expiry")?,
        };
        let journal = Arc::new(Journal::open(journal_dir, &db, journaled.clone(), SegmentLimits::default())?);
        let JournaledTrees {
            families,
            refresh_tokens,
            refresh_expiry,
            client_families,
            assertion_jti: jti_tree,
            assertion_expiry,
        } = journaled;
        Ok(Self {
            meta: tree("meta")?,
            clients: clients.clone(),
            client_last_used: tree("client_last_used")?,
            refresh_tokens,
            refresh_expiry,
            families,
            client_families,
            keys: tree("keys")?,
            audit: tree("audit")?,
            audit_append: Arc::new(Mutex::new(())),
            keys_swap: Arc::new(Mutex::new(())),
            denied_jti: tree("denied_jti")?,
            denied_expiry: tree("denied_expiry")?,
            flusher: GroupFlusher::start(db.clone())?,
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
            journal,
            family_counts: Arc::default(),
            assertion_jtis: assertion_jti::AssertionJtis::new(jti_tree, assertion_expiry),
            db,
            _temporary_dir: None,
        })
    }

    /// The per-client family counts. Only whole numbers inside: a panic
    /// elsewhere cannot leave them torn, so a poisoned lock is taken as is.
    fn family_counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.family_counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// The client with this ID, from the cache when it can.
    fn lookup_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        match self.client_cache.lookup(client_id) {
            Lookup::Hit(cached) => return Ok(Some(cached)),
            // Every client is in memory: an unknown ID is answered as fast.
            Lookup::Absent => return Ok(None),
            Lookup::Unknown => {}
        }
        let seen = self.client_cache.version();
        let found: Option<ClientRecord> =
            self.clients.get(client_id).map_err(backend)?.map(|raw| decode_json(&raw)).transpose()?;
        if let Some(client) = &found {
            self.client_cache.fill(client, seen);
        }
        Ok(found)
    }

    /// Waits until every write to the trees outside the journal is on disk.
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
    fn revoke_family(&self, family_id: &FamilyId, now: UnixTime) -> Result<(bool, Ticket), StoreError> {
        self.journal.commit(|view| {
            let Some(mut family) = get_family(view, family_id)? else { return Ok(false) };
            if !family.is_live(now) {
                return Ok(false);
            }
            family.revoked_at = Some(now);
            view.insert(TreeId::Families, family_id, encode_compact(&family)?);
            mark_dead(view, &family, now);
            Ok(true)
        })
    }

    /// Revokes every live family of `client_id`; returns how many, and the
    /// ticket to wait for before saying so.
    async fn revoke_families_of(&self, client_id: &str, now: UnixTime) -> Result<(u64, Ticket), StoreError> {
        // The scan below reads sled, which has a commit only once it is
        // synced and applied: wait for every commit made so far (an empty
        // commit takes its turn after any still deciding), so a family
        // whose creation saw the client active is found too.
        let ((), barrier) = self.journal.commit(|_| Ok(()))?;
        self.journal.wait(barrier).await?;
        let mut revoked = 0;
        for family_id in self.family_ids_of(client_id)? {
            if self.revoke_family(&family_id, now)?.0 {
                revoked += 1;
            }
        }
        Ok((revoked, self.journal.ticket_now()?))
    }
}

/// Removes the oldest families of `client_id` until one more fits under
/// `max_families`; returns how many of those were live at `now`. Their
/// tokens stay until the purge finds them without a family.
fn make_room(
    view: &mut View<'_>,
    counts: &mut HashMap<String, usize>,
    client_id: &str,
    max_families: usize,
    now: UnixTime,
) -> Result<u64, StoreError> {
    let count = match counts.get(client_id) {
        Some(count) => *count,
        None => view.keys_with_prefix(TreeId::ClientFamilies, client_id.as_bytes())?.len(),
    };
    let excess = (count + 1).saturating_sub(max_families.max(1));
    // Family IDs lead with their creation time: the first keys are the oldest.
    let oldest = view.first_keys_with_prefix(TreeId::ClientFamilies, client_id.as_bytes(), excess)?;
    let mut retired = 0;
    for key in &oldest {
        let family_id: FamilyId = key
            .get(client_id.len()..)
            .and_then(|rest| rest.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt("client_families key has the wrong length".into()))?;
        if get_family(view, &family_id)?.is_some_and(|f| f.is_live(now)) {
            retired += 1;
        }
        view.remove(TreeId::Families, &family_id);
        view.remove(TreeId::ClientFamilies, key);
    }
    // The caller adds the new family's key in this same commit.
    counts.insert(client_id.to_owned(), count + 1 - oldest.len());
    Ok(retired)
}

/// Makes a family revoked at `now` due for the purge: an index entry for
/// its current token at `now`. The purge removes a family with its current
/// token, so a dead family goes at the next purge instead of at its expiry;
/// the token's own entry, found later without a token, just goes too.
fn mark_dead(view: &mut View<'_>, family: &FamilyRecord, now: UnixTime) {
    view.insert(TreeId::RefreshExpiry, &expiry_key(now, &family.current), Vec::new());
}

fn get_token(view: &View<'_>, digest: &Digest32) -> Result<Option<RefreshRecord>, StoreError> {
    view.get(TreeId::RefreshTokens, digest)?.map(|raw| decode_compact(&raw)).transpose()
}

fn get_family(view: &View<'_>, family_id: &FamilyId) -> Result<Option<FamilyRecord>, StoreError> {
    view.get(TreeId::Families, family_id)?.map(|raw| decode_compact(&raw)).transpose()
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

    async fn replace_installation_value(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.meta.insert(name, value).map_err(backend)?;
        self.durable().await
    }

    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let encoded = encode_json(client)?;
        self.client_cache.write(
            &client.client_id,
            || {
                self.clients
                    .compare_and_swap(&client.client_id, None as Option<&[u8]>, Some(encoded))
                    .map_err(backend)?
                    .map_err(|_| StoreError::AlreadyExists(client.client_id.clone()))
            },
            |()| Some(client.clone()),
        )?;
        self.durable().await
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
        let updated = self.client_cache.write(
            client_id,
            || {
                self.clients
                    .transaction(|clients| {
                        let Some(raw) = clients.get(client_id)? else { return Ok(None) };
                        let mut client: ClientRecord = decode_json(&raw).map_err(abort)?;
                        change(&mut client);
                        clients.insert(client_id.as_bytes(), encode_json(&client).map_err(abort)?)?;
                        Ok(Some(client))
                    })
                    .map_err(from_tx)
            },
            Option::clone,
        )?;
        if updated.is_some() {
            self.durable().await?;
        }
        Ok(updated)
    }

    async fn delete_client(&self, client_id: &str, now: UnixTime) -> Result<Option<u64>, StoreError> {
        if self.client_cache.write(client_id, || self.clients.remove(client_id).map_err(backend), |_| None)?.is_none() {
            return Ok(None);
        }
        self.client_last_used.remove(client_id).map_err(backend)?;
        // A deleted client starts no family again: its count would only
        // grow the map with every deletion. (A count is derivable: one
        // dropped is counted again if ever needed.)
        self.family_counts().remove(client_id);
        let (revoked, ticket) = self.revoke_families_of(client_id, now).await?;
        self.journal.wait(ticket).await?;
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

    async fn create_family(
        &self,
        family: &FamilyRecord,
        first: &NewRefreshToken,
        max_families: usize,
    ) -> Result<FamilyStart, StoreError> {
        let token_bytes = encode_compact(&first.active_record(family))?;
        let family_bytes = encode_compact(family)?;
        let (started, ticket) = self.journal.commit(|view| {
            // Read inside the commit: a revocation that changed the client
            // before this point is seen here; one after it waits for this
            // commit before it scans the client's families.
            let active = self.lookup_client(&family.client_id)?.is_some_and(|c| c.status == ClientStatus::Active);
            if !active {
                return Ok(FamilyStart::ClientNotActive);
            }
            let retired =
                make_room(view, &mut self.family_counts(), &family.client_id, max_families, family.created_at)?;
            view.insert(TreeId::Families, &family.family_id, family_bytes);
            view.insert(TreeId::RefreshTokens, &first.digest, token_bytes);
            view.insert(TreeId::RefreshExpiry, &expiry_key(first.expires_at, &first.digest), Vec::new());
            view.insert(TreeId::ClientFamilies, &client_family_key(&family.client_id, &family.family_id), Vec::new());
            Ok(FamilyStart::Started { retired })
        })?;
        self.journal.wait(ticket).await?;
        Ok(started)
    }

    async fn use_refresh_token(
        &self,
        presented: &Digest32,
        successor: &NewRefreshToken,
        request: &Presentation<'_>,
    ) -> Result<RefreshUse, StoreError> {
        let (outcome, ticket) = self.journal.commit(|view| {
            let Some(token) = get_token(view, presented)? else { return Ok(RefreshUse::Unknown) };
            let Some(family) = get_family(view, &token.family_id)? else {
                // The family was purged before this token was: treat the
                // token as gone too.
                return Ok(RefreshUse::Unknown);
            };
            let decision = refresh::decide(presented, &token, &family, successor, request);
            match &decision.writes {
                Writes::Nothing => {}
                Writes::Family(family) => {
                    view.insert(TreeId::Families, &family.family_id, encode_compact(family)?);
                    mark_dead(view, family, request.now);
                }
                Writes::Rotate { presented: used, successor_digest, successor: record, family } => {
                    view.insert(TreeId::RefreshTokens, presented, encode_compact(used)?);
                    view.insert(TreeId::RefreshTokens, successor_digest, encode_compact(record)?);
                    view.insert(TreeId::RefreshExpiry, &expiry_key(record.expires_at, successor_digest), Vec::new());
                    view.insert(TreeId::Families, &family.family_id, encode_compact(family)?);
                }
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
            let ((tokens_removed, family_removed), _) = self.journal.commit(|view| {
                view.remove(TreeId::RefreshExpiry, &index_key);
                let Some(token) = get_token(view, &digest)? else { return Ok((0, 0)) };
                view.remove(TreeId::RefreshTokens, &digest);
                let family_removed = match get_family(view, &token.family_id)? {
                    Some(family) if family.current == digest => {
                        view.remove(TreeId::Families, &family.family_id);
                        view.remove(TreeId::ClientFamilies, &client_family_key(&family.client_id, &family.family_id));
                        if let Some(count) = self.family_counts().get_mut(&family.client_id) {
                            *count = count.saturating_sub(1);
                        }
                        1
                    }
                    _ => 0,
                };
                Ok((1, family_removed))
            })?;
            report.tokens += tokens_removed;
            report.families += family_removed;
        }
        // The next purge scans sled, which has these removals once they
        // are synced; waiting also keeps the report honest.
        self.journal.wait(self.journal.ticket_now()?).await?;
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
            let _guard = self.keys_swap.lock().map_err(|_| StoreError::internal("sled", "key lock poisoned"))?;
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
        // A failed journal refuses every refresh-token write: unhealthy.
        self.journal.check()?;
        self.meta.insert("health_probe", &[1u8]).map_err(backend)?;
        self.meta.get("health_probe").map_err(backend)?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.journal.wait(self.journal.ticket_now()?).await?;
        self.durable().await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEvent, StoreError> {
        let stored = {
            let _guard = self.audit_append.lock().map_err(|_| StoreError::internal("sled", "audit lock poisoned"))?;
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
            self.audit.remove(&key).map_err(backend)?;
            counts[class] -= 1;
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

    async fn refresh_token(&self, digest: &Digest32) -> Result<Option<(RefreshRecord, FamilyRecord)>, StoreError> {
        let Some(raw) = self.refresh_tokens.get(digest).map_err(backend)? else { return Ok(None) };
        let token: RefreshRecord = decode_compact(&raw)?;
        let Some(raw) = self.families.get(token.family_id).map_err(backend)? else { return Ok(None) };
        Ok(Some((token, decode_compact(&raw)?)))
    }

    async fn revoke_family_of_token(&self, digest: &Digest32, now: UnixTime) -> Result<bool, StoreError> {
        let Some(raw) = self.refresh_tokens.get(digest).map_err(backend)? else { return Ok(false) };
        let token: RefreshRecord = decode_compact(&raw)?;
        let (revoked, ticket) = self.revoke_family(&token.family_id, now)?;
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
mod journal;
mod open;
mod revocation;

use client_cache::{ClientCache, Lookup};
use open::open_db;

#[cfg(test)]
mod tests;
