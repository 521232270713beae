//! The signing keys: their life cycle, the ring in use, and the manager
//! that rotates them.
//!
//! - [`lifecycle`]: the key states as types and the pure decision of what
//!   is due when.
//! - [`manager`]: loading at start, on-demand and scheduled rotation,
//!   import, retirement, encryption at rest; it swaps the [`KeyRing`].
//! - [`KeyRing`]: an immutable snapshot (the signer and the serialised
//!   JWKS); [`KeyHandle`] holds the current one. The token endpoint reads it
//!   with one atomic load, never a lock.
//!
//! On first start the server creates two keys: the active one and the next
//! one, published before it signs anything, so that a later rotation never
//! produces a token signed by a key that resource servers have not seen.

pub mod lifecycle;
pub mod manager;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use ring::rand::SystemRandom;
use tessera_shared::admin::KeyInfo;
use tessera_shared::jwk::JwkSet;

use crate::crypto::CryptoError;
use crate::crypto::seal::{Kek, SealError};
use crate::crypto::signing::JwtSigner;
use crate::store::StoreError;
use crate::store::records::KeyRecord;
use lifecycle::{KeySet, NotReady, RevokeError, Timing};

pub use manager::KeyManager;

/// Why the keys could not be loaded or changed.
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
    /// The keys are encrypted at rest and no key-encryption key was given.
    #[error(
        "the signing keys are encrypted at rest: give the key-encryption key with \
         --key-encryption-key-file or TESSERA_KEY_ENCRYPTION_KEY"
    )]
    MissingKek,
    /// The key-encryption key is wrong.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A rotation was asked for before the next key may sign.
    #[error(transparent)]
    NotReady(#[from] NotReady),
    /// The key cannot be revoked.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// An imported key is unusable.
    #[error("cannot import the key: {0}")]
    Import(String),
    /// Another instance sharing the store changed the keys at the same
    /// time; its change won and is now served here too.
    #[error("another instance changed the signing keys at the same time; look at them and try again")]
    Changed,
}

/// The keys in use. Immutable; every change builds a new ring.
#[derive(Debug)]
pub struct KeyRing {
    signer: JwtSigner,
    jwks: JwkSet,
    jwks_json: Bytes,
    infos: Vec<KeyInfo>,
}

impl KeyRing {
    /// Builds the ring of `set`, opening the active key with `kek` if it is
    /// sealed; `timing` says when a scheduled rotation happens.
    ///
    /// # Errors
    /// [`KeyError`] if the active key cannot be opened or parsed.
    pub fn build(set: &KeySet, kek: Option<&Kek>, timing: &Timing) -> Result<Self, KeyError> {
        let active = set.active().record();
        let pkcs8 = private_pkcs8(active, kek)?;
        let signer = JwtSigner::from_pkcs8(active.alg, &pkcs8, SystemRandom::new())?;
        if signer.kid() != active.kid {
            return Err(KeyError::Inconsistent("the active key's kid does not match its private key"));
        }
        let jwks = JwkSet { keys: set.published().map(|k| k.public_jwk.clone()).collect() };
        let jwks_json =
            Bytes::from(serde_json::to_vec(&jwks).map_err(|_| KeyError::Inconsistent("the JWKS does not serialise"))?);
        let scheduled = set.scheduled_rotation(timing);
        let infos = set
            .records()
            .map(|record| {
                let mut info = info(record);
                if record.state == tessera_shared::admin::KeyState::Next {
                    info.rotation_scheduled_at = scheduled;
                }
                info
            })
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

/// The current [`KeyRing`], shared by the token endpoint, the JWKS endpoint
/// and the manager. Reading is one atomic load (arc-swap), so the hot path
/// never waits for a rotation; a rotation swaps in a whole new ring.
#[derive(Debug, Clone)]
pub struct KeyHandle(Arc<ArcSwap<KeyRing>>);

impl KeyHandle {
    /// A handle holding `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(ring)))
    }

    /// The current ring.
    pub fn current(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.0.load()
    }

    fn replace(&self, ring: KeyRing) {
        self.0.store(Arc::new(ring));
    }
}

/// The public description of a stored key.
pub fn info(record: &KeyRecord) -> KeyInfo {
    KeyInfo {
        kid: record.kid.clone(),
        alg: record.alg.to_string(),
        state: record.state,
        created_at: record.created_at,
        activated_at: record.activated_at,
        deactivated_at: record.deactivated_at,
        published_until: record.published_until,
        retired_at: record.retired_at,
        imported: record.imported,
        rotation_scheduled_at: None,
    }
}

/// The PKCS#8 document of a stored key, opened with `kek` if sealed.
///
/// # Errors
/// [`KeyError::MissingKek`] for a sealed key without a KEK, [`KeyError::Seal`] for a wrong one.
pub fn private_pkcs8(record: &KeyRecord, kek: Option<&Kek>) -> Result<Vec<u8>, KeyError> {
    match (&record.sealed_pkcs8, kek) {
        (Some(sealed), Some(kek)) => Ok(kek.open(&record.kid, sealed)?),
        (Some(_), None) => Err(KeyError::MissingKek),
        (None, _) if record.private_pkcs8.is_empty() => Err(KeyError::Inconsistent("a key has no private part")),
        (None, _) => Ok(record.private_pkcs8.clone()),
    }
}

#[cfg(test)]
pub mod testing {
    //! A key manager for tests of other modules.
    #![allow(clippy::unwrap_used, reason = "test set-up fails by panicking")]
    use std::sync::Arc;

    use tessera_shared::jwk::Algorithm;

    use super::KeyManager;
    use super::lifecycle::Timing;
    use super::manager::KeySettings;
    use crate::clock::Clock;
    use crate::store::Store;

    /// The default timing: daily rotation, 300 s tokens, 300 s JWKS cache.
    pub const TIMING: Timing = Timing { rotate_every: 86_400, access_token_ttl: 300, jwks_max_age: 300 };

    /// A manager on `store` with fresh `alg` keys and [`TIMING`].
    pub async fn manager(store: Arc<dyn Store>, clock: Arc<dyn Clock>, alg: Algorithm) -> KeyManager {
        let audit = crate::audit::Audit::new(store.clone(), clock.clone());
        KeyManager::start(store, clock, KeySettings { alg, timing: TIMING }, None, audit).await.unwrap()
    }
}

#[cfg(test)]
mod tests;
