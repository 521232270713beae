//! The storage format a sled data dir holds, recorded in `meta` under
//! `storage_format` (u32 big-endian).
//!
//! Format 1 (before issue 12, no marker) kept one record per refresh token;
//! format 2 keeps one per family and its tokens name their family. Old
//! tokens cannot name theirs, so a format-1 data dir is refused at start,
//! with one line, rather than read as the new layout. A fresh database is
//! marked with the current format before anything else is written to it.

use crate::store::StoreError;

use super::backend;

/// The format this build reads and writes.
pub const CURRENT: u32 = 2;

/// Where the format is recorded.
const KEY: &str = "storage_format";

/// What an operator with a format-1 data dir can do.
const WHAT_TO_DO: &str = "keep running the previous release on it, or start this one with a new --data-dir \
     (clients and signing keys must then be created again; existing refresh tokens cannot be carried over)";

/// Checks the format of `db`, marking a fresh one with [`CURRENT`].
///
/// # Errors
/// [`StoreError::Format`] if it holds another format;
/// [`StoreError::Backend`] if it cannot be read or marked.
pub fn check_or_initialise(db: &sled::Db) -> Result<(), StoreError> {
    let found = found(db)?;
    match found {
        Some(CURRENT) => Ok(()),
        Some(other) => Err(refused(other)),
        None => {
            let meta = db.open_tree("meta").map_err(backend)?;
            meta.insert(KEY, &CURRENT.to_be_bytes()).map_err(backend)?;
            db.flush().map_err(backend)?;
            Ok(())
        }
    }
}

fn refused(found: u32) -> StoreError {
    StoreError::Format { what: "the data dir", found, expected: CURRENT, what_to_do: WHAT_TO_DO }
}

/// The format recorded, 1 for a database written before formats were
/// recorded, `None` for a fresh one.
fn found(db: &sled::Db) -> Result<Option<u32>, StoreError> {
    let names = db.tree_names();
    let has = |name: &str| names.iter().any(|n| n.as_ref() == name.as_bytes());
    if has("meta") {
        let meta = db.open_tree("meta").map_err(backend)?;
        if let Some(raw) = meta.get(KEY).map_err(backend)? {
            let bytes: [u8; 4] = raw
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("the storage format marker has the wrong length".into()))?;
            return Ok(Some(u32::from_be_bytes(bytes)));
        }
    }
    // No marker: format 1 if anything of a store is there (its per-token
    // tree, or any stored record), fresh otherwise.
    for name in &names {
        if name.as_ref() == b"__sled__default" {
            continue;
        }
        if name.as_ref() == b"refresh_tokens" || !db.open_tree(name).map_err(backend)?.is_empty() {
            return Ok(Some(1));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::{SledStore, open_db};

    #[test]
    fn a_fresh_database_gets_the_current_format_and_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(SledStore::open(&path).unwrap());
        let db = open_db(&path).unwrap();
        assert_eq!(found(&db).unwrap(), Some(CURRENT));
        check_or_initialise(&db).unwrap();
    }

    #[test]
    fn a_format_1_database_is_refused_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            // The old layout: a per-token tree, a client, no marker.
            let db = open_db(&path).unwrap();
            db.open_tree("refresh_tokens").unwrap().insert([1u8; 32], &[0u8][..]).unwrap();
            db.open_tree("clients").unwrap().insert("oa2-client-id_x", &b"{}"[..]).unwrap();
            db.open_tree("meta").unwrap().insert("secret_hmac_key", &[7u8; 32][..]).unwrap();
            db.flush().unwrap();
        }
        let Err(error) = SledStore::open(&path) else { panic!("an old data dir was opened") };
        assert!(matches!(error, StoreError::Format { found: 1, expected: CURRENT, .. }), "{error:?}");
        let line = error.to_string();
        assert!(line.contains("storage format 1") && line.contains("needs format 2"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
        // Refusing wrote nothing: it is still format 1.
        let db = open_db(&path).unwrap();
        assert_eq!(found(&db).unwrap(), Some(1));
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = open_db(&path).unwrap();
            db.open_tree("meta").unwrap().insert(KEY, &9u32.to_be_bytes()[..]).unwrap();
            db.flush().unwrap();
        }
        let Err(error) = SledStore::open(&path) else { panic!("a newer data dir was opened") };
        assert!(matches!(error, StoreError::Format { found: 9, .. }), "{error:?}");
    }
}
