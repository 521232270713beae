//! Storage: the [`Store`] trait and its implementations.
//!
//! The trait speaks in records and atomic operations, never in HTTP or OAuth
//! errors. Every method that changes state returns only once the change is
//! durable (a synced record of the sled journal, a committed PostgreSQL
//! transaction), so a response built on its result survives `kill -9`. The
//! one exception is [`Store::record_client_use`], a best-effort timestamp.
//!
//! - [`records`]: the stored data.
//! - [`sled`]: the embedded default backend.
//! - [`postgres`]: PostgreSQL, shared by several instances.

pub mod postgres;
pub mod records;
pub mod sled;

#[cfg(test)]
pub mod conformance;

mod codec;

use async_trait::async_trait;
use tessera_shared::admin::AuditEvent;

use crate::clock::UnixTime;
use crate::grant::refresh::token::RefreshToken;
use crate::grant::refresh::{Presentation, Verdict};
use records::{ClientRecord, Digest32, FamilyId, FamilyRecord, KeyRecord, NewRefreshToken};

/// A storage failure. Never caused by request input; maps to `server_error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption reported by the engine). The
    /// message carries the source's too, for logs that print only it.
    #[error("storage backend failed: {context}: {source}")]
    Backend {
        /// What the store was doing.
        context: String,
        /// What failed underneath.
        #[source]
        source: BackendSource,
    },
    /// A stored record does not decode.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// An insert found the key taken.
    #[error("record already exists: {0}")]
    AlreadyExists(String),
    /// The data dir or database holds another storage format than this
    /// build reads; it is refused rather than misread.
    #[error("{what} holds storage format {found}, this tessera-server needs format {expected}: {what_to_do}")]
    Format {
        /// "the data dir" or "the database".
        what: &'static str,
        /// The format found.
        found: u32,
        /// The format this build reads and writes.
        expected: u32,
        /// What the operator can do.
        what_to_do: &'static str,
    },
}

impl StoreError {
    /// A backend failure while doing `context`, caused by `source`.
    pub fn backend(context: impl Into<String>, source: impl Into<BackendSource>) -> Self {
        Self::Backend { context: context.into(), source: source.into() }
    }

    /// A failure of the store's own machinery, with no lower-level error
    /// (a poisoned lock, a stopped thread, a refused schema).
    pub fn internal(context: impl Into<String>, what: impl Into<String>) -> Self {
        Self::Backend { context: context.into(), source: BackendSource::Internal(what.into()) }
    }
}

/// The error underneath a [`StoreError::Backend`], kept as its source.
#[derive(Debug, thiserror::Error)]
pub enum BackendSource {
    /// sled failed.
    #[error(transparent)]
    Sled(#[from] ::sled::Error),
    /// A file or thread operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// PostgreSQL or the connection to it failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A record could not be encoded.
    #[error(transparent)]
    Encode(#[from] postcard::Error),
    /// The store's own machinery: no lower-level error exists.
    #[error("{0}")]
    Internal(String),
}

/// The result of [`Store::use_refresh_token`].
// Returned once per call and consumed at once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// No such family (never issued, purged, or retired by the cap).
    Unknown,
    /// [`crate::grant::refresh::decide`] ran and what it decided was written.
    Decided {
        /// What the client is told.
        verdict: Verdict,
        /// The family as it now stands.
        family: FamilyRecord,
    },
}

/// The result of [`Store::create_family`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyStart {
    /// The family exists now; `retired` live families of the client were
    /// removed to stay within the cap.
    Started {
        /// Live families retired for it.
        retired: u64,
    },
    /// The client is gone or revoked (by a change that raced with this
    /// grant): nothing was stored.
    ClientNotActive,
}

/// The result of [`Store::claim_assertion_jti`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JtiClaim {
    /// Not seen before (or no longer remembered): recorded now.
    First,
    /// Seen, and still remembered: a replay.
    Replayed,
    /// The client has as many remembered `jti`s as it may: nothing was
    /// recorded, and the assertion is refused (fail closed).
    Full,
}

/// Most `jti`s of client assertions remembered per client. An assertion
/// lives at most 10 minutes, so this allows a client over 16 fresh
/// assertions a second; beyond it, its assertions are refused until the
/// purge removes expired entries.
pub const MAX_ASSERTION_JTIS_PER_CLIENT: usize = 10_000;

/// How much the purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Families removed (expired, revoked, or dead with their client).
    pub families: u64,
    /// Access-token deny-list entries removed.
    pub denied: u64,
    /// Client-assertion `jti`s forgotten.
    pub assertion_jtis: u64,
}

/// A change to a client, applied atomically by [`Store::update_client`].
pub type ClientChange<'a> = dyn Fn(&mut ClientRecord) + Send + Sync + 'a;

/// Tessera's persistent state.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Returns the installation value stored under `name`, storing `init`
    /// first if there is none (e.g. the client-secret HMAC key).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn installation_value(&self, name: &str, init: Vec<u8>) -> Result<Vec<u8>, StoreError>;

    /// Replaces the installation value stored under `name` (sealing the
    /// client-secret HMAC key of an installation that had it in plain text).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn replace_installation_value(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError>;

    /// Stores a new client.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the ID is taken.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;

    /// The client with this ID.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;

    /// All clients, in ID order.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Applies `change` to the client atomically; `None` if there is no such client.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn update_client(
        &self,
        client_id: &str,
        change: &ClientChange<'_>,
    ) -> Result<Option<ClientRecord>, StoreError>;

    /// Removes the client and revokes its refresh-token families; returns
    /// how many live families were revoked, or `None` if there is no such client.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn delete_client(&self, client_id: &str, now: UnixTime) -> Result<Option<u64>, StoreError>;

    /// Records a successful authentication at `at`. Best effort: not
    /// flushed before returning.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn record_client_use(&self, client_id: &str, at: UnixTime) -> Result<(), StoreError>;

    /// When the client last authenticated, as recorded by [`Store::record_client_use`].
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn client_last_used(&self, client_id: &str) -> Result<Option<UnixTime>, StoreError>;

    /// Stores a new family (its first token is [`FamilyRecord::current`],
    /// generation 0) if, at the moment of the write, its client is stored,
    /// active and still at [`FamilyRecord::client_epoch`]: a family whose
    /// creation races with the client's revocation is refused here, or dead
    /// by the epoch the revocation raised in the same step as it revoked.
    ///
    /// A client keeps at most `max_families` families: if it has that many
    /// already, its oldest ones (by family ID, which sorts by creation
    /// time) are removed first, dead or live. On PostgreSQL, grants that
    /// start families of one client at the same moment may each see room
    /// for one more; the next start trims back to the cap.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn create_family(&self, family: &FamilyRecord, max_families: usize) -> Result<FamilyStart, StoreError>;

    /// Reads the family `presented` names, applies the rotation rules
    /// ([`crate::grant::refresh::decide`]) to it and writes what they
    /// decide, in one atomic step: of many concurrent calls for one token,
    /// exactly one can rotate it. On rotation `successor` becomes the
    /// family's current token, one generation on.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a corrupt record.
    async fn use_refresh_token(
        &self,
        presented: &RefreshToken,
        successor: &NewRefreshToken,
        request: &Presentation<'_>,
    ) -> Result<RefreshUse, StoreError>;

    /// Revokes every live family of the client; returns how many. Every
    /// family whose creation was committed before this call started is
    /// covered, including one whose commit is still on its way to disk.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn revoke_client_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError>;

    /// Families of the client that are live at `now`: not revoked, not
    /// expired, and of the client's current epoch (none if the client is gone).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn count_live_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError>;

    /// Removes up to `batch` families that are dead at `now`: expired,
    /// revoked, or created before their client's current epoch (or of a
    /// client that is gone). Each is re-checked before it goes.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn purge_expired(&self, now: UnixTime, batch: usize) -> Result<PurgeReport, StoreError>;

    /// All signing keys.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Stores the given keys together, replacing any with the same `kid`.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn put_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError>;

    /// Stores `changed` (as [`Store::put_keys`]) only if the stored keys are
    /// exactly `expected`, in any order; returns whether it did. Of several
    /// instances changing the key set from the same state, exactly one wins;
    /// the others reload what it stored.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn replace_keys(&self, expected: &[KeyRecord], changed: &[KeyRecord]) -> Result<bool, StoreError>;

    /// Whether other server instances may change this store (PostgreSQL).
    fn is_shared(&self) -> bool {
        false
    }

    /// On a shared store, a value that changes whenever another instance
    /// may have changed the signing keys (and whenever the backend cannot
    /// vouch that it heard every change, such as after a reconnect): the
    /// key manager re-reads the keys then, so a rotation made through one
    /// instance is served by all. `None` when nobody else writes the keys.
    fn key_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Checks that the backend is usable (sled: its journal has not failed,
    /// a write through it is synced, at most once a second, and sled
    /// answers a read; PostgreSQL: a read-only query, its answer reused for
    /// a second).
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    async fn health(&self) -> Result<(), StoreError>;

    /// Makes everything written so far durable (at shutdown).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Appends `event` to the audit trail with the next sequence number
    /// (the `seq` given is ignored) and returns it as stored. Sequence
    /// numbers strictly increase and are never reused, even after a purge.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEvent, StoreError>;

    /// Up to `limit` audit events with `seq > after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;

    /// The newest `limit` audit events, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn audit_latest(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;

    /// Removes up to `batch` of the oldest audit events that are beyond the
    /// newest `keep` of their class, or older than `before`; the newest
    /// event always stays. The two classes, operators' actions and security
    /// events ([`tessera_shared::admin::AuditKind::is_security`]), are
    /// counted apart, so security events never push out an action.
    /// Returns how many were removed.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn purge_audit(&self, keep: usize, before: UnixTime, batch: usize) -> Result<u64, StoreError>;
    /// Puts an access token's `jti` on the deny list until `expires_at`,
    /// the token's own `exp`: after that the token is refused anyway, so the
    /// entry can go (see [`Store::purge_denied`]).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn deny_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError>;

    /// Whether the `jti` is on the deny list at `now`.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn is_access_token_denied(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError>;

    /// Removes up to `batch` deny-list entries that expired before `now`;
    /// returns how many.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn purge_denied(&self, now: UnixTime, batch: usize) -> Result<u64, StoreError>;

    /// Records the `jti` (its SHA-256) of a client assertion of
    /// `client_id`, to be remembered until `until`, in one atomic step: of
    /// many concurrent claims of one `jti`, exactly one is
    /// [`JtiClaim::First`]. An entry whose `until` is not after `now` no
    /// longer counts. A client with `max_per_client` remembered entries
    /// gets [`JtiClaim::Full`] and nothing is recorded. Durable when it
    /// returns; on PostgreSQL shared by every instance.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn claim_assertion_jti(
        &self,
        client_id: &str,
        jti: &Digest32,
        until: UnixTime,
        now: UnixTime,
        max_per_client: usize,
    ) -> Result<JtiClaim, StoreError>;

    /// Removes up to `batch` assertion `jti`s whose `until` is not after
    /// `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn purge_assertion_jtis(&self, now: UnixTime, batch: usize) -> Result<u64, StoreError>;

    /// The family with this ID; reads only (for introspection and
    /// revocation).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure or a corrupt record.
    async fn family(&self, family_id: &FamilyId) -> Result<Option<FamilyRecord>, StoreError>;

    /// Revokes the family; returns whether a live family was revoked.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    async fn revoke_family(&self, family_id: &FamilyId, now: UnixTime) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::{BackendSource, StoreError};

    #[test]
    fn a_backend_error_keeps_its_source() {
        let error = StoreError::backend("append", std::io::Error::other("disk full"));
        assert_eq!(error.to_string(), "storage backend failed: append: disk full");
        let source = std::error::Error::source(&error).expect("the cause is kept");
        let Some(BackendSource::Io(io)) = source.downcast_ref::<BackendSource>() else { panic!("{source:?}") };
        assert_eq!(io.to_string(), "disk full");
    }

    #[test]
    fn a_sled_failure_is_kept_as_sled_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // A plain file where sled wants a directory.
        let Err(error) = crate::store::sled::SledStore::open(file.path()) else {
            panic!("opened a file as a database")
        };
        let source = std::error::Error::source(&error).expect("the cause is kept");
        assert!(
            matches!(source.downcast_ref::<BackendSource>(), Some(BackendSource::Sled(_) | BackendSource::Io(_))),
            "{source:?}"
        );
    }
}
