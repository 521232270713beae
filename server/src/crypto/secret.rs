//! Client secrets are kept as HMAC-SHA256 digests under a per-installation
//! key and checked in constant time.
//!
//! Secrets are 240-bit random strings, so a slow password hash would add
//! nothing against guessing and would cap throughput; the keyed digest means
//! a stolen database alone does not let anyone test candidate secrets.

use ring::digest;
use ring::hmac;
use subtle::{Choice, ConstantTimeEq};

use crate::store::records::Digest32;

/// Length of the installation key.
pub const INSTALLATION_KEY_LEN: usize = 32;

/// Digests and checks client secrets.
#[derive(Debug, Clone)]
pub struct SecretHasher {
    key: hmac::Key,
    /// Stands in for a missing digest (no previous secret, no client), so
    /// every check does the same work: one HMAC and two comparisons.
    decoy: Digest32,
    /// HMACs computed, for the tests that check equal work.
    #[cfg(test)]
    computed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SecretHasher {
    /// A hasher keyed with the installation key.
    pub fn new(installation_key: &[u8]) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, installation_key);
        // Not a possible secret: secrets have no spaces or colons.
        let decoy = tag_of(&key, b"tessera: no such secret");
        Self {
            key,
            decoy,
            #[cfg(test)]
            computed: std::sync::Arc::default(),
        }
    }

    /// The digest to store for `secret`.
    pub fn digest(&self, secret: &str) -> Digest32 {
        #[cfg(test)]
        self.computed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tag_of(&self.key, secret.as_bytes())
    }

    /// How many digests this hasher (and its clones) computed.
    #[cfg(test)]
    pub(crate) fn digests_computed(&self) -> usize {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `secret` matches `current`, or `previous` when given, in
    /// constant time and with the same work either way.
    pub fn matches(&self, secret: &str, current: &Digest32, previous: Option<&Digest32>) -> bool {
        self.matches_live(secret, Some(current), previous)
    }

    /// [`SecretHasher::matches`] where the current secret may be unusable
    /// too (expired): `None` never matches, with the same work.
    pub fn matches_live(&self, secret: &str, current: Option<&Digest32>, previous: Option<&Digest32>) -> bool {
        let tag = self.digest(secret);
        let current_ok = tag.ct_eq(current.unwrap_or(&self.decoy)) & Choice::from(u8::from(current.is_some()));
        let previous_ok = tag.ct_eq(previous.unwrap_or(&self.decoy)) & Choice::from(u8::from(previous.is_some()));
        (current_ok | previous_ok).into()
    }

    /// Does the work of [`SecretHasher::matches`] for a client that does
    /// not exist, and fails.
    pub fn match_nothing(&self, secret: &str) -> bool {
        let _ = self.matches(secret, &self.decoy, None);
        false
    }
}

fn tag_of(key: &hmac::Key, data: &[u8]) -> Digest32 {
    let tag = hmac::sign(key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The SHA-256 digest under which a refresh token is stored. Refresh tokens
/// carry 240 random bits, so an unkeyed digest cannot be reversed.
pub fn refresh_token_digest(token: &str) -> Digest32 {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_secret_matches_and_wrong_does_not() {
        let hasher = SecretHasher::new(&[7; 32]);
        let stored = hasher.digest("correct horse");
        assert!(hasher.matches("correct horse", &stored, None));
        assert!(!hasher.matches("correct hors", &stored, None));
        assert!(!hasher.match_nothing("correct horse"));
    }

    #[test]
    fn previous_secret_matches_only_when_given() {
        let hasher = SecretHasher::new(&[7; 32]);
        let new = hasher.digest("new");
        let old = hasher.digest("old");
        assert!(hasher.matches("old", &new, Some(&old)));
        assert!(hasher.matches("new", &new, Some(&old)));
        assert!(!hasher.matches("old", &new, None));
        assert!(!hasher.matches("other", &new, Some(&old)));
    }

    #[test]
    fn the_decoy_phrase_never_authenticates() {
        let hasher = SecretHasher::new(&[7; 32]);
        let stored = hasher.digest("real");
        assert!(!hasher.matches("tessera: no such secret", &stored, None));
    }

    #[test]
    fn digests_depend_on_the_installation_key() {
        let a = SecretHasher::new(&[1; 32]).digest("s");
        let b = SecretHasher::new(&[2; 32]).digest("s");
        assert_ne!(a, b);
    }

    #[test]
    fn refresh_digest_is_sha256() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(refresh_token_digest("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
