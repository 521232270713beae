//! The signing keys in use: the active key that signs, and the public key
//! set (JWKS) that resource servers fetch.
//!
//! On first start the server creates two keys: the active one and the next
//! one, published before it signs anything, so that a later rotation never
//! produces a token signed by a key that resource servers have not seen.

use bytes::Bytes;
use ring::rand::SystemRandom;
use tessera_shared::admin::{KeyInfo, KeyState};
use tessera_shared::jwk::{Algorithm, JwkSet};

use crate::clock::UnixTime;
use crate::crypto::CryptoError;
use crate::crypto::signing::{JwtSigner, generate_pkcs8};
use crate::store::records::KeyRecord;
use crate::store::{Store, StoreError};

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be generated or parsed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The stored keys are inconsistent.
    #[error("the stored signing keys are inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// The loaded keys. Immutable; a rotation builds a new ring.
#[derive(Debug)]
pub struct KeyRing {
    signer: JwtSigner,
    jwks: JwkSet,
    jwks_json: Bytes,
    infos: Vec<KeyInfo>,
}

impl KeyRing {
    /// Loads the stored keys, creating the active and next keys with `alg`
    /// if they do not exist yet.
    ///
    /// # Errors
    /// [`KeyError`] if storage fails or a stored key does not parse.
    pub async fn load_or_create(store: &dyn Store, alg: Algorithm, now: UnixTime) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let mut records = store.keys().await?;
        let mut created = Vec::new();
        for state in [KeyState::Active, KeyState::Next] {
            if !records.iter().any(|k| k.state == state) {
                created.push(new_key(alg, state, now, &rng)?);
            }
        }
        if !created.is_empty() {
            store.put_keys(&created).await?;
            records.extend(created);
        }
        Self::from_records(&records, rng)
    }

    fn from_records(records: &[KeyRecord], rng: SystemRandom) -> Result<Self, KeyError> {
        let mut active = records.iter().filter(|k| k.state == KeyState::Active);
        let active_key = active.next().ok_or(KeyError::Inconsistent("no active key"))?;
        if active.next().is_some() {
            return Err(KeyError::Inconsistent("more than one active key"));
        }
        let signer = JwtSigner::from_pkcs8(active_key.alg, &active_key.private_pkcs8, rng)?;
        if signer.kid() != active_key.kid {
            return Err(KeyError::Inconsistent("the active key's kid does not match its private key"));
        }
        let mut published: Vec<&KeyRecord> = records
            .iter()
            .filter(|k| matches!(k.state, KeyState::Active | KeyState::Next | KeyState::Retiring))
            .collect();
        // Active first, then next, then retiring: the order a reader expects.
        published.sort_by_key(|k| match k.state {
            KeyState::Active => 0,
            KeyState::Next => 1,
            _ => 2,
        });
        let jwks = JwkSet { keys: published.iter().map(|k| k.public_jwk.clone()).collect() };
        let jwks_json =
            Bytes::from(serde_json::to_vec(&jwks).map_err(|_| KeyError::Inconsistent("the JWKS does not serialise"))?);
        let infos = records
            .iter()
            .map(|k| KeyInfo { kid: k.kid.clone(), alg: k.alg.to_string(), state: k.state, created_at: k.created_at })
            .collect();
        Ok(Self { signer, jwks, jwks_json, infos })
    }

    /// The key that signs new access tokens.
    pub fn signer(&self) -> &JwtSigner {
        &self.signer
    }

    /// The published key set.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The published key set, serialised once.
    pub fn jwks_json(&self) -> Bytes {
        self.jwks_json.clone()
    }

    /// Every key, without private parts.
    pub fn infos(&self) -> &[KeyInfo] {
        &self.infos
    }
}

fn new_key(alg: Algorithm, state: KeyState, now: UnixTime, rng: &SystemRandom) -> Result<KeyRecord, KeyError> {
    let pkcs8 = generate_pkcs8(alg, rng)?;
    let signer = JwtSigner::from_pkcs8(alg, &pkcs8, rng.clone())?;
    Ok(KeyRecord {
        kid: signer.kid().to_owned(),
        alg,
        state,
        created_at: now,
        private_pkcs8: pkcs8,
        public_jwk: signer.public_jwk().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::SledStore;

    #[tokio::test]
    async fn first_start_creates_an_active_and_a_next_key() {
        let store = SledStore::temporary().unwrap();
        let ring = KeyRing::load_or_create(&store, Algorithm::ES256, 100).await.unwrap();
        assert_eq!(ring.jwks().keys.len(), 2);
        assert_eq!(ring.jwks().keys[0].kid.as_deref(), Some(ring.signer().kid()));
        let states: Vec<KeyState> = ring.infos().iter().map(|k| k.state).collect();
        assert!(states.contains(&KeyState::Active) && states.contains(&KeyState::Next));
    }

    #[tokio::test]
    async fn later_starts_reuse_the_stored_keys() {
        let store = SledStore::temporary().unwrap();
        let first = KeyRing::load_or_create(&store, Algorithm::ES256, 100).await.unwrap();
        let second = KeyRing::load_or_create(&store, Algorithm::EdDSA, 200).await.unwrap();
        assert_eq!(first.signer().kid(), second.signer().kid());
        assert_eq!(first.jwks_json(), second.jwks_json());
    }

    #[tokio::test]
    async fn a_corrupt_private_key_is_refused() {
        let store = SledStore::temporary().unwrap();
        let ring = KeyRing::load_or_create(&store, Algorithm::ES256, 100).await.unwrap();
        let mut records = store.keys().await.unwrap();
        for record in &mut records {
            if record.kid == ring.signer().kid() {
                record.private_pkcs8 = b"not a key".to_vec();
            }
        }
        store.put_keys(&records).await.unwrap();
        assert!(KeyRing::load_or_create(&store, Algorithm::ES256, 100).await.is_err());
    }
}
