//! `tessera-server compact`: gives the space of purged records back to the
//! file system.
//!
//! sled 0.34 reuses the space of deleted records but never shrinks its
//! files, so a data dir that once held many refresh tokens keeps its peak
//! size after they expire and are purged. Compaction copies the database
//! into a fresh one and swaps the two:
//!
//! 1. lock the data dir (a running server holds the lock, so compaction
//!    refuses to run beside it) and clean up what an interrupted compaction
//!    left ([`recover_leftovers`]);
//! 2. open the database with [`SledStore::open`], as the server does (so
//!    whatever the store does at open, it does here too), and copy every
//!    tree and entry, as stored, into `db.compact-tmp` next to `db`;
//! 3. reopen the copy from disk and check it entry for entry against what
//!    was read (count and SHA-256 per tree); restrict it to the owner
//!    (0700/0600) and fsync it;
//! 4. rename `db` to `db.old`, `db.compact-tmp` to `db`, fsync the data dir
//!    after each rename, and remove `db.old`.
//!
//! At every instant one complete database sits under a name that
//! [`recover_leftovers`] knows what to do with, which the next `compact` and
//! the next server start call before opening anything:
//!
//! | found | meaning | done |
//! |---|---|---|
//! | `db.compact-tmp` | a copy never swapped in | removed |
//! | `db.old`, no `db` | stopped between the renames | `db.old` renamed back to `db` |
//! | `db.old` and `db` | stopped after the swap | `db.old` removed |

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::config::{Config, Storage};
use crate::datadir::{DataDir, DataDirError};
use crate::store::StoreError;
use crate::store::sled::SledStore;
use crate::store::sled::compact::summarize_copy;

/// Extension of the copy being written, beside `db`: `db.compact-tmp`.
pub const TEMPORARY_EXTENSION: &str = "compact-tmp";
/// Extension of the old database while the new one takes its name: `db.old`.
pub const OLD_EXTENSION: &str = "old";

/// Why compaction failed. In every case the data dir holds a usable database.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The data dir holds no sled database.
    #[error("no Tessera database in {0}")]
    NoDatabase(PathBuf),
    /// The server is configured for PostgreSQL, which has no sled database.
    #[error(
        "compact works on the sled database in the data dir; this configuration stores in PostgreSQL \
         (use PostgreSQL's VACUUM there)"
    )]
    NotSled,
    /// A server runs on the data dir.
    #[error("{0}; stop it before compacting")]
    InUse(DataDirError),
    /// The data dir cannot be opened.
    #[error(transparent)]
    DataDir(DataDirError),
    /// Reading the database or writing the copy failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The copy read back from disk differs from what was read: it was
    /// removed and the database left as it was.
    #[error("the copy does not match the database ({0}); the database was left as it was")]
    Mismatch(String),
    /// A file-system step failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CompactError {
    let path = path.to_owned();
    move |source| CompactError::Io { what, path, source }
}

/// What an interrupted compaction had left, and what was done about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// An unfinished copy was removed.
    RemovedTemporary,
    /// The database had been renamed away and was renamed back.
    RestoredOld,
    /// The replaced database had not been removed yet; it was.
    RemovedOld,
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// The database directory.
    pub database: PathBuf,
    /// Its size before, in bytes.
    pub before: u64,
    /// Its size after, in bytes.
    pub after: u64,
    /// Trees copied (sled's own default tree included).
    pub trees: usize,
    /// Entries copied over all trees.
    pub entries: u64,
    /// What an earlier, interrupted compaction had left.
    pub recovered: Vec<Recovery>,
}

impl std::fmt::Display for CompactReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compacted {}: {} -> {} ({} entries in {} trees)",
            self.database.display(),
            human_size(self.before),
            human_size(self.after),
            self.entries,
            self.trees
        )
    }
}

/// `1.5 MiB`, `12.0 KiB`, `512 B`.
#[allow(clippy::cast_precision_loss, reason = "one decimal is shown")]
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.1} KiB", bytes as f64 / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

/// Compacts the sled database of `config`'s data dir.
///
/// # Errors
/// [`CompactError::NotSled`] when the configuration stores in PostgreSQL;
/// otherwise as [`compact`].
pub fn compact_configured(config: &Config) -> Result<CompactReport, CompactError> {
    match config.storage {
        Storage::Sled => compact(&config.data_dir),
        Storage::Postgres(_) => Err(CompactError::NotSled),
    }
}

/// Compacts the sled database in `data_dir` (see the module docs).
///
/// # Errors
/// [`CompactError`] if there is no database, a server holds the data dir,
/// or a step fails; the data dir then still holds a usable database.
pub fn compact(data_dir: &Path) -> Result<CompactReport, CompactError> {
    let database = data_dir.join("db");
    // Checked before locking, which would create a missing data dir.
    if !present(&database) && !present(&database.with_extension(OLD_EXTENSION)) {
        return Err(CompactError::NoDatabase(data_dir.to_owned()));
    }
    let dir = DataDir::open(data_dir).map_err(|e| match e {
        DataDirError::InUse(..) => CompactError::InUse(e),
        other => CompactError::DataDir(other),
    })?;
    let recovered = recover_leftovers(&dir)?;
    let database = dir.database_path();
    let temporary = database.with_extension(TEMPORARY_EXTENSION);
    let old = database.with_extension(OLD_EXTENSION);
    let before = dir_size(&database)?;

    let copied = {
        let store = SledStore::open(&database)?;
        store.copy_into(&temporary)
        // The store closes here, before anything is renamed.
    };
    let checked = copied.map_err(CompactError::from).and_then(|read| {
        let written = summarize_copy(&temporary)?;
        if written != read {
            return Err(CompactError::Mismatch(first_difference(&read, &written)));
        }
        restrict_and_sync(&temporary)?;
        Ok(read)
    });
    let read = match checked {
        Ok(read) => read,
        Err(error) => {
            // Best effort: a copy left behind is removed by the next run anyway.
            let _ = fs::remove_dir_all(&temporary);
            return Err(error);
        }
    };

    fs::rename(&database, &old).map_err(io_error("rename", &database))?;
    sync_dir(dir.path())?;
    if let Err(error) = fs::rename(&temporary, &database) {
        // Put the old one back at once rather than at the next start.
        let _ = fs::rename(&old, &database);
        return Err(CompactError::Io { what: "rename", path: temporary, source: error });
    }
    sync_dir(dir.path())?;
    // The compacted database is in place; an old one left here is removed by
    // the next start or compaction, so a failure now is not the command's.
    match fs::remove_dir_all(&old) {
        Ok(()) => sync_dir(dir.path())?,
        Err(error) => tracing::warn!(path = %old.display(), %error, "cannot remove the replaced database"),
    }

    Ok(CompactReport {
        after: dir_size(&database)?,
        database,
        before,
        trees: read.len(),
        entries: read.values().map(|tree| tree.entries).sum(),
        recovered,
    })
}

/// Finishes or undoes an interrupted compaction in `dir` (see the table in
/// the module docs). Taking the [`DataDir`] proves its lock is held.
///
/// # Errors
/// [`CompactError::Io`] if a leftover cannot be removed or renamed.
pub fn recover_leftovers(dir: &DataDir) -> Result<Vec<Recovery>, CompactError> {
    let database = dir.database_path();
    let temporary = database.with_extension(TEMPORARY_EXTENSION);
    let old = database.with_extension(OLD_EXTENSION);
    let mut done = Vec::new();
    if present(&old) {
        if present(&database) {
            // The swap happened: `db` is the verified copy.
            fs::remove_dir_all(&old).map_err(io_error("remove", &old))?;
            done.push(Recovery::RemovedOld);
        } else {
            fs::rename(&old, &database).map_err(io_error("rename", &old))?;
            done.push(Recovery::RestoredOld);
        }
    }
    if present(&temporary) {
        // Never the only copy: until it is renamed to `db`, `db` or `db.old` is whole.
        fs::remove_dir_all(&temporary).map_err(io_error("remove", &temporary))?;
        done.push(Recovery::RemovedTemporary);
    }
    if !done.is_empty() {
        sync_dir(dir.path())?;
        tracing::warn!(
            data_dir = %dir.path().display(),
            recovered = ?done,
            "an interrupted compaction had left files in the data dir; the database is whole"
        );
    }
    Ok(done)
}

/// Whether something (even a dangling symlink) has this name.
fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Bytes the files under `path` take (their lengths, as `du -b` counts).
///
/// # Errors
/// [`CompactError::Io`] if a directory cannot be listed.
pub fn dir_size(path: &Path) -> Result<u64, CompactError> {
    let mut total = 0;
    for entry in fs::read_dir(path).map_err(io_error("list", path))? {
        let entry = entry.map_err(io_error("list", path))?;
        let meta = entry.metadata().map_err(io_error("inspect", &entry.path()))?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

fn sync_dir(path: &Path) -> Result<(), CompactError> {
    File::open(path).and_then(|dir| dir.sync_all()).map_err(io_error("sync", path))
}

/// Gives the copy the data dir's modes (directories 0700, files 0600) and
/// fsyncs every file and directory in it, so its names are on disk before
/// it is renamed into place.
fn restrict_and_sync(path: &Path) -> Result<(), CompactError> {
    for entry in fs::read_dir(path).map_err(io_error("list", path))? {
        let entry = entry.map_err(io_error("list", path))?;
        let child = entry.path();
        let kind = entry.file_type().map_err(io_error("inspect", &child))?;
        if kind.is_dir() {
            restrict_and_sync(&child)?;
        } else if kind.is_file() {
            fs::set_permissions(&child, fs::Permissions::from_mode(0o600)).map_err(io_error("chmod", &child))?;
            File::open(&child).and_then(|file| file.sync_all()).map_err(io_error("sync", &child))?;
        }
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_error("chmod", path))?;
    sync_dir(path)
}

fn first_difference(
    read: &crate::store::sled::compact::Summary,
    written: &crate::store::sled::compact::Summary,
) -> String {
    for (name, tree) in read {
        let name_text = String::from_utf8_lossy(name);
        match written.get(name) {
            None => return format!("tree {name_text} is missing"),
            Some(copy) if copy.entries != tree.entries => {
                return format!("tree {name_text}: {} entries read, {} written", tree.entries, copy.entries);
            }
            Some(copy) if copy != tree => return format!("tree {name_text}: the entries differ"),
            Some(_) => {}
        }
    }
    "the copy has trees the database does not".to_owned()
}

#[cfg(test)]
mod tests;
