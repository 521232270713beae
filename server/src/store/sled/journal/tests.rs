use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::record::{self, Change, TreeId};
use super::{Journal, JournaledTrees, SegmentLimits, list_segments, segment_path};
use crate::store::StoreError;

struct Fixture {
    _dir: tempfile::TempDir,
    journal_dir: std::path::PathBuf,
    db: sled::Db,
    trees: JournaledTrees,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
    let trees = JournaledTrees::open(&db).unwrap();
    Fixture { journal_dir: dir.path().join("db.journal"), _dir: dir, db, trees }
}

fn put(tree: TreeId, key: &[u8], value: &[u8]) -> Change {
    Change { tree, key: key.to_vec(), value: Some(value.to_vec()) }
}

fn remove(tree: TreeId, key: &[u8]) -> Change {
    Change { tree, key: key.to_vec(), value: None }
}

fn write_segment(dir: &Path, number: u64, records: &[Vec<Change>]) -> Vec<u8> {
    fs::create_dir_all(dir).unwrap();
    let mut bytes = Vec::new();
    for changes in records {
        record::encode(changes, &mut bytes).unwrap();
    }
    fs::write(segment_path(dir, number), &bytes).unwrap();
    bytes
}

fn get(tree: &sled::Tree, key: &[u8]) -> Option<Vec<u8>> {
    tree.get(key).unwrap().map(|v| v.to_vec())
}

/// Commits `key = value` in the families tree through the journal.
fn commit_family(journal: &Journal, key: &[u8], value: &[u8]) -> super::Ticket {
    let ((), ticket) = journal
        .commit(|view| {
            view.insert(TreeId::Families, key, value.to_vec());
            Ok(())
        })
        .unwrap();
    ticket
}

fn open(f: &Fixture, limits: SegmentLimits) -> Journal {
    Journal::open(&f.journal_dir, &f.db, f.trees.clone(), limits).unwrap()
}

#[tokio::test]
async fn a_commit_is_in_sled_and_on_disk_in_the_segment_once_waited_for() {
    let f = fixture();
    let journal = open(&f, SegmentLimits::default());
    let commit_key = |value: &[u8]| {
        journal
            .commit(|view| {
                view.insert(TreeId::Keys, b"k1", value.to_vec());
                Ok(())
            })
            .unwrap()
            .1
    };
    let first = commit_key(b"one");
    let second = commit_key(b"two");
    assert!(second > first);
    journal.wait(second).await.unwrap();
    assert_eq!(get(&f.trees.keys, b"k1").as_deref(), Some(&b"two"[..]));
    let segments = list_segments(&f.journal_dir).unwrap();
    assert_eq!(segments.len(), 1);
    let on_disk = record::decode_segment(&fs::read(&segments[0].1).unwrap());
    let put_key = |value: &[u8]| Change { tree: TreeId::Keys, key: b"k1".to_vec(), value: Some(value.to_vec()) };
    assert_eq!(on_disk.records, vec![vec![put_key(b"one")], vec![put_key(b"two")]]);
}

/// A refresh-token tree's commit is on disk once waited for and read
/// through the journal, but reaches sled only at its segment's checkpoint,
/// and then only as its newest value.
#[tokio::test]
async fn a_checkpoint_tree_reaches_sled_at_the_checkpoint() {
    let f = fixture();
    let journal = open(&f, SegmentLimits::default());
    commit_family(&journal, b"f1", b"one");
    let second = commit_family(&journal, b"f1", b"two");
    journal.wait(second).await.unwrap();
    assert_eq!(get(&f.trees.families, b"f1"), None, "not in sled yet");
    assert_eq!(journal.get(TreeId::Families, b"f1").unwrap().as_deref(), Some(&b"two"[..]));
    let segments = list_segments(&f.journal_dir).unwrap();
    let on_disk = record::decode_segment(&fs::read(&segments[0].1).unwrap());
    assert_eq!(
        on_disk.records,
        vec![vec![put(TreeId::Families, b"f1", b"one")], vec![put(TreeId::Families, b"f1", b"two")]]
    );
    journal.settle().unwrap();
    assert_eq!(get(&f.trees.families, b"f1").as_deref(), Some(&b"two"[..]));
    assert_eq!(journal.get(TreeId::Families, b"f1").unwrap().as_deref(), Some(&b"two"[..]));
}

#[tokio::test]
async fn a_commit_without_changes_appends_nothing_but_covers_earlier_commits() {
    let f = fixture();
    let journal = open(&f, SegmentLimits::default());
    let written = commit_family(&journal, b"f1", b"one");
    let (seen, read_only) = journal.commit(|view| view.get(TreeId::Families, b"f1")).unwrap();
    // A commit sees the earlier one even before it reaches sled.
    assert_eq!(seen.as_deref(), Some(&b"one"[..]));
    assert_eq!(read_only, written);
    journal.wait(read_only).await.unwrap();
}

#[test]
fn an_error_from_the_change_set_changes_nothing() {
    let f = fixture();
    let journal = open(&f, SegmentLimits::default());
    let before = journal.ticket_now().unwrap();
    let result: Result<((), _), _> = journal.commit(|view| {
        view.insert(TreeId::Families, b"f1", b"never".to_vec());
        Err(StoreError::Corrupt("refused".into()))
    });
    assert!(matches!(result, Err(StoreError::Corrupt(_))));
    assert_eq!(journal.ticket_now().unwrap(), before);
    let (seen, _) = journal.commit(|view| view.get(TreeId::Families, b"f1")).unwrap();
    assert_eq!(seen, None);
    assert_eq!(get(&f.trees.families, b"f1"), None);
}

#[test]
fn segments_left_by_a_crash_are_replayed_in_order_then_deleted() {
    let f = fixture();
    f.trees.family_expiry.insert(b"t0", &b"stale"[..]).unwrap();
    write_segment(
        &f.journal_dir,
        7,
        &[vec![put(TreeId::Families, b"f1", b"one"), put(TreeId::FamilyExpiry, b"t0", b"fresh")]],
    );
    write_segment(
        &f.journal_dir,
        8,
        &[
            vec![put(TreeId::Families, b"f1", b"two"), put(TreeId::ClientFamilies, b"e1", b"")],
            vec![remove(TreeId::FamilyExpiry, b"t0"), put(TreeId::ClientFamilies, b"c1f1", b"")],
        ],
    );
    let journal = open(&f, SegmentLimits::default());
    assert_eq!(get(&f.trees.families, b"f1").as_deref(), Some(&b"two"[..]));
    assert_eq!(get(&f.trees.family_expiry, b"t0"), None);
    assert_eq!(get(&f.trees.client_families, b"e1").as_deref(), Some(&b""[..]));
    assert_eq!(get(&f.trees.client_families, b"c1f1").as_deref(), Some(&b""[..]));
    // Only the fresh, empty segment is left, numbered after the replayed ones.
    let segments = list_segments(&f.journal_dir).unwrap();
    assert_eq!(segments.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![9]);
    assert_eq!(fs::metadata(&segments[0].1).unwrap().len(), 0);
    drop(journal);
}

#[test]
fn a_torn_last_record_is_dropped_and_everything_before_it_replayed() {
    let f = fixture();
    let bytes = write_segment(
        &f.journal_dir,
        1,
        &[vec![put(TreeId::Families, b"f1", b"kept")], vec![put(TreeId::Families, b"f2", b"torn")]],
    );
    fs::write(segment_path(&f.journal_dir, 1), &bytes[..bytes.len() - 3]).unwrap();
    open(&f, SegmentLimits::default());
    assert_eq!(get(&f.trees.families, b"f1").as_deref(), Some(&b"kept"[..]));
    assert_eq!(get(&f.trees.families, b"f2"), None);
}

#[test]
fn damage_before_the_newest_segment_refuses_to_open() {
    let f = fixture();
    let bytes = write_segment(&f.journal_dir, 1, &[vec![put(TreeId::Families, b"f1", b"one")]]);
    fs::write(segment_path(&f.journal_dir, 1), &bytes[..bytes.len() - 1]).unwrap();
    write_segment(&f.journal_dir, 2, &[vec![put(TreeId::Families, b"f1", b"two")]]);
    let error = Journal::open(&f.journal_dir, &f.db, f.trees.clone(), SegmentLimits::default()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(ref m) if m.contains("segment 1")), "{error}");
    // Nothing was applied or deleted: an operator can still look at it.
    assert_eq!(get(&f.trees.families, b"f1"), None);
    assert_eq!(list_segments(&f.journal_dir).unwrap().len(), 2);
}

#[test]
fn a_stranger_in_the_journal_directory_refuses_to_open() {
    let f = fixture();
    fs::create_dir_all(&f.journal_dir).unwrap();
    fs::write(f.journal_dir.join("notes.txt"), b"hello").unwrap();
    let error = Journal::open(&f.journal_dir, &f.db, f.trees.clone(), SegmentLimits::default()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(ref m) if m.contains("notes.txt")), "{error}");
}

#[cfg(unix)]
#[test]
fn the_journal_directory_and_segments_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = fixture();
    let _journal = open(&f, SegmentLimits::default());
    assert_eq!(fs::metadata(&f.journal_dir).unwrap().permissions().mode() & 0o777, 0o700);
    let (_, segment) = &list_segments(&f.journal_dir).unwrap()[0];
    assert_eq!(fs::metadata(segment).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn full_segments_are_sealed_checkpointed_and_deleted() {
    let f = fixture();
    // Every append fills a segment.
    let limits = SegmentLimits { max_bytes: 1, max_age: Duration::from_secs(3600) };
    let journal = open(&f, limits);
    for i in 0..5u8 {
        let ticket = commit_family(&journal, &[i], b"v");
        journal.wait(ticket).await.unwrap();
    }
    // The checkpoint thread deletes the sealed segments after a sled flush;
    // the newest, still open one stays.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let numbers: Vec<u64> = list_segments(&f.journal_dir).unwrap().iter().map(|(n, _)| *n).collect();
        if numbers == [6] {
            break;
        }
        assert!(Instant::now() < deadline, "segments never checkpointed: {numbers:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..5u8 {
        assert_eq!(get(&f.trees.families, &[i]).as_deref(), Some(&b"v"[..]));
    }
}

#[tokio::test]
async fn an_idle_segment_is_sealed_once_old_enough() {
    let f = fixture();
    let limits = SegmentLimits { max_bytes: u64::MAX, max_age: Duration::from_millis(50) };
    let journal = open(&f, limits);
    let ticket = commit_family(&journal, b"f1", b"v");
    journal.wait(ticket).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while list_segments(&f.journal_dir).unwrap().iter().map(|(n, _)| *n).collect::<Vec<_>>() != [2] {
        assert!(Instant::now() < deadline, "the idle segment was never sealed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Once a write or sync has failed, the journal cannot promise anything
/// again: commits are refused and waiters get the error (fail closed).
#[tokio::test]
async fn after_a_failed_write_every_commit_is_refused() {
    let f = fixture();
    let journal = open(&f, SegmentLimits::default());
    journal.wait(commit_family(&journal, b"f1", b"one")).await.unwrap();
    journal.check().unwrap();
    super::fail(&journal.shared, "disk on fire");
    assert!(
        matches!(journal.check(), Err(ref e @ StoreError::Backend { .. }) if e.to_string().contains("disk on fire"))
    );
    let refused = journal.commit(|view| {
        view.insert(TreeId::Families, b"f2", b"two".to_vec());
        Ok(())
    });
    assert!(
        matches!(refused, Err(ref e @ StoreError::Backend { .. }) if e.to_string().contains("disk on fire")),
        "{refused:?}"
    );
    // A waiter for something not yet on disk learns of the failure too.
    let beyond = super::Ticket(journal.ticket_now().unwrap().0 + 1);
    let waited = journal.wait(beyond).await;
    assert!(matches!(waited, Err(ref e @ StoreError::Backend { .. }) if e.to_string().contains("disk on fire")));
    assert_eq!(get(&f.trees.families, b"f2"), None, "nothing of the refused commit reached sled");
}

/// A clean close checkpoints: sled has everything on disk and no segment
/// is left to replay.
#[tokio::test]
async fn a_clean_close_leaves_nothing_to_replay() {
    let f = fixture();
    let journal = open(&f, SegmentLimits::default());
    journal.wait(commit_family(&journal, b"f1", b"one")).await.unwrap();
    drop(journal);
    assert!(list_segments(&f.journal_dir).unwrap().is_empty());
    assert_eq!(get(&f.trees.families, b"f1").as_deref(), Some(&b"one"[..]));
}

/// A remover that fails for segment 1 only: the first time once the test
/// lets it go on (so later segments can be sealed meanwhile), at once after.
fn failing_for_the_first_segment(journal_dir: &Path, go_on: std::sync::mpsc::Receiver<()>) -> super::RemoveSegment {
    let first = segment_path(journal_dir, 1);
    let go_on = std::sync::Mutex::new(go_on);
    super::RemoveSegment(std::sync::Arc::new(move |path: &Path| {
        if path == first {
            if let Ok(go_on) = go_on.lock() {
                let _ = go_on.recv();
            }
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
        fs::remove_file(path)
    }))
}

/// Deleting in order stops at the first failure and keeps that segment and
/// every later one, on disk and queued.
#[test]
fn a_failed_deletion_keeps_that_segment_and_every_later_one() {
    let f = fixture();
    for number in 1..=3 {
        write_segment(&f.journal_dir, number, &[vec![put(TreeId::Families, b"f1", b"v")]]);
    }
    let (go_on, wait) = std::sync::mpsc::channel();
    drop(go_on);
    let remove = failing_for_the_first_segment(&f.journal_dir, wait);
    let mut queued: Vec<_> = (1..=3).map(|n| segment_path(&f.journal_dir, n)).collect();

    assert!(super::delete_in_order(&f.journal_dir, &mut queued, &remove).is_err());
    assert_eq!(queued, (1..=3).map(|n| segment_path(&f.journal_dir, n)).collect::<Vec<_>>());
    let on_disk: Vec<u64> = list_segments(&f.journal_dir).unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, [1, 2, 3], "nothing after the failed segment was deleted");

    super::delete_in_order(&f.journal_dir, &mut queued, &super::RemoveSegment::from_disk()).unwrap();
    assert!(queued.is_empty());
    assert!(list_segments(&f.journal_dir).unwrap().is_empty());
}

/// Issue 13, item 6: the checkpointer once forgot a segment it failed to
/// delete and went on deleting later ones, so the next start replayed the
/// old segment over newer values. Now the failed segment and every later
/// one stay, the journal stops taking writes, and a restart ends with the
/// last acknowledged value.
#[tokio::test]
async fn a_failed_segment_deletion_never_rolls_state_back_at_the_next_start() {
    let f = fixture();
    // Every append fills a segment, so each commit below has its own.
    let limits = SegmentLimits { max_bytes: 1, max_age: Duration::from_secs(3600) };
    let (go_on, wait) = std::sync::mpsc::channel();
    let remove = failing_for_the_first_segment(&f.journal_dir, wait);
    let journal = Journal::open_removing_with(&f.journal_dir, &f.db, f.trees.clone(), limits, remove).unwrap();

    // Segment 1 holds "one"; its deletion is held until "two" (segment 2)
    // is acknowledged and sealed too.
    journal.wait(commit_family(&journal, b"f1", b"one")).await.unwrap();
    journal.wait(commit_family(&journal, b"f1", b"two")).await.unwrap();
    go_on.send(()).unwrap();
    drop(go_on);

    let deadline = Instant::now() + Duration::from_secs(20);
    while journal.check().is_ok() {
        assert!(Instant::now() < deadline, "a failed deletion never stopped the journal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = journal.commit(|view| {
        view.insert(TreeId::Families, b"f1", b"three".to_vec());
        Ok(())
    });
    assert!(
        matches!(refused, Err(ref e @ StoreError::Backend { .. }) if e.to_string().contains("cannot delete segment")),
        "{refused:?}"
    );
    drop(journal);
    let on_disk: Vec<u64> = list_segments(&f.journal_dir).unwrap().iter().map(|(n, _)| *n).collect();
    assert!(on_disk.starts_with(&[1, 2]), "segment 2 was deleted before segment 1: {on_disk:?}");

    // The next start replays segment 1 and then 2: the acknowledged "two" stays.
    let reopened = open(&f, SegmentLimits::default());
    assert_eq!(get(&f.trees.families, b"f1").as_deref(), Some(&b"two"[..]));
    assert!(list_segments(&f.journal_dir).unwrap().len() <= 1, "the replayed segments are gone");
    drop(reopened);
}

/// The writer waits for more commits only while busy (its last batch held
/// more than one), only up to GATHER after the first pending commit, and
/// never once the batch is large or the journal is stopping.
#[test]
fn a_batch_waits_for_company_only_while_the_journal_is_busy() {
    use super::{GATHER, GATHER_BYTES, Pending, gather_wait};
    let young = Pending { buffer: vec![1; 100], first_at: Some(Instant::now()), records: 1, ..Pending::default() };
    assert_eq!(gather_wait(&young, 1), None, "idle: a lone commit is synced at once");
    assert_eq!(gather_wait(&young, 0), None);
    let wait = gather_wait(&young, 4).expect("busy: the young batch waits");
    assert!(wait <= GATHER, "{wait:?}");

    let old = Pending { first_at: Instant::now().checked_sub(GATHER * 2), ..young };
    assert_eq!(gather_wait(&old, 4), None, "waited long enough");
    let large = Pending { buffer: vec![1; GATHER_BYTES], first_at: Some(Instant::now()), ..Pending::default() };
    assert_eq!(gather_wait(&large, 4), None, "large enough");
    let stopping = Pending { stopping: true, first_at: Some(Instant::now()), buffer: vec![1], ..Pending::default() };
    assert_eq!(gather_wait(&stopping, 4), None, "the last batch goes at once");
}
