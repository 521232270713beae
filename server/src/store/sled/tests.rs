use std::sync::Arc;

use super::SledStore;
use crate::store::Store;
use crate::store::records::{FamilyRecord, NewRefreshToken};

fn temporary() -> Arc<dyn Store> {
    Arc::new(SledStore::temporary().expect("temporary sled"))
}

crate::conformance_tests!(temporary());

#[tokio::test]
async fn writes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = NewRefreshToken { digest: [1; 32], issued_at: 10, expires_at: 1000 };
    let family = FamilyRecord {
        family_id: [1; 16],
        client_id: "a".into(),
        scope: vec![],
        created_at: 10,
        revoked_at: None,
        current: first.digest,
        expires_at: first.expires_at,
    };
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.create_family(&family, &first).await.unwrap();
        assert_eq!(store.installation_value("k", vec![7]).await.unwrap(), vec![7]);
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.count_live_families("a", 20).await.unwrap(), 1);
    assert_eq!(store.installation_value("k", vec![8]).await.unwrap(), vec![7]);
}

#[tokio::test]
async fn a_corrupt_record_is_an_error_not_a_panic() {
    let store = SledStore::temporary().unwrap();
    store.clients.insert("oa2-client-id_x", &b"garbage"[..]).unwrap();
    assert!(matches!(store.client("oa2-client-id_x").await, Err(crate::store::StoreError::Corrupt(_))));
}
