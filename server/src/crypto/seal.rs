//! Encryption of private signing keys at rest: AES-256-GCM (ring) under a
//! key-encryption key (KEK) the operator keeps outside the data dir.
//!
//! Each private key is sealed with a fresh random 96-bit nonce, and its
//! `kid` is the additional authenticated data, so a sealed key cannot be
//! swapped onto another record unnoticed. A wrong KEK fails the GCM tag
//! check: that is how a wrong key is told apart from a right one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};

/// Length of a key-encryption key: AES-256.
pub const KEK_LEN: usize = 32;

/// Why a KEK could not be read or a key not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The KEK is not base64 of exactly 32 bytes.
    #[error("the key-encryption key must be base64 of exactly 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)")]
    BadKek,
    /// The tag check failed: another KEK sealed this key, or it was altered.
    #[error("the key-encryption key does not decrypt the stored signing keys (wrong key, or the keys were altered)")]
    WrongKek,
    /// Sealing failed (random generator).
    #[error("cannot encrypt a signing key")]
    Seal,
}

/// A private key sealed with AES-256-GCM, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// The 96-bit nonce.
    pub nonce: Vec<u8>,
    /// The PKCS#8 document encrypted, followed by the 128-bit tag.
    pub ciphertext: Vec<u8>,
}

/// The key-encryption key. Its bytes never leave this type; `Debug` shows none.
pub struct Kek {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// A KEK from its 32 bytes.
    ///
    /// # Errors
    /// [`SealError::BadKek`] if `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != KEK_LEN {
            return Err(SealError::BadKek);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKek)?;
        Ok(Self { key: LessSafeKey::new(key), rng: SystemRandom::new() })
    }

    /// A KEK from base64 text (surrounding whitespace ignored), as kept in
    /// a file or an environment variable.
    ///
    /// # Errors
    /// [`SealError::BadKek`] if the text is not base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| SealError::BadKek)?;
        Self::from_bytes(&bytes)
    }

    /// Seals `plaintext` (a PKCS#8 document) bound to `kid`.
    ///
    /// # Errors
    /// [`SealError::Seal`] if the random generator fails.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<SealedKey, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Seal)?;
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut buffer)
            .map_err(|_| SealError::Seal)?;
        Ok(SealedKey { nonce: nonce.to_vec(), ciphertext: buffer })
    }

    /// Opens what [`Kek::seal`] sealed for `kid`.
    ///
    /// # Errors
    /// [`SealError::WrongKek`] if the tag does not check out.
    pub fn open(&self, kid: &str, sealed: &SealedKey) -> Result<Vec<u8>, SealError> {
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| SealError::WrongKek)?;
        let mut buffer = sealed.ciphertext.clone();
        let plaintext =
            self.key.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer).map_err(|_| SealError::WrongKek)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_with_the_same_kek_only() {
        let kek = Kek::from_bytes(&[7; 32]).unwrap();
        let sealed = kek.seal("kid-1", b"pkcs8 document").unwrap();
        assert_ne!(sealed.ciphertext[..14], b"pkcs8 document"[..]);
        assert_eq!(kek.open("kid-1", &sealed).unwrap(), b"pkcs8 document");
        let other = Kek::from_bytes(&[8; 32]).unwrap();
        assert_eq!(other.open("kid-1", &sealed), Err(SealError::WrongKek));
        assert_eq!(kek.open("kid-2", &sealed), Err(SealError::WrongKek), "bound to its kid");
    }

    #[test]
    fn the_kek_must_be_base64_of_32_bytes() {
        assert!(Kek::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(Kek::from_base64(&format!(" {}\n", STANDARD.encode([1u8; 32]))).is_ok());
        assert_eq!(Kek::from_base64(&STANDARD.encode([1u8; 31])).unwrap_err(), SealError::BadKek);
        assert_eq!(Kek::from_base64("not base64!").unwrap_err(), SealError::BadKek);
        assert_eq!(format!("{:?}", Kek::from_bytes(&[1; 32]).unwrap()), "Kek(<redacted>)");
    }
}
