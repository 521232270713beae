//! The data directory: created private (0700) on first start, refused when
//! other users could reach it (as PostgreSQL refuses a loose `PGDATA`), and
//! locked so that two servers never share one database.
//!
//! [`private_umask`] makes every file the process creates afterwards 0600
//! and every directory 0700, whatever creates it (sled, the journal, the
//! admin socket).

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt as _, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data dir.
pub const LOCK_FILE_NAME: &str = "tessera.lock";

/// Why the data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error("data dir {0} is in use by another tessera-server (its lock file {1} is held)")]
    InUse(PathBuf, PathBuf),
    /// Other users may read or enter the directory.
    #[error(
        "data dir {path} has mode {mode:04o}: other users can reach the private signing keys in it; \
         run `chmod 700 {path}`"
    )]
    TooOpen {
        /// The data dir.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The directory belongs to another user.
    #[error(
        "data dir {path} belongs to uid {owner}, not to uid {uid} that runs tessera-server; \
         run `chown -R {uid} {path}` or start the server as its owner"
    )]
    WrongOwner {
        /// The data dir.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective user ID of this process.
        uid: u32,
    },
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
    /// Creates the directory if needed (mode 0700), checks that it is
    /// private to this user, and takes its lock.
    ///
    /// # Errors
    /// [`DataDirError::TooOpen`] or [`DataDirError::WrongOwner`] for a
    /// directory other users can reach, [`DataDirError::InUse`] if another
    /// server holds it, [`DataDirError::Io`] otherwise.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let io_error = |source| DataDirError::Io { path: path.to_owned(), source };
        DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_error)?;
        check_private(path, &std::fs::metadata(path).map_err(io_error)?, rustix::process::geteuid().as_raw())?;
        let lock_path = path.join(LOCK_FILE_NAME);
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(DataDirError::InUse(path.to_owned(), lock_path)),
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
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

/// Sets the process's umask to 077, so that every file created from now on
/// is 0600 and every directory 0700. Call it first thing in `main`, before
/// anything is created.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Refuses a data dir that another user owns or may read, write or enter.
fn check_private(path: &Path, meta: &std::fs::Metadata, uid: u32) -> Result<(), DataDirError> {
    if meta.uid() != uid {
        return Err(DataDirError::WrongOwner { path: path.to_owned(), owner: meta.uid(), uid });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(DataDirError::TooOpen { path: path.to_owned(), mode });
    }
    Ok(())
}

/// A temporary directory with mode 0700, as [`DataDir::open`] demands.
#[cfg(test)]
pub(crate) fn private_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().permissions(std::fs::Permissions::from_mode(0o700)).tempdir().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_directory() {
        let parent = private_tempdir();
        let path = parent.path().join("data");
        let _dir = DataDir::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_second_open_is_refused_until_the_first_is_dropped() {
        let parent = private_tempdir();
        let first = DataDir::open(parent.path()).unwrap();
        let err = DataDir::open(parent.path()).unwrap_err();
        assert!(matches!(err, DataDirError::InUse(..)), "{err}");
        assert!(err.to_string().contains("in use"));
        drop(first);
        DataDir::open(parent.path()).unwrap();
    }

    #[test]
    fn a_directory_other_users_can_reach_is_refused() {
        let parent = private_tempdir();
        for mode in [0o755, 0o750, 0o701, 0o710, 0o707] {
            std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let err = DataDir::open(parent.path()).unwrap_err();
            assert!(matches!(err, DataDirError::TooOpen { .. }), "{mode:o}: {err}");
            let text = err.to_string();
            assert!(text.contains(&format!("{mode:04o}")) && text.contains("chmod 700"), "{text}");
        }
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        DataDir::open(parent.path()).unwrap();
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let parent = private_tempdir();
        let meta = std::fs::metadata(parent.path()).unwrap();
        let other = meta.uid().wrapping_add(1);
        let err = check_private(parent.path(), &meta, other).unwrap_err();
        assert!(matches!(err, DataDirError::WrongOwner { .. }), "{err}");
        assert!(err.to_string().contains("chown"), "{err}");
        check_private(parent.path(), &meta, meta.uid()).unwrap();
    }
}
