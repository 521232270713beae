//! Copying a sled database, tree by tree and entry by entry, into a fresh
//! one: the heart of `tessera-server compact` (see [`crate::compact_command`]).
//!
//! sled 0.34 reuses the space of deleted records but never gives it back to
//! the file system, so a database that once held a million refresh tokens
//! keeps its size after they are purged. A fresh database written with only
//! the live entries is as small as the data. Keys and values are copied as
//! the bytes stored: nothing is decoded, so sealed signing keys stay sealed
//! and no secret passes through our types.
//!
//! The copy is checked by a [`Summary`] per tree (entry count and a SHA-256
//! of every key and value in order), computed while reading the source and
//! again from the target reopened from disk.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use ring::digest;

use super::{SledStore, backend, open_db};
use crate::store::StoreError;

/// Entries written per sled batch: large enough to amortise the batch,
/// small enough to keep a few MiB in memory at most.
const BATCH_ENTRIES: usize = 4096;

/// What one tree holds: its entries and a digest over all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    /// Key/value pairs.
    pub entries: u64,
    /// SHA-256 over every (key length, key, value length, value) in key order.
    pub digest: [u8; 32],
}

/// Every tree of a database, by name (sled's own default tree included).
pub type Summary = BTreeMap<Vec<u8>, TreeSummary>;

/// Accumulates a [`TreeSummary`] entry by entry.
struct Summer {
    entries: u64,
    context: digest::Context,
}

impl Summer {
    fn new() -> Self {
        Self { entries: 0, context: digest::Context::new(&digest::SHA256) }
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        // Lengths first, so that ("ab", "c") and ("a", "bc") differ.
        self.context.update(&(key.len() as u64).to_be_bytes());
        self.context.update(key);
        self.context.update(&(value.len() as u64).to_be_bytes());
        self.context.update(value);
        self.entries += 1;
    }

    fn finish(self) -> Result<TreeSummary, StoreError> {
        let digest = self
            .context
            .finish()
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::internal("compact", "SHA-256 gave a digest of the wrong length"))?;
        Ok(TreeSummary { entries: self.entries, digest })
    }
}

impl SledStore {
    /// Copies every tree of this database, every key and value as stored,
    /// into a new sled database created in `target`, flushes it and closes
    /// it. Returns the summary of what was read; check it against
    /// [`summarize_copy`] of `target`.
    ///
    /// Nothing else may write this database meanwhile: the caller holds the
    /// data dir's lock and serves no requests.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if `target` already exists (the copy never
    /// writes into an existing database) or reading or writing fails.
    pub fn copy_into(&self, target: &Path) -> Result<Summary, StoreError> {
        // Created here, not by sled: mode 0700 like the data dir, and
        // `create` (not `recursive`) fails if it is already there.
        DirBuilder::new()
            .mode(0o700)
            .create(target)
            .map_err(|e| StoreError::backend(format!("cannot create {}", target.display()), e))?;
        let copy = open_db(target)?;
        // The refresh-token trees' latest changes may still wait in the
        // journal for a checkpoint: copied from sled, they must be there.
        self.journal.settle()?;
        let mut summary = Summary::new();
        for (name, source) in self.journal.every_tree()? {
            let destination = copy.open_tree(&name).map_err(backend)?;
            let mut summer = Summer::new();
            let mut batch = sled::Batch::default();
            let mut pending = 0;
            for entry in source.iter() {
                let (key, value) = entry.map_err(backend)?;
                summer.add(&key, &value);
                batch.insert(key, value);
                pending += 1;
                if pending == BATCH_ENTRIES {
                    destination.apply_batch(std::mem::take(&mut batch)).map_err(backend)?;
                    pending = 0;
                }
            }
            if pending > 0 {
                destination.apply_batch(batch).map_err(backend)?;
            }
            summary.insert(name.to_vec(), summer.finish()?);
        }
        copy.flush().map_err(backend)?;
        Ok(summary)
    }
}

/// The summary of the sled database in `dir`, opened for this alone: used on
/// a copy [`SledStore::copy_into`] made and closed, so it reads what reached
/// the disk. (Only ever a fresh copy: the live database is opened through
/// [`SledStore::open`].)
///
/// # Errors
/// [`StoreError::Backend`] if the database cannot be opened or read.
pub fn summarize_copy(dir: &Path) -> Result<Summary, StoreError> {
    let db = open_db(dir)?;
    let mut summary = Summary::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).map_err(backend)?;
        let mut summer = Summer::new();
        for entry in tree.iter() {
            let (key, value) = entry.map_err(backend)?;
            summer.add(&key, &value);
        }
        summary.insert(name.to_vec(), summer.finish()?);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;
