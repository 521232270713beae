//! What the store keeps. Every record is plain data; the rules that change
//! them live in `grant/` and the service layer.

use serde::{Deserialize, Serialize};
use tessera_shared::admin::{ClientStatus, KeyState};
use tessera_shared::jwk::{Algorithm, Jwk};

use crate::clock::UnixTime;
use crate::crypto::seal::SealedKey;

/// A 32-byte digest: the HMAC of a client secret or the SHA-256 of a
/// refresh token. Plain-text secrets are never stored.
pub type Digest32 = [u8; 32];

/// A refresh-token family ID: the creation time, then 6 random bytes
/// (see [`family_id`]). Every token of the family carries it
/// ([`crate::grant::refresh::token`]).
pub type FamilyId = [u8; 10];

/// An RFC 7638 JWK thumbprint (SHA-256): the DPoP key a family is bound to.
pub type Thumbprint = [u8; 32];

/// A family ID for a family created at `created_at`: its seconds as a u32,
/// big-endian (saturating, in 2106), then `random`.
///
/// Leading with the time makes new IDs sort after older ones, so the
/// storage inserts every new family (and its client-index entry) next to
/// the previous one instead of at a random place in the tree: sled's
/// inserts are about twice as fast in order as at random. The 48 random
/// bits keep IDs of one second apart (a clash is refused by the store's
/// insert, not overwritten); the token's own 128 random bits are what
/// make it unguessable.
#[must_use]
pub fn family_id(created_at: UnixTime, random: [u8; 6]) -> FamilyId {
    let mut id = [0u8; 10];
    id[..4].copy_from_slice(&u32::try_from(created_at).unwrap_or(u32::MAX).to_be_bytes());
    id[4..].copy_from_slice(&random);
    id
}

/// Seconds in a day: the granularity of the stores' expiry index.
pub const DAY: u64 = 86_400;

/// The day `at` falls in, as the expiry indexes key it. A family's entry
/// changes only when its expiry moves into another day, so a rotation
/// (which moves it by seconds) costs no index write most of the time.
#[must_use]
pub fn expiry_day(at: UnixTime) -> u32 {
    u32::try_from(at / DAY).unwrap_or(u32::MAX)
}

/// An OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// `oa2-client-id_...`.
    pub client_id: String,
    /// The operator's name for it.
    pub name: String,
    /// HMAC-SHA256 of the current secret under the installation key.
    pub secret_digest: Digest32,
    /// When the current secret was set.
    pub secret_set_at: UnixTime,
    /// The secret replaced by the last rotation, while its grace period runs.
    pub previous_secret: Option<PreviousSecret>,
    /// Scopes the client may ask for.
    pub scopes: Vec<String>,
    /// Whether client_credentials grants also start a refresh-token family.
    pub refresh_tokens: bool,
    /// Active or revoked.
    pub status: ClientStatus,
    /// Creation time.
    pub created_at: UnixTime,
    /// The first second at which the current secret no longer works, if it
    /// was given a lifetime (`--secret-ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_expires_at: Option<UnixTime>,
    /// Its own access-token lifetime in seconds (`--access-token-ttl`);
    /// `None`: the server's. Records from before issue 16 have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<u64>,
    /// The audiences its access tokens may be for (`--audience`), the
    /// first being the default; RFC 8707 `resource` picks one. Empty: the
    /// server's audience. Records from before issue 16 have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Whether its token requests must carry a DPoP proof
    /// (`--require-dpop`, RFC 9449 §5). Records from before issue 16 have
    /// none: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_dpop: bool,
    /// Its public keys (private_key_jwt, RFC 7523), each with its RFC 7638
    /// thumbprint as `kid`. A client with keys authenticates only with an
    /// assertion signed by one of them, never with a secret; its
    /// `secret_digest` is of a random value nobody was told. Empty: a
    /// client with a secret (all records from before issue 16).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<Jwk>,
    /// Raised each time the client is revoked or deleted, in the same
    /// atomic step: a family created under a lower epoch is dead, so no
    /// family that raced with a revocation comes back when the client is
    /// re-activated. Records from before issue 12 have 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub family_epoch: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl ClientRecord {
    /// Whether it authenticates with an assertion (private_key_jwt)
    /// rather than a secret.
    pub fn uses_keys(&self) -> bool {
        !self.public_keys.is_empty()
    }

    /// Revokes it, raising its family epoch in the same change: every
    /// family created before is dead from now on, even one whose creation
    /// raced with this and even once the client is re-activated.
    pub fn revoke(&mut self) {
        self.status = ClientStatus::Revoked;
        self.family_epoch = self.family_epoch.saturating_add(1);
    }

    /// Whether the current secret still works at `now`.
    pub fn secret_is_live(&self, now: UnixTime) -> bool {
        self.secret_expires_at.is_none_or(|end| now < end)
    }

    /// The lifetime of the access tokens it gets: its own, never beyond
    /// `server_ttl`, the one the signing keys' life cycle is computed for
    /// (a key leaves the JWKS once every token it signed has expired by
    /// that lifetime). The admin API refuses longer ones; this holds even
    /// if the server's lifetime was lowered since.
    pub fn access_token_ttl(&self, server_ttl: u64) -> u64 {
        self.access_token_ttl.map_or(server_ttl, |own| own.min(server_ttl))
    }
}

/// A replaced secret that still works until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// HMAC-SHA256 of the old secret.
    pub digest: Digest32,
    /// The first second at which the old secret no longer works.
    pub valid_until: UnixTime,
}

/// The token a family rotated away from, kept while the reuse grace may
/// let it be presented again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousToken {
    /// Its generation.
    pub generation: u32,
    /// SHA-256 of it.
    pub digest: Digest32,
    /// When it was first rotated: the grace runs from here, however often
    /// it is retried.
    pub rotated_at: UnixTime,
}

/// A chain of refresh tokens started by one client_credentials grant: one
/// record however often it rotates. No record exists per token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRecord {
    /// Its ID, carried by every token of the family.
    pub family_id: FamilyId,
    /// The client that owns it.
    pub client_id: String,
    /// The scope originally granted; refreshes may narrow their access
    /// tokens but the family keeps this (RFC 6749 §6).
    pub scope: Vec<String>,
    /// When the first token was issued.
    pub created_at: UnixTime,
    /// Set once the family is revoked (reuse, client revoked, admin).
    pub revoked_at: Option<UnixTime>,
    /// The current token's generation.
    pub generation: u32,
    /// SHA-256 of the one token that may be used next.
    pub current: Digest32,
    /// When the current token was issued.
    pub issued_at: UnixTime,
    /// When the current token expires; the family dies with it.
    pub expires_at: UnixTime,
    /// The token rotated away from last, while it may still matter.
    pub previous: Option<PreviousToken>,
    /// The client's [`ClientRecord::family_epoch`] when the family was
    /// created: once the client's is higher (it was revoked or deleted
    /// since), the family is dead.
    pub client_epoch: u64,
    /// The DPoP key the family is bound to, if its first token was issued
    /// with a DPoP proof: every refresh must prove that key (RFC 9449 §5).
    pub dpop_jkt: Option<Thumbprint>,
}

impl FamilyRecord {
    /// Whether the family can still produce tokens at `now` (not counting
    /// its client's epoch, which the store checks where it has the client).
    pub fn is_live(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Whether `digest` of a token of `generation` is the family's current one.
    pub fn is_current(&self, generation: u32, digest: &Digest32) -> bool {
        generation == self.generation && same_digest(digest, &self.current)
    }

    /// Whether `digest` of a token of `generation` is the family's previous one.
    pub fn is_previous(&self, generation: u32, digest: &Digest32) -> bool {
        self.previous.is_some_and(|p| p.generation == generation && same_digest(digest, &p.digest))
    }
}

/// Compares two digests in constant time.
#[must_use]
pub fn same_digest(a: &Digest32, b: &Digest32) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

/// A new refresh token to issue: its random part and lifetime. The store's
/// decision gives it its family and generation
/// ([`crate::grant::refresh::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// The token's random part.
    pub secret: [u8; 16],
    /// Issue time.
    pub issued_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
}

/// A signing key with its private part, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Algorithm it signs with.
    pub alg: Algorithm,
    /// Life stage.
    pub state: KeyState,
    /// Creation time, which is also when it was first published (a key is
    /// published from its creation as the next key).
    pub created_at: UnixTime,
    /// PKCS#8 document of the private key; empty once retired, and empty
    /// when the key is stored sealed instead.
    pub private_pkcs8: Vec<u8>,
    /// The public key as published.
    pub public_jwk: Jwk,
    /// The private key encrypted under the key-encryption key, when
    /// encryption at rest is on (then `private_pkcs8` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_pkcs8: Option<SealedKey>,
    /// Whether an operator supplied it (`keys import`) rather than the
    /// server generating it; an imported next key is never replaced at start.
    #[serde(default)]
    pub imported: bool,
    /// When it started signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<UnixTime>,
    /// When it stopped signing (became retiring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_at: Option<UnixTime>,
    /// Until when it stays in the JWKS once retiring: every token it signed
    /// has expired by then, with a cache interval to spare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_until: Option<UnixTime>,
    /// When it left the JWKS and lost its private part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<UnixTime>,
    /// On the next key: when an operator asked for a rotation that was too
    /// early to perform; it rotates in at its first safe moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_requested_at: Option<UnixTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_ids_sort_by_creation_time_and_keep_their_random_part() {
        let earlier = family_id(1_800_000_000, [0xff; 6]);
        let later = family_id(1_800_000_001, [0; 6]);
        assert!(earlier < later, "a later second sorts after, whatever the random bytes");
        assert_eq!(&earlier[4..], &[0xff; 6]);
        assert_eq!(family_id(u64::MAX, [7; 6])[..4], [0xff; 4], "saturates instead of wrapping");
    }

    /// Issue 16: a client stored before the policy fields existed (both
    /// backends keep the record as JSON) reads with the server's policy,
    /// and a record without a policy is written as before.
    #[test]
    fn a_client_record_from_before_the_token_policy_reads_with_the_servers() {
        let old = r#"{"client_id":"oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","name":"old",
            "secret_digest":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],
            "secret_set_at":5,"previous_secret":null,"scopes":["read"],"refresh_tokens":true,
            "status":"active","created_at":5}"#;
        let client: ClientRecord = serde_json::from_str(old).unwrap();
        assert_eq!((client.access_token_ttl, client.audiences.is_empty()), (None, true));
        assert_eq!(client.access_token_ttl(300), 300);
        let written = serde_json::to_string(&client).unwrap();
        assert!(!written.contains("access_token_ttl") && !written.contains("audiences"), "{written}");
        assert!(!client.require_dpop && !written.contains("require_dpop"), "DPoP optional, written as before");
        assert!(!written.contains("public_keys") && !client.uses_keys(), "{written}");
        assert_eq!(client.family_epoch, 0);
        assert!(!written.contains("family_epoch"), "{written}");
        let key = Jwk::ed25519(&[9; 32]).unwrap();
        let with_policy = ClientRecord {
            access_token_ttl: Some(60),
            audiences: vec!["https://a".into()],
            public_keys: vec![key],
            family_epoch: 3,
            ..client
        };
        let round_trip: ClientRecord = serde_json::from_str(&serde_json::to_string(&with_policy).unwrap()).unwrap();
        assert_eq!(round_trip, with_policy);
    }

    #[test]
    fn a_clients_ttl_never_exceeds_the_servers() {
        let client = |ttl| ClientRecord { access_token_ttl: ttl, ..crate::store::conformance::client("c") };
        assert_eq!(client(Some(60)).access_token_ttl(300), 60);
        assert_eq!(client(Some(600)).access_token_ttl(300), 300, "the server's lowered since");
        assert_eq!(client(None).access_token_ttl(300), 300);
    }
}
