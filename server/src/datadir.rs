//! The data directory: created private (0700) on first start, and locked so
//! that two servers never share one database.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data dir.
pub const LOCK_FILE_NAME: &str = "tessera.lock";

/// Why the data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error("data dir {0} is in use by another tessera-server (its lock file {1} is held)")]
    InUse(PathBuf, PathBuf),
    /// The directory or the lock file could not be created or opened.
    #[error("cannot use data dir {path}: {source}")]
    Io {
        /// The data dir.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// An open, locked data dir. The lock goes with the value.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Held for the life of the server; the OS releases it even on kill -9.
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed (mode 0700) and takes its lock.
    ///
    /// # Errors
    /// [`DataDirError::InUse`] if another server holds it, [`DataDirError::Io`] otherwise.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let io_error = |source| DataDirError::Io { path: path.to_owned(), source };
        DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_error)?;
        let lock_path = path.join(LOCK_FILE_NAME);
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(DataDirError::InUse(path.to_owned(), lock_path)),
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        let mode = std::fs::metadata(path).map_err(io_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data dir is readable by other users; it holds private keys: chmod 700 it"
            );
        }
        Ok(Self { path: path.to_owned(), _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the sled database lives.
    pub fn database_path(&self) -> PathBuf {
        self.path.join("db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_directory() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        let _dir = DataDir::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_second_open_is_refused_until_the_first_is_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let first = DataDir::open(parent.path()).unwrap();
        let err = DataDir::open(parent.path()).unwrap_err();
        assert!(matches!(err, DataDirError::InUse(..)), "{err}");
        assert!(err.to_string().contains("in use"));
        drop(first);
        DataDir::open(parent.path()).unwrap();
    }
}
