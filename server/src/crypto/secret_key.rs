//! The client-secret HMAC key at rest (see [`super::secret`]).
//!
//! It is an installation value in the store. With a key-encryption key
//! configured it is stored sealed under that key (AES-256-GCM, as the
//! private signing keys are, bound to its name): a copy of the database
//! alone then lets no one test candidate secrets. An installation that
//! stored it in plain text before a KEK was configured has it sealed at
//! the next start.
//!
//! Stored form: [`SEALED_PREFIX`], the 96-bit nonce, then the ciphertext
//! with its tag; a plain key is its 32 bytes.

use super::seal::{Kek, SealError, SealedKey};
use super::secret::INSTALLATION_KEY_LEN;
use crate::store::{Store, StoreError};

/// The installation value holding the client-secret HMAC key.
pub const SECRET_KEY_NAME: &str = "client_secret_hmac_key";

/// Marks a sealed key; a plain key is exactly 32 bytes, so never ambiguous.
pub const SEALED_PREFIX: &[u8] = b"tessera-sealed-v1:";

/// Length of the GCM nonce in the stored form.
const NONCE_LEN: usize = 12;

/// Why the client-secret key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key is sealed and no key-encryption key is configured.
    #[error(
        "the client-secret key is encrypted at rest: give the key-encryption key \
         (--key-encryption-key-file or TESSERA_KEY_ENCRYPTION_KEY)"
    )]
    SealedWithoutKek,
    /// The KEK does not open it: another KEK sealed it, or it was altered.
    #[error("the key-encryption key does not decrypt the stored client-secret key (wrong key, or it was altered)")]
    WrongKek,
    /// Sealing failed (random generator).
    #[error("cannot encrypt the client-secret key")]
    Seal(#[from] SealError),
    /// The stored value is neither a plain nor a sealed key.
    #[error("the stored client-secret key is malformed")]
    Malformed,
}

/// Loads the client-secret HMAC key, storing `fresh` (sealed when `kek` is
/// given) on a new installation, and sealing a plain key found when a
/// `kek` is given.
///
/// # Errors
/// [`SecretKeyError`]: storage failure, a sealed key without or with the
/// wrong KEK, a malformed stored value.
pub async fn load(
    store: &dyn Store,
    kek: Option<&Kek>,
    fresh: [u8; INSTALLATION_KEY_LEN],
) -> Result<Vec<u8>, SecretKeyError> {
    let init = match kek {
        Some(kek) => encode(&kek.seal(SECRET_KEY_NAME, &fresh)?),
        None => fresh.to_vec(),
    };
    let stored = store.installation_value(SECRET_KEY_NAME, init).await?;
    match (decode(&stored)?, kek) {
        (Some(sealed), Some(kek)) => kek.open(SECRET_KEY_NAME, &sealed).map_err(|_| SecretKeyError::WrongKek),
        (Some(_), None) => Err(SecretKeyError::SealedWithoutKek),
        (None, Some(kek)) => {
            store.replace_installation_value(SECRET_KEY_NAME, encode(&kek.seal(SECRET_KEY_NAME, &stored)?)).await?;
            tracing::info!("sealed the client-secret key under the key-encryption key");
            Ok(stored)
        }
        (None, None) => Ok(stored),
    }
}

fn encode(sealed: &SealedKey) -> Vec<u8> {
    [SEALED_PREFIX, &sealed.nonce, &sealed.ciphertext].concat()
}

/// `Some` for a sealed value, `None` for a plain key.
fn decode(stored: &[u8]) -> Result<Option<SealedKey>, SecretKeyError> {
    match stored.strip_prefix(SEALED_PREFIX) {
        Some(rest) if rest.len() > NONCE_LEN => {
            let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
            Ok(Some(SealedKey { nonce: nonce.to_vec(), ciphertext: ciphertext.to_vec() }))
        }
        Some(_) => Err(SecretKeyError::Malformed),
        None if stored.len() == INSTALLATION_KEY_LEN => Ok(None),
        None => Err(SecretKeyError::Malformed),
    }
}

#[cfg(test)]
mod tests;
