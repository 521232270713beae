//! The ring built from a key set.

use std::sync::Arc;

use tessera_shared::admin::KeyState;
use tessera_shared::jwk::Algorithm;

use super::*;
use crate::clock::testing::ManualClock;
use crate::store::Store;
use crate::store::sled::SledStore;

#[tokio::test]
async fn first_start_creates_an_active_and_a_next_key() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let manager = testing::manager(store.clone(), Arc::new(ManualClock::at(100)), Algorithm::ES256).await;
    let ring = manager.handle().current();
    assert_eq!(ring.jwks().keys.len(), 2);
    assert_eq!(ring.jwks().keys[0].kid.as_deref(), Some(ring.signer().kid()));
    let states: Vec<KeyState> = ring.infos().iter().map(|k| k.state).collect();
    assert_eq!(states, [KeyState::Active, KeyState::Next]);
    assert_eq!(ring.infos()[0].activated_at, Some(100));
    assert_eq!(store.keys().await.unwrap().len(), 2, "both stored");
}

#[tokio::test]
async fn later_starts_reuse_the_stored_keys() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let first = testing::manager(store.clone(), Arc::new(ManualClock::at(100)), Algorithm::ES256).await;
    let second = testing::manager(store.clone(), Arc::new(ManualClock::at(200)), Algorithm::ES256).await;
    assert_eq!(first.handle().current().signer().kid(), second.handle().current().signer().kid());
    assert_eq!(first.handle().current().jwks_json(), second.handle().current().jwks_json());
}

#[tokio::test]
async fn a_corrupt_private_key_is_refused() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let manager = testing::manager(store.clone(), Arc::new(ManualClock::at(100)), Algorithm::ES256).await;
    let kid = manager.handle().current().signer().kid().to_owned();
    let mut records = store.keys().await.unwrap();
    for record in &mut records {
        if record.kid == kid {
            record.private_pkcs8 = b"not a key".to_vec();
        }
    }
    store.put_keys(&records).await.unwrap();
    let settings = manager::KeySettings { alg: Algorithm::ES256, timing: testing::TIMING };
    assert!(
        KeyManager::start(
            store.clone(),
            Arc::new(ManualClock::at(100)),
            settings,
            None,
            crate::audit::Audit::new(store, Arc::new(ManualClock::at(100)))
        )
        .await
        .is_err()
    );
}
