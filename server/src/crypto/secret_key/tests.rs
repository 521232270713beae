use std::sync::Arc;

use super::*;
use crate::store::sled::SledStore;

fn kek(byte: u8) -> Kek {
    Kek::from_bytes(&[byte; 32]).unwrap()
}

async fn stored(store: &dyn Store) -> Vec<u8> {
    store.installation_value(SECRET_KEY_NAME, vec![0xEE]).await.unwrap()
}

/// With a KEK, a new installation stores the key sealed: the stored value
/// holds no copy of it, and only that KEK opens it.
#[tokio::test]
async fn with_a_kek_the_key_is_stored_sealed() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let fresh = [7u8; 32];
    let key = load(store.as_ref(), Some(&kek(1)), fresh).await.unwrap();
    assert_eq!(key, fresh);
    let at_rest = stored(store.as_ref()).await;
    assert!(at_rest.starts_with(SEALED_PREFIX), "sealed");
    assert!(!at_rest.windows(8).any(|w| w == [7u8; 8]), "no plain copy of the key at rest");
    assert_eq!(load(store.as_ref(), Some(&kek(1)), [9; 32]).await.unwrap(), fresh, "the same key next start");
    let wrong = load(store.as_ref(), Some(&kek(2)), [9; 32]).await.unwrap_err();
    assert!(matches!(wrong, SecretKeyError::WrongKek), "{wrong}");
    assert!(wrong.to_string().contains("does not decrypt"), "{wrong}");
    let error = load(store.as_ref(), None, [9; 32]).await.unwrap_err();
    assert!(matches!(error, SecretKeyError::SealedWithoutKek), "{error}");
    assert!(error.to_string().contains("encrypted at rest"), "{error}");
}

/// An installation that stored the key in plain text keeps its key (every
/// client secret keeps working) and has it sealed once a KEK is configured.
#[tokio::test]
async fn a_plain_key_is_sealed_when_a_kek_is_configured() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let plain = load(store.as_ref(), None, [3; 32]).await.unwrap();
    assert_eq!(plain, [3; 32]);
    assert_eq!(stored(store.as_ref()).await, [3; 32], "no KEK: stored as before");
    assert_eq!(load(store.as_ref(), Some(&kek(1)), [9; 32]).await.unwrap(), plain, "the same key");
    let at_rest = stored(store.as_ref()).await;
    assert!(at_rest.starts_with(SEALED_PREFIX), "sealed at this start");
    assert_eq!(load(store.as_ref(), Some(&kek(1)), [9; 32]).await.unwrap(), plain, "and opened at the next");
}

#[test]
fn malformed_values_are_refused() {
    assert!(matches!(decode(&[1; 31]), Err(SecretKeyError::Malformed)));
    assert!(matches!(decode(SEALED_PREFIX), Err(SecretKeyError::Malformed)));
    assert!(matches!(decode(&[1; 32]), Ok(None)));
}
