//! The reopen retry against a lock that is really held, in this process.

use std::time::Duration;

use super::*;

/// A second `open` of a directory whose database this process holds open
/// is refused by sled's `flock`, the error the retry exists for.
fn held_lock_error(dir: &Path) -> sled::Error {
    match sled::Config::new().path(dir).open() {
        Err(e) => e,
        Ok(_) => panic!("a second open of a held database must fail"),
    }
}

#[test]
fn sleds_error_for_a_held_lock_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let _held = sled::Config::new().path(dir.path()).open().unwrap();
    let error = held_lock_error(dir.path());
    assert!(is_held_lock(&error), "not recognised as a held lock: {error}");
}

#[test]
fn other_errors_are_not_taken_for_a_held_lock() {
    let other =
        sled::Error::Io(std::io::Error::other("could not acquire lock on \"x\": Os { code: 2, kind: NotFound }"));
    assert!(!is_held_lock(&other));
    assert!(!is_held_lock(&sled::Error::Io(std::io::Error::other("disk on fire"))));
    assert!(!is_held_lock(&sled::Error::Unsupported("x".into())));
    assert!(is_held_lock(&sled::Error::Io(std::io::Error::from_raw_os_error(11))) == is_would_block(11));
}

#[test]
fn the_os_error_code_is_read_from_sleds_message() {
    assert_eq!(
        os_error_code("could not acquire lock on \"/d/db\": Os { code: 11, kind: WouldBlock, message: \"x\" }"),
        Some(11)
    );
    assert_eq!(os_error_code("no code here"), None);
    assert_eq!(os_error_code("Os { code: , kind"), None);
}

#[test]
fn a_lock_held_for_the_whole_wait_fails_with_the_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = sled::Config::new().path(dir.path()).open().unwrap();
    let error = open_db_within(dir.path(), Duration::from_millis(100), || {}).unwrap_err();
    assert!(error.to_string().contains("could not acquire lock"), "{error}");
}

#[test]
fn a_lock_released_during_the_wait_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let held = sled::Config::new().path(dir.path()).open().unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let releaser = std::thread::spawn(move || {
        // Let go only once the opener has met the held lock and is retrying.
        held_rx.recv().unwrap();
        drop(held);
        crossbeam_epoch::pin().flush();
    });
    let mut retries = 0;
    let db = open_db_within(dir.path(), Duration::from_secs(30), || {
        retries += 1;
        let _ = held_tx.send(());
    })
    .expect("the lock freed during the wait is taken");
    releaser.join().unwrap();
    assert!(retries >= 1, "the open never met the held lock, so the retry was not exercised");
    db.insert(b"k", b"v").unwrap();
}

#[test]
fn a_new_database_gets_the_small_segment_size() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(segment_size(dir.path()), Some(NEW_SEGMENT_SIZE));
    drop(open_db(dir.path()).unwrap());
    let conf = std::fs::read(dir.path().join(SLED_CONF)).unwrap();
    assert_eq!(stored_segment_size(&conf), Some(NEW_SEGMENT_SIZE), "{}", String::from_utf8_lossy(&conf));
}

/// A data dir created before the size was chosen (sled's default, 512 KiB)
/// opens with its own size, keeping what it holds: sled refuses to open
/// a database with another one.
#[test]
fn an_existing_database_keeps_its_segment_size() {
    const SLED_DEFAULT: usize = 512 * 1024;
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.insert(b"kept", b"value").unwrap();
        db.flush().unwrap();
    }
    assert_eq!(segment_size(dir.path()), Some(SLED_DEFAULT));
    let db = open_db(dir.path()).unwrap();
    assert_eq!(db.get(b"kept").unwrap().as_deref(), Some(&b"value"[..]));
}

#[test]
fn sleds_parameters_are_read_from_their_lines() {
    let conf = b"segment_size: 524288\nuse_compression: false\nversion: 0.34\n\x01\x02\x03\x04";
    assert_eq!(stored_segment_size(conf), Some(524_288));
    assert_eq!(stored_segment_size(b"use_compression: false\n"), None);
    assert_eq!(stored_segment_size(b"segment_size: lots\n"), None);
    assert_eq!(stored_segment_size(&[0xff, 0xfe, b'\n']), None);
}
