use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use clap::Parser as _;

use super::{CompactError, Recovery, compact, compact_configured, dir_size, human_size, recover_leftovers};
use crate::config::{Cli, Config};
use crate::datadir::DataDir;
use crate::store::Store as _;
use crate::store::records::{ClientRecord, FamilyRecord};
use crate::store::sled::SledStore;

const NOW: u64 = 1_700_000_000;
const CLIENT: &str = "oa2-client-id_compact";

fn client(name: &str) -> ClientRecord {
    ClientRecord {
        name: name.into(),
        secret_digest: [7; 32],
        scopes: vec![],
        ..crate::store::conformance::client(CLIENT)
    }
}

/// A sled database at `db` holding one client named `name`, one live
/// refresh-token family and `expired` families whose tokens have expired
/// and been purged.
async fn database(db: &Path, name: &str, expired: u32) {
    let store = SledStore::open(db).unwrap();
    store.insert_client(&client(name)).await.unwrap();
    store.create_family(&family(1, 10_000), 100_000).await.unwrap();
    for n in 0..expired {
        let mut family = family(2, 10);
        family.family_id[..4].copy_from_slice(&n.to_be_bytes());
        store.create_family(&family, 100_000).await.unwrap();
    }
    store.flush().await.unwrap();
    // In sled, not only in the journal: sled keeps the space they took.
    store.apply_checkpoint_changes().unwrap();
    while store.purge_expired(NOW + 100, 10_000).await.unwrap().families > 0 {}
    store.flush().await.unwrap();
}

fn family(id: u8, ttl: u64) -> FamilyRecord {
    crate::store::conformance::family(id, CLIENT, NOW, ttl)
}

/// The client's name in the database at `db`, opened as the server does.
async fn client_name(db: &Path) -> String {
    SledStore::open(db).unwrap().client(CLIENT).await.unwrap().expect("the client is there").name
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn compaction_shrinks_a_purged_database_and_keeps_what_lives() {
    let data = crate::datadir::private_tempdir();
    let db = data.path().join("db");
    database(&db, "kept", 4_000).await;
    let peak = dir_size(&db).unwrap();

    let report = compact(data.path()).unwrap();
    assert_eq!(report.before, peak);
    assert_eq!(report.after, dir_size(&db).unwrap());
    assert!(report.after * 2 < report.before, "{} bytes before, {} after", report.before, report.after);
    assert!(report.recovered.is_empty());
    assert!(report.to_string().starts_with(&format!("compacted {}: ", db.display())), "{report}");

    for leftover in ["db.compact-tmp", "db.old"] {
        assert!(!data.path().join(leftover).exists(), "{leftover} is gone");
    }
    assert_eq!(mode(&db), 0o700);
    for entry in std::fs::read_dir(&db).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    let store = SledStore::open(&db).unwrap();
    assert_eq!(store.client(CLIENT).await.unwrap().unwrap().name, "kept");
    assert_eq!(store.count_live_families(CLIENT, NOW + 100).await.unwrap(), 1, "the live family survived");
    assert_eq!(store.all_families().unwrap().len(), 1, "only the live family is left");
}

#[tokio::test]
async fn compaction_refuses_a_data_dir_in_use_and_leaves_it_alone() {
    let data = crate::datadir::private_tempdir();
    database(&data.path().join("db"), "busy", 0).await;
    let held = DataDir::open(data.path()).unwrap();
    let error = compact(data.path()).unwrap_err();
    assert!(matches!(error, CompactError::InUse(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("in use") && message.contains("stop it before compacting"), "{message}");
    assert!(!data.path().join("db.compact-tmp").exists());
    drop(held);
    assert_eq!(client_name(&data.path().join("db")).await, "busy");
}

#[test]
fn compaction_needs_a_database() {
    let data = crate::datadir::private_tempdir();
    assert!(matches!(compact(data.path()), Err(CompactError::NoDatabase(_))));
    let missing = data.path().join("nothing-here");
    assert!(matches!(compact(&missing), Err(CompactError::NoDatabase(_))));
    assert!(!missing.exists(), "a missing data dir is not created");
}

#[test]
fn compaction_is_for_sled_only() {
    let data = crate::datadir::private_tempdir();
    let dir = data.path().display().to_string();
    let cli = Cli::try_parse_from([
        "tessera-server",
        "--data-dir",
        &dir,
        "--storage",
        "postgres://tessera@127.0.0.1:5432/tessera",
        "compact",
    ])
    .unwrap();
    let config = Config::load(cli).unwrap();
    let error = compact_configured(&config).unwrap_err();
    assert!(matches!(error, CompactError::NotSled), "{error:?}");
    assert!(error.to_string().contains("PostgreSQL"));
}

#[tokio::test]
async fn a_stale_copy_is_removed_and_the_database_kept() {
    let data = crate::datadir::private_tempdir();
    database(&data.path().join("db"), "current", 0).await;
    // A copy cut short: some of sled's files, no more.
    database(&data.path().join("db.compact-tmp"), "stale copy", 0).await;
    std::fs::remove_file(data.path().join("db.compact-tmp").join("conf")).unwrap();
    let dir = DataDir::open(data.path()).unwrap();
    assert_eq!(recover_leftovers(&dir).unwrap(), vec![Recovery::RemovedTemporary]);
    assert!(!data.path().join("db.compact-tmp").exists());
    assert_eq!(client_name(&dir.database_path()).await, "current");
    assert!(recover_leftovers(&dir).unwrap().is_empty(), "nothing left to do");
}

#[tokio::test]
async fn a_database_renamed_away_is_renamed_back() {
    let data = crate::datadir::private_tempdir();
    // Stopped between the two renames: db.old and a finished copy, no db.
    database(&data.path().join("db.old"), "original", 0).await;
    database(&data.path().join("db.compact-tmp"), "copy", 0).await;
    let dir = DataDir::open(data.path()).unwrap();
    assert_eq!(recover_leftovers(&dir).unwrap(), vec![Recovery::RestoredOld, Recovery::RemovedTemporary]);
    assert!(!data.path().join("db.old").exists());
    assert!(!data.path().join("db.compact-tmp").exists());
    assert_eq!(client_name(&dir.database_path()).await, "original");
}

#[tokio::test]
async fn an_old_database_left_after_the_swap_is_removed() {
    let data = crate::datadir::private_tempdir();
    database(&data.path().join("db"), "compacted", 0).await;
    database(&data.path().join("db.old"), "replaced", 0).await;
    let dir = DataDir::open(data.path()).unwrap();
    assert_eq!(recover_leftovers(&dir).unwrap(), vec![Recovery::RemovedOld]);
    assert!(!data.path().join("db.old").exists());
    assert_eq!(client_name(&dir.database_path()).await, "compacted");
}

#[tokio::test]
async fn compaction_first_recovers_an_interrupted_one() {
    let data = crate::datadir::private_tempdir();
    database(&data.path().join("db.old"), "original", 0).await;
    database(&data.path().join("db.compact-tmp"), "copy", 0).await;
    let report = compact(data.path()).unwrap();
    assert_eq!(report.recovered, vec![Recovery::RestoredOld, Recovery::RemovedTemporary]);
    assert_eq!(client_name(&data.path().join("db")).await, "original");
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(human_size(512), "512 B");
    assert_eq!(human_size(1536), "1.5 KiB");
    assert_eq!(human_size(212 * 1024 * 1024 + 300 * 1024), "212.3 MiB");
}
