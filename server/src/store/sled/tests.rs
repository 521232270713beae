use std::sync::Arc;

use super::SledStore;
use crate::grant::refresh::Verdict;
use crate::grant::refresh::token::RefreshToken;
use crate::store::records::FamilyRecord;
use crate::store::{RefreshUse, Store, conformance};

fn temporary() -> Arc<dyn Store> {
    Arc::new(SledStore::temporary().expect("temporary sled"))
}

crate::conformance_tests!(temporary());

/// Stores the family's client and starts the family.
async fn start(store: &SledStore, family: &FamilyRecord) {
    store.insert_client(&conformance::client(&family.client_id)).await.unwrap();
    let started = store.create_family(family, 1000).await.unwrap();
    assert_eq!(started, crate::store::FamilyStart::Started { retired: 0 });
}

/// Issue 12: a family is one record however often it rotates, and a
/// rotation within the same expiry day writes nothing else.
#[tokio::test]
async fn rotations_overwrite_one_record() {
    let store = SledStore::temporary().unwrap();
    let now = 1_700_000_000;
    start(&store, &conformance::family(1, "a", now, 1000)).await;
    let mut token = conformance::first_token(1);
    for n in 0..200u64 {
        let next = conformance::successor(7, now + n, 1000);
        let RefreshUse::Decided { verdict, family } =
            store.use_refresh_token(&token, &next, &conformance::by_a(now + n)).await.unwrap()
        else {
            panic!("the family is known")
        };
        assert_eq!(verdict, Verdict::Rotate);
        token = RefreshToken { family_id: family.family_id, generation: family.generation, secret: next.secret };
    }
    store.flush().await.unwrap();
    assert_eq!(store.families.len(), 1);
    assert_eq!(store.client_families.len(), 1);
    assert_eq!(store.family_expiry.len(), 1, "the expiry stayed within one day");
    assert_eq!(store.family(&[1; 10]).await.unwrap().unwrap().generation, 200);
}

#[tokio::test]
async fn writes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let family = conformance::family(1, "a", 10, 990);
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        start(&store, &family).await;
        assert_eq!(store.installation_value("k", vec![7]).await.unwrap(), vec![7]);
    }
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    assert_eq!(store.count_live_families("a", 20).await.unwrap(), 1);
    assert_eq!(store.installation_value("k", vec![8]).await.unwrap(), vec![7]);
}

#[tokio::test]
async fn a_corrupt_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        store.clients.insert("oa2-client-id_x", &b"garbage"[..]).unwrap();
        store.flush().await.unwrap();
    }
    // Opened again, the unreadable record is met on lookup, not at the start.
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    assert!(matches!(store.client("oa2-client-id_x").await, Err(crate::store::StoreError::Corrupt(_))));
    assert!(matches!(store.client("oa2-client-id_y").await, Ok(None)));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A crash in which sled kept none of an acknowledged write (its files as
/// they were before it) while the journal had synced it: reopening replays
/// the journal, and the write is there.
#[tokio::test]
async fn an_acknowledged_write_sled_lost_is_replayed_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let snapshot = dir.path().join("db-before");
    let family = conformance::family(2, "b", 10, 990);
    drop(SledStore::open(&db).unwrap());
    copy_dir(&db, &snapshot);
    let store = SledStore::open(&db).unwrap();
    start(&store, &family).await;
    // The crash: none of the store's closing (a last checkpoint) runs.
    std::mem::forget(store);
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::rename(&snapshot, &db).unwrap();

    let store = SledStore::open(&db).unwrap();
    assert_eq!(store.family(&family.family_id).await.unwrap(), Some(family.clone()), "replayed");
    // Its index entry too (the client itself, written outside the journal
    // before the snapshot was restored, is not part of this test).
    assert_eq!(store.family_ids_of("b").unwrap(), vec![family.family_id]);
}

/// The family count kept for the cap follows live clients: a deleted
/// client's entry goes with it, so the map does not grow with deletions.
#[tokio::test]
async fn a_deleted_clients_family_count_goes_with_it() {
    let store = SledStore::temporary().unwrap();
    start(&store, &conformance::family(1, "a", 1_700_000_000, 100)).await;
    assert_eq!(store.family_counts().get("a"), Some(&1));
    store.delete_client("a", 1_700_000_001).await.unwrap();
    assert_eq!(store.family_counts().get("a"), None);
}
