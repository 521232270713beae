//! The PostgreSQL backend, for several instances serving one issuer.
//!
//! Tables (created by [`schema`]): `tessera_meta`, `clients`,
//! `client_last_used`, `families` (one row per family, however often it
//! rotates), `signing_keys`, `audit`, `denied_jti`, `assertion_jti` (the
//! private_key_jwt replay set), and `tessera_counters` for the audit sequence.
//! Records are stored in the same encodings as in sled (see `codec`), with
//! the columns the queries filter on beside them.
//!
//! Guarantees, across every instance on the database:
//! - every change is committed before the method returns (PostgreSQL's
//!   default `synchronous_commit` makes a commit durable);
//! - a refresh reads the family row, applies the rotation rules and writes
//!   the result with a compare-and-swap (`UPDATE ... WHERE generation = $2
//!   AND revoked_at IS NULL`), two round trips and no transaction: of
//!   concurrent uses of one token exactly one swap succeeds; the others
//!   read the row again and decide on what it has become (a reuse then);
//!   both statements are prepared once per connection, so each is one
//!   round trip;
//! - a family starts in one statement ([`family_start`]): inserted only
//!   while its client is active at the family's epoch, the oldest families
//!   beyond the cap retired in the same statement;
//! - the purges take rows with `FOR UPDATE SKIP LOCKED` (the audit purge a
//!   try-advisory-lock), so instances purging at once never do the same
//!   work twice;
//! - the key set changes by compare-and-swap under an advisory lock
//!   ([`Store::replace_keys`]), so exactly one of two rotating instances wins.
//!
//! Advisory locks are keyed by the schema (`hashtext(current_schema())`)
//! and a lock class, so installations in different schemas of one database
//! never block each other.
//!
//! Each instance caches client records ([`client_cache`]) and follows the
//! signing keys, both driven by change notifications that triggers send in
//! the changing transaction and a listening connection hears ([`listen`]).
//! Connections are TCP, with TLS as `sslmode` asks ([`connect`]), or a
//! Unix socket.

pub mod client_cache;
pub mod connect;
mod family_start;
pub mod listen;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tessera_shared::admin::AuditEvent;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::codec::{decode_compact, decode_json, encode_compact, encode_json};
use super::records::{ClientRecord, Digest32, FamilyId, FamilyRecord, KeyRecord, NewRefreshToken, expiry_day};
use super::{ClientChange, FamilyStart, JtiClaim, PurgeReport, RefreshUse, Store, StoreError};
use crate::clock::UnixTime;
use crate::grant::refresh::token::RefreshToken;
use crate::grant::refresh::{self, Presentation};
use client_cache::{ClientCache, Lookup};
use connect::ConnectSettings;

/// Connections per instance, unless [`PgOptions::pool_size`] says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long a `/healthz` answer is reused: load balancers poll it often.
const HEALTH_FOR: Duration = Duration::from_secs(1);
/// How long a request waits for a free connection or a new one.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of a transaction that PostgreSQL aborted as a deadlock or
/// serialisation failure (lock order differs between a rotation and a
/// purge racing on one family).
const MAX_ATTEMPTS: u32 = 8;

/// Advisory lock class of key-set changes.
const KEYS_LOCK: i32 = 2;
/// Advisory lock class of the audit purge.
const AUDIT_PURGE_LOCK: i32 = 3;

/// How an advisory lock is taken: per schema and class (see the module docs).
pub(super) const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext(current_schema()), $1)";

/// Taken by every change to a client (revocation, deletion, revoking its
/// families), keyed by the schema and the client ID, so that those changes
/// of one client run one at a time. Family starts take no lock: the
/// client's family epoch makes a family that races with a revocation dead
/// (see [`family_start`]). (The one-bigint key space is apart from the
/// two-integer one of [`LOCK_SQL`].)
const CLIENT_LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ' client ' || $1::text, 0))";

/// Whether a `--storage` value names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Tunables of [`PgStore::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections in the pool (the listening connection is one more).
    pub pool_size: usize,
    /// Clients the cache holds at most.
    pub cache_capacity: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self { pool_size: DEFAULT_POOL_SIZE, cache_capacity: client_cache::DEFAULT_CAPACITY }
    }
}

/// A health answer and when it was taken.
type HealthAnswer = (Instant, Result<(), String>);

/// The PostgreSQL store. Cheap to clone: the pool, the cache and the
/// listener are shared; the listener stops when the last clone goes.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Client records, valid while the listener hears every change.
    cache: Arc<ClientCache>,
    /// Bumped by the listener whenever the signing keys may have changed.
    key_changes: watch::Receiver<u64>,
    /// The last health answer and when it was taken (see [`HEALTH_FOR`]);
    /// an async mutex, so that concurrent probes wait for one query.
    health: Arc<tokio::sync::Mutex<Option<HealthAnswer>>>,
    /// Where each client's oldest families start, for the family cap.
    retire_hints: Arc<family_start::RetireHints>,
    /// Stops the listener when the last clone is dropped.
    _listener: Arc<DropGuard>,
}

impl std::fmt::Debug for PgStore {
    // The connection settings hold the password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool_size", &self.pool.status().max_size).finish_non_exhaustive()
    }
}

/// A failure inside one attempt: retried, or final.
#[derive(Debug)]
pub(super) enum Fail {
    /// Deadlock or serialisation failure: the transaction was rolled back
    /// and may be run again.
    Retry,
    /// Anything else.
    Store(StoreError),
}

impl Fail {
    pub(super) fn into_store(self) -> StoreError {
        match self {
            Self::Retry => StoreError::internal("postgres", "transaction kept conflicting with others"),
            Self::Store(e) => e,
        }
    }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE => {
                Self::Retry
            }
            _ => Self::Store(StoreError::backend(describe(&e), e)),
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => Self::from(e),
            other => Self::Store(StoreError::backend("connection pool", other)),
        }
    }
}

/// The server's message for a database error (the plain `Display` says only
/// "db error"). Never contains connection settings.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres {}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("postgres: {e}: {source}"),
            None => format!("postgres: {e}"),
        },
    }
}

/// Runs `attempt` until it does not ask for a retry, at most [`MAX_ATTEMPTS`] times.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Fail::Retry) if tries < MAX_ATTEMPTS => {
                // A short, growing pause lets the other transaction finish.
                tokio::time::sleep(Duration::from_millis(u64::from(tries) * 5)).await;
            }
            Err(fail) => return Err(fail.into_store()),
        }
    }
}

fn to_db(value: u64) -> Result<i64, Fail> {
    i64::try_from(value).map_err(|_| Fail::Store(StoreError::Corrupt(format!("{value} is out of range"))))
}

fn from_db(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative stored number {value}")))
}

fn batch_limit(batch: usize) -> i64 {
    i64::try_from(batch).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or a Unix
    /// socket directory as `host=/path` in the query) and brings the schema
    /// up to date.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the URL does not parse, the database does
    /// not answer, or a migration fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, None, PgOptions::default()).await
    }

    /// Like [`PgStore::connect`], with every table in `schema` (which must
    /// exist) instead of the URL's default search path; the tests give each
    /// test a schema of its own.
    ///
    /// # Errors
    /// As for [`PgStore::connect`].
    pub async fn connect_in(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        Self::open(url, schema, PgOptions::default()).await
    }

    /// [`PgStore::connect_in`] with the given tunables. Also starts the
    /// listening connection; warns if the connection to a database on
    /// another host is not encrypted.
    ///
    /// # Errors
    /// As for [`PgStore::connect`]; a server certificate that fails
    /// verification is said so in one line.
    pub async fn open(url: &str, schema: Option<&str>, options: PgOptions) -> Result<Self, StoreError> {
        let mut settings = ConnectSettings::from_url(url)?;
        let config = &mut settings.config;
        if config.get_application_name().is_none() {
            config.application_name("tessera-server");
        }
        if let Some(schema) = schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StoreError::internal("postgres", format!("invalid schema name {schema:?}")));
            }
            config.options(format!("-c search_path={schema}"));
        }
        config.connect_timeout(POOL_TIMEOUT);
        let manager = Manager::from_config(
            settings.config.clone(),
            settings.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::internal("connection pool", e.to_string()))?;
        let mut client = connect::first_connection(&pool, &settings).await?;
        schema::migrate(&mut client).await?;
        connect::warn_if_plaintext(&client, &settings).await?;
        let channel: String =
            client.query_one(listen::CHANNEL_SQL, &[]).await.map_err(|e| Fail::from(e).into_store())?.get(0);
        drop(client);

        let cache = Arc::new(ClientCache::new(options.cache_capacity));
        let (keys, key_changes) = watch::channel(0);
        let stop = CancellationToken::new();
        let listener = listen::Listener { settings, channel, cache: cache.clone(), keys };
        tokio::spawn(listener.run(stop.clone()));
        Ok(Self {
            pool,
            cache,
            key_changes,
            health: Arc::new(tokio::sync::Mutex::new(None)),
            retire_hints: Arc::default(),
            _listener: Arc::new(stop.drop_guard()),
        })
    }

    /// The client cache (for tests).
    #[cfg(test)]
    pub(crate) fn client_cache(&self) -> &ClientCache {
        &self.cache
    }

    async fn client(&self) -> Result<Object, Fail> {
        Ok(self.pool.get().await?)
    }

    async fn try_use_refresh_token(
        &self,
        presented: &RefreshToken,
        successor: &NewRefreshToken,
        request: &Presentation<'_>,
    ) -> Result<RefreshUse, Fail> {
        let client = self.client().await?;
        // Prepared once per connection: each statement is then one round
        // trip instead of a parse and an execution.
        let read = client.prepare_cached(READ_FAMILY_SQL).await?;
        loop {
            let Some(row) = client.query_opt(&read, &[&presented.family_id.as_slice()]).await? else {
                return Ok(RefreshUse::Unknown);
            };
            let family: FamilyRecord = decode_compact(row.get::<_, &[u8]>(0))?;
            let decision = refresh::decide(presented, &family, successor, request);
            let Some(after) = &decision.write else {
                return Ok(RefreshUse::Decided { verdict: decision.verdict, family });
            };
            // Every write of a family changes its generation or revokes it:
            // the swap fails if another did either since the read.
            if swap_family(&client, &family, after).await? {
                return Ok(RefreshUse::Decided { verdict: decision.verdict, family: after.clone() });
            }
        }
    }

    /// Revokes every live family of the client inside `tx`; returns how many.
    async fn revoke_families_in(
        tx: &deadpool_postgres::Transaction<'_>,
        client_id: &str,
        now: UnixTime,
    ) -> Result<u64, Fail> {
        let rows = tx
            .query(
                "SELECT record FROM families WHERE client_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                 ORDER BY family_id FOR UPDATE",
                &[&client_id, &to_db(now)?],
            )
            .await?;
        let mut revoked = 0;
        for row in rows {
            let mut family: FamilyRecord = decode_compact(row.get::<_, &[u8]>(0))?;
            if family.is_live(now) {
                family.revoked_at = Some(now);
                write_family(tx, &family).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    async fn try_delete_client(&self, client_id: &str, now: UnixTime) -> Result<Option<u64>, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(CLIENT_LOCK_SQL, &[&client_id]).await?;
        if tx.execute("DELETE FROM clients WHERE client_id = $1", &[&client_id]).await? == 0 {
            return Ok(None);
        }
        tx.execute("DELETE FROM client_last_used WHERE client_id = $1", &[&client_id]).await?;
        let revoked = Self::revoke_families_in(&tx, client_id, now).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn try_create_family(&self, family: &FamilyRecord, max_families: usize) -> Result<FamilyStart, Fail> {
        let client = self.client().await?;
        family_start::start_family(&client, family, max_families, &self.retire_hints).await
    }

    async fn try_revoke_client_families(&self, client_id: &str, now: UnixTime) -> Result<u64, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(CLIENT_LOCK_SQL, &[&client_id]).await?;
        let revoked = Self::revoke_families_in(&tx, client_id, now).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    async fn try_update_client(
        &self,
        client_id: &str,
        change: &ClientChange<'_>,
    ) -> Result<Option<ClientRecord>, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(CLIENT_LOCK_SQL, &[&client_id]).await?;
        let Some(row) =
            tx.query_opt("SELECT record FROM clients WHERE client_id = $1 FOR UPDATE", &[&client_id]).await?
        else {
            return Ok(None);
        };
        let mut record: ClientRecord = decode_json(row.get::<_, &[u8]>(0))?;
        change(&mut record);
        tx.execute(
            "UPDATE clients SET record = $2, family_epoch = $3 WHERE client_id = $1",
            &[&client_id, &encode_json(&record)?, &to_db(record.family_epoch)?],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn try_revoke_family(&self, family_id: &FamilyId, now: UnixTime) -> Result<bool, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt("SELECT record FROM families WHERE family_id = $1 FOR UPDATE", &[&family_id.as_slice()])
            .await?
        else {
            return Ok(false);
        };
        let mut family: FamilyRecord = decode_compact(row.get::<_, &[u8]>(0))?;
        if !family.is_live(now) {
            return Ok(false);
        }
        family.revoked_at = Some(now);
        write_family(&tx, &family).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn try_purge_expired(&self, now: UnixTime, batch: usize) -> Result<PurgeReport, Fail> {
        let client = self.client().await?;
        // One statement: take up to `batch` families due by their expiry
        // day that nobody else holds (another instance purging skips
        // these), re-check each (expired, revoked, or older than its
        // client's epoch, or of a client that is gone) and delete it.
        let row = client
            .query_one(
                "WITH gone AS (
                     DELETE FROM families WHERE family_id IN (
                         SELECT f.family_id FROM families f
                         WHERE f.expiry_day <= $3
                           AND (f.revoked_at IS NOT NULL OR f.expires_at <= $1
                                OR NOT EXISTS (SELECT 1 FROM clients c
                                               WHERE c.client_id = f.client_id AND c.family_epoch <= f.client_epoch))
                         ORDER BY f.expiry_day LIMIT $2 FOR UPDATE SKIP LOCKED
                     ) RETURNING client_id
                 ), counted AS (
                     SELECT client_id, count(*) AS n FROM gone GROUP BY client_id
                 ), tallied AS (
                     INSERT INTO family_tally (client_id, shard, n)
                     SELECT client_id, pg_backend_pid() % 64, -n FROM counted
                     ON CONFLICT (client_id, shard) DO UPDATE SET n = family_tally.n + EXCLUDED.n
                 )
                 SELECT coalesce(sum(n), 0)::int8 FROM counted",
                &[&to_db(now)?, &batch_limit(batch), &i64::from(expiry_day(now))],
            )
            .await?;
        let families: u64 = from_db(row.get(0))?;
        // The tally rows of deleted clients whose families are all gone:
        // nothing adds to them again (client IDs are never reused). Once per
        // purge, with its last (short) batch, as it reads the whole table.
        if families < u64::try_from(batch).unwrap_or(u64::MAX) {
            client
                .execute(
                    "DELETE FROM family_tally t \
                     WHERE NOT EXISTS (SELECT 1 FROM clients c WHERE c.client_id = t.client_id) \
                       AND NOT EXISTS (SELECT 1 FROM families f WHERE f.client_id = t.client_id)",
                    &[],
                )
                .await?;
        }
        Ok(PurgeReport { families, ..PurgeReport::default() })
    }

    async fn try_replace_keys(&self, expected: &[KeyRecord], changed: &[KeyRecord]) -> Result<bool, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(LOCK_SQL, &[&KEYS_LOCK]).await?;
        let rows = tx.query("SELECT record FROM signing_keys", &[]).await?;
        let mut stored: Vec<KeyRecord> =
            rows.iter().map(|row| decode_json(row.get::<_, &[u8]>(0))).collect::<Result<_, _>>()?;
        stored.sort_by(|a, b| a.kid.cmp(&b.kid));
        let mut expected = expected.to_vec();
        expected.sort_by(|a, b| a.kid.cmp(&b.kid));
        if stored != expected {
            return Ok(false);
        }
        upsert_keys(&tx, changed).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn try_append_audit(&self, event: &AuditEvent) -> Result<AuditEvent, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The counter row's lock orders appends: numbers are handed out in
        // commit order, so a reader paging by `seq` never skips an event
        // that commits later with a smaller number.
        let row = tx
            .query_one("UPDATE tessera_counters SET value = value + 1 WHERE name = 'audit_seq' RETURNING value", &[])
            .await?;
        let stored = AuditEvent { seq: from_db(row.get(0))?, ..event.clone() };
        tx.execute(
            "INSERT INTO audit (seq, at, record) VALUES ($1, $2, $3)",
            &[&to_db(stored.seq)?, &to_db(stored.at)?, &encode_json(&stored)?],
        )
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn try_purge_audit(&self, keep: usize, before: UnixTime, batch: usize) -> Result<u64, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One instance at a time; the others find the lock taken and skip
        // this round rather than compute the same deletion.
        let row = tx
            .query_one("SELECT pg_try_advisory_xact_lock(hashtext(current_schema()), $1)", &[&AUDIT_PURGE_LOCK])
            .await?;
        if !row.get::<_, bool>(0) {
            return Ok(0);
        }
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let removed = tx
            .execute(
                // Operators' actions and security events are counted apart
                // (`in_class`), so security events never push out an action.
                "WITH ranked AS (
                     SELECT seq, at, row_number() OVER (ORDER BY seq DESC) AS from_newest,
                         row_number() OVER (
                             PARTITION BY (convert_from(record, 'UTF8')::jsonb ->> 'kind')
                                 IN ('refresh_token_reuse', 'auth_failure_burst')
                             ORDER BY seq DESC
                         ) AS in_class
                     FROM audit
                 ), doomed AS (
                     SELECT seq FROM ranked WHERE from_newest > 1 AND (in_class > $1 OR at < $2)
                     ORDER BY seq LIMIT $3
                 )
                 DELETE FROM audit a USING doomed WHERE a.seq = doomed.seq",
                &[&keep, &to_db(before)?, &batch_limit(batch)],
            )
            .await?;
        tx.commit().await?;
        Ok(removed)
    }
}

/// The expiry day of a revoked family: ahead of every family still to
/// expire, so a dead family goes at the next purge instead of at its expiry.
const DUE_AT_ONCE: i64 = 0;

/// The expiry-index day of `family` as it is written.
fn index_day(family: &FamilyRecord) -> i64 {
    if family.revoked_at.is_some() { DUE_AT_ONCE } else { i64::from(expiry_day(family.expires_at)) }
}

/// A family's row as PostgreSQL holds it: the columns the queries filter
/// on, converted once, beside the encoded record.
pub(super) struct FamilyColumns {
    pub(super) generation: i64,
    pub(super) revoked_at: Option<i64>,
    pub(super) expires_at: i64,
    pub(super) expiry_day: i64,
    pub(super) client_epoch: i64,
    pub(super) record: Vec<u8>,
}

impl FamilyColumns {
    /// The columns of `family`.
    ///
    /// # Errors
    /// [`Fail::Store`] if a number is out of range or the record does not encode.
    pub(super) fn of(family: &FamilyRecord) -> Result<Self, Fail> {
        Ok(Self {
            generation: i64::from(family.generation),
            revoked_at: family.revoked_at.map(to_db).transpose()?,
            expires_at: to_db(family.expires_at)?,
            expiry_day: index_day(family),
            client_epoch: to_db(family.client_epoch)?,
            record: encode_compact(family)?,
        })
    }
}

/// Writes a family just revoked (by an operator, RFC 7009 or its client's
/// revocation), due for the purge at once.
async fn write_family(tx: &deadpool_postgres::Transaction<'_>, family: &FamilyRecord) -> Result<(), Fail> {
    let row = FamilyColumns::of(family)?;
    tx.execute(
        "UPDATE families SET revoked_at = $2, expiry_day = $3, record = $4 WHERE family_id = $1",
        &[&family.family_id.as_slice(), &row.revoked_at, &row.expiry_day, &row.record],
    )
    .await?;
    Ok(())
}

/// The read of a rotation (see [`swap_family`]).
const READ_FAMILY_SQL: &str = "SELECT record FROM families WHERE family_id = $1";

/// The compare-and-swap of a rotation: only over the row as it was read.
const SWAP_FAMILY_SQL: &str = "UPDATE families SET generation = $3, revoked_at = $4, expires_at = $5, \
     expiry_day = $6, record = $7 WHERE family_id = $1 AND generation = $2 AND revoked_at IS NULL";

/// Replaces `before` with `after` if the row is still as read (same
/// generation, not revoked); returns whether it was.
async fn swap_family(client: &Object, before: &FamilyRecord, after: &FamilyRecord) -> Result<bool, Fail> {
    let row = FamilyColumns::of(after)?;
    let swap = client.prepare_cached(SWAP_FAMILY_SQL).await?;
    let swapped = client
        .execute(
            &swap,
            &[
                &before.family_id.as_slice(),
                &i64::from(before.generation),
                &row.generation,
                &row.revoked_at,
                &row.expires_at,
                &row.expiry_day,
                &row.record,
            ],
        )
        .await?;
    Ok(swapped == 1)
}

/// Inserts a new family.
///
/// # Errors
/// [`StoreError::AlreadyExists`] if its ID is taken (another family of the
/// same second drew the same random bytes): never overwritten.
async fn insert_family(tx: &deadpool_postgres::Transaction<'_>, family: &FamilyRecord) -> Result<(), Fail> {
    let row = FamilyColumns::of(family)?;
    // Counted in the client's tally (see migration 5) in the same statement.
    let inserted = tx.execute(
        "WITH started AS ( \
             INSERT INTO families (family_id, client_id, generation, revoked_at, expires_at, expiry_day, client_epoch, record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (family_id) DO NOTHING RETURNING client_id \
         ) \
         INSERT INTO family_tally (client_id, shard, n) SELECT client_id, pg_backend_pid() % 64, 1 FROM started \
         ON CONFLICT (client_id, shard) DO UPDATE SET n = family_tally.n + 1",
        &[
            &family.family_id.as_slice(),
            &family.client_id,
            &row.generation,
            &row.revoked_at,
            &row.expires_at,
            &row.expiry_day,
            &row.client_epoch,
            &row.record,
        ],
    )
    .await?;
    if inserted == 0 {
        return Err(Fail::Store(StoreError::AlreadyExists("a refresh-token family with this ID".into())));
    }
    Ok(())
}

async fn upsert_keys(tx: &deadpool_postgres::Transaction<'_>, keys: &[KeyRecord]) -> Result<(), Fail> {
    for key in keys {
        tx.execute(
            "INSERT INTO signing_keys (kid, record) VALUES ($1, $2) ON CONFLICT (kid) DO UPDATE SET record = EXCLUDED.record",
            &[&key.kid, &encode_json(key)?],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn installation_value(&self, name: &str, init: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO tessera_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    &[&name, &init],
                )
                .await?;
            let row = client.query_one("SELECT value FROM tessera_meta WHERE name = $1", &[&name]).await?;
            Ok(row.get::<_, Vec<u8>>(0))
        })
        .await
    }

    async fn replace_installation_value(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO tessera_meta (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                    &[&name, &value],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn insert_client(&self, record: &ClientRecord) -> Result<(), StoreError> {
        let encoded = encode_json(record)?;
        let inserted = retrying(|| async {
            let client = self.client().await?;
            Ok(client
                .execute(
                    "INSERT INTO clients (client_id, record) VALUES ($1, $2) ON CONFLICT (client_id) DO NOTHING",
                    &[&record.client_id, &encoded],
                )
                .await?)
        })
        .await?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(record.client_id.clone()));
        }
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let ticket = match self.cache.get(client_id) {
            Lookup::Hit(record) => return Ok(Some(record)),
            Lookup::Miss(ticket) => ticket,
        };
        let row = retrying(|| async {
            let client = self.client().await?;
            Ok(client.query_opt("SELECT record FROM clients WHERE client_id = $1", &[&client_id]).await?)
        })
        .await?;
        let record: Option<ClientRecord> = row.map(|row| decode_json(row.get::<_, &[u8]>(0))).transpose()?;
        if let Some(record) = &record {
            self.cache.fill(ticket, record);
        }
        Ok(record)
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = retrying(|| async {
            let client = self.client().await?;
            // Byte order, as sled lists them, whatever the database's collation.
            Ok(client.query("SELECT record FROM clients ORDER BY client_id COLLATE \"C\"", &[]).await?)
        })
        .await?;
        rows.iter().map(|row| decode_json(row.get::<_, &[u8]>(0))).collect()
    }

    async fn update_client(
        &self,
        client_id: &str,
        change: &ClientChange<'_>,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let updated = retrying(|| self.try_update_client(client_id, change)).await;
        // This instance serves its own change at once; the others when
        // the trigger's notification reaches them.
        self.cache.invalidate(client_id);
        updated
    }

    async fn delete_client(&self, client_id: &str, now: UnixTime) -> Result<Option<u64>, StoreError> {
        let deleted = retrying(|| self.try_delete_client(client_id, now)).await;
        self.cache.invalidate(client_id);
        self.retire_hints.forget(client_id);
        deleted
    }

    async fn record_client_use(&self, client_id: &str, at: UnixTime) -> Result<(), StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO client_last_used (client_id, at) VALUES ($1, $2) \
                     ON CONFLICT (client_id) DO UPDATE SET at = EXCLUDED.at",
                    &[&client_id, &to_db(at)?],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn client_last_used(&self, client_id: &str) -> Result<Option<UnixTime>, StoreError> {
        let row = retrying(|| async {
            let client = self.client().await?;
            Ok(client.query_opt("SELECT at FROM client_last_used WHERE client_id = $1", &[&client_id]).await?)
        })
        .await?;
        row.map(|row| from_db(row.get(0))).transpose()
    }

    async fn create_family(&self, family: &FamilyRecord, max_families: usize) -> Result<FamilyStart, StoreError> {
        retrying(|| self.try_create_family(family, max_families)).await
    }

    async fn use_refresh_token(
        &self,
        presented: &RefreshToken,
        successor: &NewRefreshToken,
        request: &Presentation<'_>,
    ) -> Result<RefreshUse, StoreError> {
        retrying(|| self.try_use_refresh_token(presented, successor, request)).await
    }

    async fn revoke_client_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        retrying(|| self.try_revoke_client_families(client_id, now)).await
    }

    async fn count_live_families(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let count: i64 = retrying(|| async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    // A family of an epoch its client has left behind is dead too.
                    "SELECT count(*) FROM families f JOIN clients c ON c.client_id = f.client_id \
                     WHERE f.client_id = $1 AND f.revoked_at IS NULL AND f.expires_at > $2 \
                     AND f.client_epoch >= c.family_epoch",
                    &[&client_id, &to_db(now)?],
                )
                .await?;
            Ok(row.get(0))
        })
        .await?;
        from_db(count)
    }

    async fn purge_expired(&self, now: UnixTime, batch: usize) -> Result<PurgeReport, StoreError> {
        retrying(|| self.try_purge_expired(now, batch)).await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = retrying(|| async {
            let client = self.client().await?;
            Ok(client.query("SELECT record FROM signing_keys ORDER BY kid COLLATE \"C\"", &[]).await?)
        })
        .await?;
        rows.iter().map(|row| decode_json(row.get::<_, &[u8]>(0))).collect()
    }

    async fn put_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        retrying(|| async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            upsert_keys(&tx, keys).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn replace_keys(&self, expected: &[KeyRecord], changed: &[KeyRecord]) -> Result<bool, StoreError> {
        retrying(|| self.try_replace_keys(expected, changed)).await
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn key_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.key_changes.clone())
    }

    async fn health(&self) -> Result<(), StoreError> {
        let mut last = self.health.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < HEALTH_FOR
        {
            return answer
                .clone()
                .map_err(|reason| StoreError::internal("health check (answer of the last second)", reason));
        }
        // Read-only: a cheap query that also tells a primary, which takes
        // writes, from a standby, which does not.
        let answer = retrying(|| async {
            let client = self.client().await?;
            let row = client.query_one("SELECT pg_is_in_recovery()", &[]).await?;
            if row.get::<_, bool>(0) {
                return Err(Fail::Store(StoreError::internal(
                    "health check",
                    "the database is a read-only standby (in recovery)",
                )));
            }
            Ok(())
        })
        .await;
        // Kept as text: the answer is handed out again for a second, and
        // the error's source cannot be cloned.
        let kept = answer.as_ref().copied().map_err(ToString::to_string);
        *last = Some((Instant::now(), kept));
        answer
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every change was committed before its method returned.
        Ok(())
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditEvent, StoreError> {
        retrying(|| self.try_append_audit(event)).await
    }

    async fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = retrying(|| async {
            let client = self.client().await?;
            Ok(client
                .query("SELECT record FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2", &[&after, &batch_limit(limit)])
                .await?)
        })
        .await?;
        rows.iter().map(|row| decode_json(row.get::<_, &[u8]>(0))).collect()
    }

    async fn audit_latest(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = retrying(|| async {
            let client = self.client().await?;
            Ok(client.query("SELECT record FROM audit ORDER BY seq DESC LIMIT $1", &[&batch_limit(limit)]).await?)
        })
        .await?;
        let mut events: Vec<AuditEvent> =
            rows.iter().map(|row| decode_json(row.get::<_, &[u8]>(0))).collect::<Result<_, _>>()?;
        events.reverse();
        Ok(events)
    }

    async fn purge_audit(&self, keep: usize, before: UnixTime, batch: usize) -> Result<u64, StoreError> {
        retrying(|| self.try_purge_audit(keep, before, batch)).await
    }

    async fn deny_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            // A second denial keeps the later expiry.
            client
                .execute(
                    "INSERT INTO denied_jti (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) \
                     DO UPDATE SET expires_at = GREATEST(denied_jti.expires_at, EXCLUDED.expires_at)",
                    &[&jti, &to_db(expires_at)?],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn is_access_token_denied(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            let row = client
                .query_opt("SELECT 1 FROM denied_jti WHERE jti = $1 AND expires_at > $2", &[&jti, &to_db(now)?])
                .await?;
            Ok(row.is_some())
        })
        .await
    }

    async fn purge_denied(&self, now: UnixTime, batch: usize) -> Result<u64, StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            Ok(client
                .execute(
                    "WITH doomed AS (
                         SELECT jti FROM denied_jti WHERE expires_at < $1
                         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
                     )
                     DELETE FROM denied_jti d USING doomed WHERE d.jti = doomed.jti",
                    &[&to_db(now)?, &batch_limit(batch)],
                )
                .await?)
        })
        .await
    }

    async fn claim_assertion_jti(
        &self,
        client_id: &str,
        jti: &Digest32,
        until: UnixTime,
        now: UnixTime,
        max_per_client: usize,
    ) -> Result<JtiClaim, StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            let (until, now, max) = (to_db(until)?, to_db(now)?, batch_limit(max_per_client));
            // Inserted if new, or over an entry no longer remembered, and
            // only while the client has room. Concurrent claims of one jti
            // meet on the primary key: one inserts, the others find its row
            // live and change nothing. Claims of one client at the same
            // moment may each see room for one more; the cap is a bound on
            // storage, not an exact count.
            let inserted = client
                .execute(
                    "WITH room AS (
                         SELECT count(*) AS n FROM (
                             SELECT 1 FROM assertion_jti WHERE client_id = $1 AND until > $4 LIMIT $5
                         ) live
                     )
                     INSERT INTO assertion_jti (client_id, jti_digest, until)
                     SELECT $1, $2, $3 FROM room WHERE room.n < $5
                     ON CONFLICT (client_id, jti_digest) DO UPDATE SET until = EXCLUDED.until
                         WHERE assertion_jti.until <= $4",
                    &[&client_id, &jti.as_slice(), &until, &now, &max],
                )
                .await?;
            if inserted == 1 {
                return Ok(JtiClaim::First);
            }
            let seen = client
                .query_opt(
                    "SELECT 1 FROM assertion_jti WHERE client_id = $1 AND jti_digest = $2 AND until > $3",
                    &[&client_id, &jti.as_slice(), &now],
                )
                .await?;
            Ok(if seen.is_some() { JtiClaim::Replayed } else { JtiClaim::Full })
        })
        .await
    }

    async fn purge_assertion_jtis(&self, now: UnixTime, batch: usize) -> Result<u64, StoreError> {
        retrying(|| async {
            let client = self.client().await?;
            Ok(client
                .execute(
                    "WITH doomed AS (
                         SELECT client_id, jti_digest FROM assertion_jti WHERE until <= $1
                         ORDER BY until LIMIT $2 FOR UPDATE SKIP LOCKED
                     )
                     DELETE FROM assertion_jti a USING doomed
                     WHERE a.client_id = doomed.client_id AND a.jti_digest = doomed.jti_digest",
                    &[&to_db(now)?, &batch_limit(batch)],
                )
                .await?)
        })
        .await
    }

    async fn family(&self, family_id: &FamilyId) -> Result<Option<FamilyRecord>, StoreError> {
        let row = retrying(|| async {
            let client = self.client().await?;
            Ok(client.query_opt("SELECT record FROM families WHERE family_id = $1", &[&family_id.as_slice()]).await?)
        })
        .await?;
        row.map(|row| decode_compact(row.get::<_, &[u8]>(0))).transpose()
    }

    async fn revoke_family(&self, family_id: &FamilyId, now: UnixTime) -> Result<bool, StoreError> {
        retrying(|| self.try_revoke_family(family_id, now)).await
    }
}

pub mod import;

#[cfg(test)]
mod tests;
