//! `tessera-server migrate-storage --from <data dir> --to postgres://...`:
//! moves an installation from sled to PostgreSQL.
//!
//! The data dir is locked first, so no server can change the sled database
//! during the copy; everything is written in one PostgreSQL transaction, so
//! a failed copy leaves the target as it was. The target must hold no
//! clients, families, keys or audit events: merging two installations is
//! not a migration. Client secrets keep working because the client-secret
//! HMAC key (an installation value) moves with them; refresh tokens keep
//! working because their families move as they are (one record each, with
//! the digest of the current token); signing keys move with their
//! private parts exactly as stored (sealed ones stay sealed under the same
//! key-encryption key).

use std::path::{Path, PathBuf};

use crate::datadir::{DataDir, DataDirError};
use crate::store::postgres::PgStore;
use crate::store::postgres::import::Snapshot;
use crate::store::sled::SledStore;
use crate::store::{Store as _, StoreError};

/// Audit events read per page from sled.
const AUDIT_PAGE: usize = 1024;

/// Why the migration failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source data dir holds no database.
    #[error("no Tessera database in {0}")]
    NoDatabase(PathBuf),
    /// The source data dir is in use (stop its server first) or unusable.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// Reading or writing failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The target already holds an installation.
    #[error(
        "the target database already holds clients, refresh tokens, keys or audit events; migrate into an empty one"
    )]
    TargetNotEmpty,
    /// The target is not a PostgreSQL URL.
    #[error("--to must be a postgres:// or postgresql:// URL")]
    NotPostgres,
}

/// What was copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Clients.
    pub clients: usize,
    /// Refresh-token families.
    pub families: usize,
    /// Signing keys.
    pub keys: usize,
    /// Audit events.
    pub audit_events: usize,
    /// Access-token deny-list entries.
    pub denied: usize,
    /// Remembered client-assertion `jti`s (private_key_jwt).
    pub assertion_jtis: usize,
}

/// Copies the sled database in the data dir `from` into the PostgreSQL
/// database at `to` (creating its schema).
///
/// # Errors
/// [`MigrateError`] if the source is missing or in use, the target is not
/// empty, or storage fails.
pub async fn migrate_storage(from: &Path, to: &str) -> Result<MigrationReport, MigrateError> {
    if !crate::store::postgres::is_postgres_url(to) {
        return Err(MigrateError::NotPostgres);
    }
    if !from.join("db").exists() {
        return Err(MigrateError::NoDatabase(from.to_owned()));
    }
    let data_dir = DataDir::open(from)?;
    let source = SledStore::open(&data_dir.database_path())?;
    let snapshot = read_all(&source).await?;
    let target = PgStore::connect(to).await?;
    if !target.is_empty().await? {
        return Err(MigrateError::TargetNotEmpty);
    }
    target.import(&snapshot).await?;
    Ok(MigrationReport {
        clients: snapshot.clients.len(),
        families: snapshot.families.len(),
        keys: snapshot.keys.len(),
        audit_events: snapshot.audit.len(),
        denied: snapshot.denied.len(),
        assertion_jtis: snapshot.assertion_jtis.len(),
    })
}

async fn read_all(source: &SledStore) -> Result<Snapshot, StoreError> {
    let mut audit = Vec::new();
    let mut after = 0;
    loop {
        let page = source.audit_after(after, AUDIT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let full = page.len() == AUDIT_PAGE;
        audit.extend(page);
        if !full {
            break;
        }
    }
    Ok(Snapshot {
        meta: source.meta_entries()?,
        clients: source.clients().await?,
        last_used: source.last_used_entries()?,
        families: source.all_families()?,
        keys: source.keys().await?,
        audit,
        denied: source.denied_entries()?,
        assertion_jtis: source.assertion_jti_entries()?,
    })
}
