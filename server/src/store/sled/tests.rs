use std::sync::Arc;

use super::SledStore;
use crate::store::Store;
use crate::store::records::{FamilyRecord, NewRefreshToken};

fn temporary() -> Arc<dyn Store> {
    Arc::new(SledStore::temporary().expect("temporary sled"))
}

crate::conformance_tests!(temporary());

/// Stores the family's client and starts the family.
async fn start(store: &SledStore, family: &FamilyRecord, first: &NewRefreshToken) {
    store.insert_client(&crate::store::conformance::client(&family.client_id)).await.unwrap();
    let started = store.create_family(family, first, 1000).await.unwrap();
    assert_eq!(started, crate::store::FamilyStart::Started { retired: 0 });
}

/// A new family of `client_id` whose first token is `first`.
fn family(id: u8, client_id: &str, first: &NewRefreshToken) -> FamilyRecord {
    FamilyRecord {
        family_id: [id; 16],
        client_id: client_id.into(),
        scope: vec![],
        created_at: first.issued_at,
        revoked_at: None,
        current: first.digest,
        expires_at: first.expires_at,
    }
}

#[tokio::test]
async fn writes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = NewRefreshToken { digest: [1; 32], issued_at: 10, expires_at: 1000 };
    let family = family(1, "a", &first);
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        start(&store, &family, &first).await;
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
    let first = NewRefreshToken { digest: [2; 32], issued_at: 10, expires_at: 1000 };
    let family = family(2, "b", &first);
    drop(SledStore::open(&db).unwrap());
    copy_dir(&db, &snapshot);
    let store = SledStore::open(&db).unwrap();
    start(&store, &family, &first).await;
    // The crash: none of the store's closing (a last checkpoint) runs.
    std::mem::forget(store);
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::rename(&snapshot, &db).unwrap();

    let store = SledStore::open(&db).unwrap();
    let (token, stored_family) = store.refresh_token(&first.digest).await.unwrap().expect("replayed");
    assert_eq!(token.family_id, family.family_id);
    assert_eq!(stored_family, family);
    assert_eq!(store.count_live_families("b", 20).await.unwrap(), 1);
}

/// The family count kept for the cap follows live clients: a deleted
/// client's entry goes with it, so the map does not grow with deletions.
#[tokio::test]
async fn a_deleted_clients_family_count_goes_with_it() {
    let store = SledStore::temporary().unwrap();
    let first = NewRefreshToken { digest: [1; 32], issued_at: 1_700_000_000, expires_at: 1_700_000_100 };
    start(&store, &family(1, "a", &first), &first).await;
    assert_eq!(store.family_counts().get("a"), Some(&1));
    store.delete_client("a", 1_700_000_001).await.unwrap();
    assert_eq!(store.family_counts().get("a"), None);
}
