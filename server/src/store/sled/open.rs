//! Opening the sled database, waiting out a lock this process still holds.
//!
//! sled releases its file lock only when the last reference to its file
//! goes, and some of those are garbage deferred to its epoch collector
//! (crossbeam-epoch's global one): freed only once the epoch advances,
//! which in a quiet process can be never. Reopening the same directory in
//! this process (compaction does, tests do) can then find the lock still
//! held. That one error is retried for a bounded time, each time pushing
//! this thread's deferred garbage to the collector and advancing the epoch.
//! Another process holding the database is kept out earlier, by the data
//! dir's own lock.
//!
//! A database this creates gets [`NEW_SEGMENT_SIZE`]; one that exists is
//! opened with the segment size it was created with, since sled refuses
//! any other.

use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{CACHE_CAPACITY, backend};
use crate::store::StoreError;

/// How long [`open_db`] waits for a lock this process may still hold.
const RELOCK_WAIT: Duration = Duration::from_secs(5);

/// How long one wait between two attempts lasts.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// sled's log segment (and IO buffer) size for a database created here.
///
/// sled keeps a handful of segments of slack in its file whatever it holds
/// (it starts relocating the live pages out of the file's tail only once
/// more than five segments are inactive), so the segment size sets the
/// floor of the file under a steady stream of overwrites. Measured under
/// the benchmark's rotation load (50 families rotated 2,000 times each):
/// sled's default of 512 KiB plateaus at 3.5–4.7 MiB, 256 KiB at
/// 1.8–2.6 MiB, 128 KiB at 1.0 MiB. 256 KiB still keeps every value up to
/// 64 KiB (a quarter of a segment) in the log, where 128 KiB would move a
/// leaf of large key records out to blob files of their own.
const NEW_SEGMENT_SIZE: usize = 256 * 1024;

/// The name of the file in which sled keeps the parameters a database was
/// created with, one `name: value` line each.
const SLED_CONF: &str = "conf";

/// Opens the sled database in `dir`, retrying for up to [`RELOCK_WAIT`]
/// while its lock is held.
///
/// # Errors
/// [`StoreError::Backend`] if sled cannot open it, including a lock still
/// held when the wait runs out.
pub(super) fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    open_db_within(dir, RELOCK_WAIT, || {})
}

/// [`open_db`] with the wait given, calling `on_held` each time the lock is
/// found held before waiting again: tests use a short wait, and the
/// callback to act while the retry is under way.
fn open_db_within(dir: &Path, wait: Duration, mut on_held: impl FnMut()) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + wait;
    loop {
        // No flush of sled's own every 500 ms: every write is durable in
        // the journal first, and the journal's checkpoints flush sled when
        // they need it on disk, so those flushes only took CPU (and latency)
        // from requests.
        let mut config = sled::Config::new().path(dir).cache_capacity(CACHE_CAPACITY).flush_every_ms(None);
        if let Some(size) = segment_size(dir) {
            config = config.segment_size(size);
        }
        match config.open() {
            Err(e) if is_held_lock(&e) && Instant::now() < deadline => {
                on_held();
                crossbeam_epoch::pin().flush();
                // A bounded wait at open, not on any request's path.
                std::thread::park_timeout(RETRY_PAUSE);
            }
            result => return result.map_err(backend),
        }
    }
}

/// The segment size to open the database in `dir` with: the one it was
/// created with, or [`NEW_SEGMENT_SIZE`] if there is none yet; `None`
/// (sled's default, which sled then checks against the file) if its
/// parameters cannot be read here.
fn segment_size(dir: &Path) -> Option<usize> {
    match std::fs::read(dir.join(SLED_CONF)) {
        Err(e) if e.kind() == ErrorKind::NotFound => Some(NEW_SEGMENT_SIZE),
        Err(_) => None,
        Ok(conf) => stored_segment_size(&conf),
    }
}

/// The `segment_size: N` line of sled's parameters file (lines of text
/// followed by a checksum).
fn stored_segment_size(conf: &[u8]) -> Option<usize> {
    conf.split(|&byte| byte == b'\n')
        .find_map(|line| line.strip_prefix(b"segment_size: "))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.trim().parse().ok())
}

/// Whether `error` is sled failing to take its file lock because someone
/// holds it.
///
/// sled 0.34 does not pass the OS error on: it wraps `flock`'s error in a
/// new `io::Error` of kind `Other` whose message carries the original's
/// `Debug` form, `could not acquire lock on "…": Os { code: 11, kind:
/// WouldBlock, … }`. So the OS error code is read back out of that text
/// and judged by the standard library's own mapping (EAGAIN/EWOULDBLOCK),
/// rather than by matching the kind's name. Should a later sled pass the
/// OS error through, [`std::io::Error::raw_os_error`] is asked first.
fn is_held_lock(error: &sled::Error) -> bool {
    let sled::Error::Io(io) = error else {
        return false;
    };
    if let Some(code) = io.raw_os_error() {
        return is_would_block(code);
    }
    let message = io.to_string();
    message.starts_with("could not acquire lock on ") && os_error_code(&message).is_some_and(is_would_block)
}

/// Whether the OS error `code` means "would block" on this platform.
fn is_would_block(code: i32) -> bool {
    std::io::Error::from_raw_os_error(code).kind() == ErrorKind::WouldBlock
}

/// The `code` of the last `Os { code: N, … }` in `message`.
fn os_error_code(message: &str) -> Option<i32> {
    const MARKER: &str = "Os { code: ";
    let start = message.rfind(MARKER)? + MARKER.len();
    let digits: String = message[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests;
