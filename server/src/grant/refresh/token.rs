//! The refresh token's format: 30 bytes, sent as 40 characters of
//! base64url without padding.
//!
//! | bytes | what |
//! |---|---|
//! | 0..10 | the family ID ([`FamilyId`]: creation second, u32 big-endian, then 6 random bytes) |
//! | 10..14 | the generation, u32 big-endian (0 for a family's first token) |
//! | 14..30 | 16 random bytes |
//!
//! A token names its family and generation, so presenting one is one read
//! of the family's record; the 128 random bits (176 with the family's) make
//! it unguessable. The store keeps only the SHA-256 [`RefreshToken::digest`]
//! of the family's current token (and of the previous one during the reuse
//! grace), never the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::secret::refresh_token_digest;
use crate::store::records::{Digest32, FamilyId};

/// Bytes in a refresh token.
pub const TOKEN_BYTES: usize = 30;

/// Characters of its text form.
pub const TOKEN_CHARS: usize = 40;

/// The random part of a token.
pub type Secret = [u8; 16];

/// A refresh token, decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefreshToken {
    /// Its family.
    pub family_id: FamilyId,
    /// Its place in the family: 0 for the first token, one more per rotation.
    pub generation: u32,
    /// Its random part.
    pub secret: Secret,
}

/// Never prints the random part.
impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken").field("generation", &self.generation).finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// The 30 bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; TOKEN_BYTES] {
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..10].copy_from_slice(&self.family_id);
        bytes[10..14].copy_from_slice(&self.generation.to_be_bytes());
        bytes[14..].copy_from_slice(&self.secret);
        bytes
    }

    /// The text handed to the client: 40 characters of base64url.
    #[must_use]
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes())
    }

    /// The token `text` if it is one: exactly 40 characters of base64url
    /// (which always decode to 30 bytes). Anything else is `None`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != TOKEN_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let bytes: [u8; TOKEN_BYTES] = bytes.try_into().ok()?;
        let mut family_id = FamilyId::default();
        family_id.copy_from_slice(&bytes[..10]);
        let mut generation = [0u8; 4];
        generation.copy_from_slice(&bytes[10..14]);
        let mut secret = Secret::default();
        secret.copy_from_slice(&bytes[14..]);
        Some(Self { family_id, generation: u32::from_be_bytes(generation), secret })
    }

    /// The SHA-256 of its text, as stored: it covers the whole token, so a
    /// token altered anywhere (family, generation or random part) does not
    /// match the digest of the one issued.
    #[must_use]
    pub fn digest(&self) -> Digest32 {
        refresh_token_digest(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn token() -> RefreshToken {
        RefreshToken { family_id: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], generation: 0x0102_0304, secret: [0xab; 16] }
    }

    #[test]
    fn a_token_is_40_url_safe_characters_and_round_trips() {
        let text = token().encode();
        assert_eq!(text.len(), TOKEN_CHARS);
        assert!(tessera_shared::ids::is_refresh_token(&text), "{text}");
        assert_eq!(RefreshToken::parse(&text), Some(token()));
        assert_eq!(&token().to_bytes()[10..14], &[1, 2, 3, 4], "the generation is big-endian");
    }

    #[test]
    fn wrong_lengths_and_characters_are_refused() {
        let text = token().encode();
        assert_eq!(RefreshToken::parse(&text[..39]), None);
        assert_eq!(RefreshToken::parse(&format!("{text}A")), None);
        assert_eq!(RefreshToken::parse(""), None);
        let padded = format!("{}=", &text[..39]);
        assert_eq!(RefreshToken::parse(&padded), None);
        let plus = format!("+{}", &text[1..]);
        assert_eq!(RefreshToken::parse(&plus), None, "standard base64 is not base64url");
    }

    #[test]
    fn the_digest_covers_every_part() {
        let digest = token().digest();
        assert_eq!(digest, refresh_token_digest(&token().encode()));
        assert_ne!(RefreshToken { generation: 1, ..token() }.digest(), digest);
        assert_ne!(RefreshToken { family_id: [0; 10], ..token() }.digest(), digest);
        assert_ne!(RefreshToken { secret: [0; 16], ..token() }.digest(), digest);
    }

    #[test]
    fn debug_never_shows_the_random_part() {
        let shown = format!("{:?}", token());
        assert!(!shown.contains("171") && !shown.contains("ab"), "{shown}");
    }

    proptest! {
        #[test]
        fn any_40_characters_parse_or_are_refused(text in "[A-Za-z0-9_\\-+/=. ]{40}") {
            if let Some(parsed) = RefreshToken::parse(&text) {
                prop_assert_eq!(parsed.encode(), text);
            }
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = RefreshToken::parse(&text);
        }

        #[test]
        fn every_token_round_trips(family in any::<[u8; 10]>(), generation in any::<u32>(), secret in any::<[u8; 16]>()) {
            let token = RefreshToken { family_id: family, generation, secret };
            prop_assert_eq!(RefreshToken::parse(&token.encode()), Some(token));
        }
    }
}
