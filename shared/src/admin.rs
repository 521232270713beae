//! The admin API: JSON bodies exchanged over the server's Unix socket
//! (`<data-dir>/admin.sock`) between `tessera-server` and `tessera-admin`.
//!
//! The API is HTTP/1.1 over that socket. Routes (all JSON):
//!
//! | method, path | body | answer |
//! |---|---|---|
//! | `GET /v1/clients` | | `Vec<ClientInfo>` |
//! | `POST /v1/clients` | [`CreateClient`] | [`ClientCredentials`] |
//! | `GET /v1/clients/{id}` | | [`ClientInfo`] |
//! | `POST /v1/clients/{id}/rotate-secret` | [`RotateSecret`] | [`ClientCredentials`] |
//! | `POST /v1/clients/{id}/set-keys` | [`SetKeys`] | [`ClientInfo`] (its public keys replaced) |
//! | `POST /v1/clients/{id}/revoke` | | [`ClientInfo`] |
//! | `DELETE /v1/clients/{id}` | | [`Deleted`] |
//! | `POST /v1/clients/{id}/revoke-families` | | [`FamiliesRevoked`] |
//! | `GET /v1/keys` | | `Vec<KeyInfo>` |
//! | `POST /v1/clients/{id}/reactivate` | | [`ClientInfo`] |
//! | `GET /v1/audit?after=SEQ&limit=N` | | `Vec<AuditEvent>`, oldest first |
//! | `GET /v1/stats` | | [`Stats`] |
//! | `POST /v1/keys/rotate` | [`RotateKeys`] (optional) | [`KeyRotation`] (scheduled while the next key is too new, unless `now`) |
//! | `POST /v1/keys/{kid}/revoke` | | `Vec<KeyInfo>` (the key is out of the JWKS) |
//! | `POST /v1/keys/import` | [`ImportKey`] | `Vec<KeyInfo>` (the key becomes the next key) |
//! | `GET /v1/jwks` | | the public JWKS, as served on `/.well-known/jwks.json` |
//!
//! Every failure is an [`AdminError`] with a 4xx or 5xx status.

use serde::{Deserialize, Serialize};

/// The path of each admin route, so both sides spell them alike.
pub mod paths {
    /// The client collection.
    pub const CLIENTS: &str = "/v1/clients";
    /// The signing keys.
    pub const KEYS: &str = "/v1/keys";
    /// The audit trail.
    pub const AUDIT: &str = "/v1/audit";
    /// The activity counters.
    pub const STATS: &str = "/v1/stats";
    /// Rotate the signing keys (at once, or scheduled for the first safe moment).
    pub const KEYS_ROTATE: &str = "/v1/keys/rotate";
    /// Import a private key as the next key.
    pub const KEYS_IMPORT: &str = "/v1/keys/import";
    /// The public JWKS.
    pub const JWKS: &str = "/v1/jwks";

    /// Revoke one signing key.
    pub fn key_revoke(kid: &str) -> String {
        format!("{KEYS}/{kid}/revoke")
    }

    /// One client.
    pub fn client(client_id: &str) -> String {
        format!("{CLIENTS}/{client_id}")
    }

    /// An action on one client: `rotate-secret`, `revoke`, `revoke-families`.
    pub fn client_action(client_id: &str, action: &str) -> String {
        format!("{CLIENTS}/{client_id}/{action}")
    }
}

/// Whether a client may obtain tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    /// Authenticates and receives tokens.
    Active,
    /// Refused at the token endpoint; its refresh tokens are revoked.
    Revoked,
}

impl std::fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
        })
    }
}

/// `POST /v1/clients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateClient {
    /// A human name for the operator; need not be unique.
    pub name: String,
    /// Scopes the client may ask for. Empty: the client gets unscoped tokens.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether client_credentials grants also return a refresh token.
    pub refresh_tokens: bool,
    /// Lifetime of the secret in seconds; `None`: it does not expire.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_ttl_seconds: Option<u64>,
    /// Lifetime of the client's access tokens in seconds, at most the
    /// server's; `None`: the server's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_token_ttl_seconds: Option<u64>,
    /// Audiences (absolute URIs) the client's tokens may be for, the first
    /// being the default; RFC 8707 `resource` picks one. Empty: the
    /// server's audience.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub audiences: Vec<String>,
    /// Whether the client's token requests must carry a DPoP proof
    /// (RFC 9449), so every access token it gets is bound to its key.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub require_dpop: bool,
    /// Public keys, each the text of a PEM public key (SubjectPublicKeyInfo),
    /// a JWK or a JWKS: the client authenticates with private_key_jwt and
    /// has no secret. Empty: it gets a secret.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub public_keys: Vec<String>,
}

/// How a client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// With its secret (client_secret_basic or client_secret_post).
    #[default]
    ClientSecret,
    /// With an assertion signed by one of its public keys (RFC 7523).
    PrivateKeyJwt,
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ClientSecret => "client_secret",
            Self::PrivateKeyJwt => "private_key_jwt",
        })
    }
}

/// `POST /v1/clients/{id}/set-keys`: replaces a key client's public keys
/// (rotation). Each entry is a key document as `CreateClient::public_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetKeys {
    /// The new keys' documents.
    pub public_keys: Vec<String>,
}

/// `POST /v1/clients/{id}/rotate-secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateSecret {
    /// How long the previous secret keeps working, in seconds (0: not at all).
    #[serde(default)]
    pub grace_seconds: u64,
    /// Lifetime of the new secret in seconds; `None`: it does not expire.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_ttl_seconds: Option<u64>,
}

/// The only answer that ever carries a client secret: creation and rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentials {
    /// The client ID.
    pub client_id: String,
    /// The new secret, in plain text this once; the server keeps only a
    /// digest. Empty (and left out) for a client with public keys.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub client_secret: String,
    /// How the client authenticates.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// RFC 7638 thumbprints of its public keys (private_key_jwt).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub key_thumbprints: Vec<String>,
    /// The client's name.
    pub name: String,
    /// The client's allowed scopes.
    pub scopes: Vec<String>,
    /// Whether the client receives refresh tokens.
    pub refresh_tokens: bool,
    /// Until when the previous secret still works (seconds since the epoch),
    /// after a rotation with a grace period.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_secret_valid_until: Option<u64>,
    /// When the new secret stops working, if it was given a lifetime.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_expires_at: Option<u64>,
    /// The client's own access-token lifetime, if it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_token_ttl_seconds: Option<u64>,
    /// The client's audiences, the first being the default.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub audiences: Vec<String>,
    /// Whether the client's token requests must carry a DPoP proof
    /// (RFC 9449), so every access token it gets is bound to its key.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub require_dpop: bool,
}

/// What the admin API tells about a client: everything but secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client ID.
    pub client_id: String,
    /// The operator's name for it.
    pub name: String,
    /// Active or revoked.
    pub status: ClientStatus,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Whether client_credentials grants return a refresh token.
    pub refresh_tokens: bool,
    /// Creation time, seconds since the epoch.
    pub created_at: u64,
    /// Last successful authentication, seconds since the epoch, to within a
    /// minute (recorded coarsely to keep writes off the hot path).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_used_at: Option<u64>,
    /// When the current secret was set.
    pub secret_set_at: u64,
    /// When the current secret stops (or stopped) working, if it has a
    /// lifetime; past it the secret fails like a wrong one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_expires_at: Option<u64>,
    /// Until when the previous secret still works, if a grace period runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_secret_valid_until: Option<u64>,
    /// The client's own access-token lifetime in seconds; `None`: the
    /// server's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_token_ttl_seconds: Option<u64>,
    /// The audiences its tokens may be for, the first being the default;
    /// empty: the server's audience.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub audiences: Vec<String>,
    /// Whether its token requests must carry a DPoP proof.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub require_dpop: bool,
    /// Refresh-token families neither revoked nor expired.
    pub active_refresh_families: u64,
    /// How the client authenticates.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// RFC 7638 thumbprints of its public keys (private_key_jwt).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub key_thumbprints: Vec<String>,
}

/// `DELETE /v1/clients/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// The client that is gone.
    pub client_id: String,
    /// Live refresh-token families revoked with it (purged when they expire).
    pub refresh_families_revoked: u64,
}

/// `POST /v1/clients/{id}/revoke-families`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamiliesRevoked {
    /// The client whose families were revoked.
    pub client_id: String,
    /// How many families were still live and are now revoked.
    pub revoked_families: u64,
}

/// The life stage of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// Signing new tokens.
    Active,
    /// No longer signing, published until its tokens have expired.
    Retiring,
    /// Gone from the JWKS; kept for the record without its private part.
    Retired,
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        })
    }
}

/// `GET /v1/keys`: a signing key without its private part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The RFC 7638 thumbprint.
    pub kid: String,
    /// The JOSE algorithm.
    pub alg: String,
    /// Its life stage.
    pub state: KeyState,
    /// Creation time, seconds since the epoch; a key is published (as the
    /// next key) from its creation.
    pub created_at: u64,
    /// When it started signing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub activated_at: Option<u64>,
    /// When it stopped signing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deactivated_at: Option<u64>,
    /// Until when a retiring key stays in the JWKS (every token it signed
    /// has expired by then).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub published_until: Option<u64>,
    /// When it left the JWKS and its private part was wiped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retired_at: Option<u64>,
    /// Whether an operator imported it (`keys import`) instead of the
    /// server generating it.
    #[serde(default)]
    pub imported: bool,
    /// On the next key, when an operator asked for a rotation before it
    /// was safe: the second from which it signs (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rotation_scheduled_at: Option<u64>,
}

/// `POST /v1/keys/rotate`: how to rotate. An empty body means `now: false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateKeys {
    /// Rotate at once even if the next key is younger than the JWKS cache
    /// lifetime (a lost or compromised key); otherwise such a rotation is
    /// scheduled for the first safe moment.
    #[serde(default)]
    pub now: bool,
}

/// What `POST /v1/keys/rotate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationOutcome {
    /// The next key signs now.
    Rotated,
    /// The next key signs from `rotates_at`: it has not been published for
    /// a whole JWKS cache lifetime yet.
    Scheduled,
}

/// The answer of `POST /v1/keys/rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// Rotated now or scheduled.
    pub outcome: RotationOutcome,
    /// When the rotation happened or will happen (seconds since the epoch).
    pub rotates_at: u64,
    /// The JWKS cache lifetime the schedule waits out, in seconds.
    pub jwks_max_age: u64,
    /// The keys after the call.
    pub keys: Vec<KeyInfo>,
}

/// `POST /v1/keys/import`: a private key supplied by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportKey {
    /// A PKCS#8 `PRIVATE KEY` PEM document (RS256 of 2048 bits or more,
    /// ES256 on P-256, or EdDSA on Ed25519).
    pub pem: String,
}

/// Every admin API failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    /// `not_found`, `bad_request`, `conflict` or `internal`.
    pub error: String,
    /// A sentence for the operator.
    pub message: String,
}

/// What an [`AuditEvent`] records. Unknown kinds (from a newer server)
/// decode as [`AuditKind::Other`] so an older console keeps working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// An operator created a client.
    ClientCreated,
    /// An operator gave a client a new secret.
    SecretRotated,
    /// An operator replaced a client's public keys.
    ClientKeysSet,
    /// An operator revoked a client.
    ClientRevoked,
    /// An operator re-activated a revoked client.
    ClientReactivated,
    /// An operator deleted a client.
    ClientDeleted,
    /// An operator revoked every refresh-token family of a client.
    FamiliesRevoked,
    /// The signing keys were rotated.
    KeyRotated,
    /// An operator imported a private key as the next signing key.
    KeyImported,
    /// A signing key left the JWKS; its private part is wiped.
    KeyRetired,
    /// An operator asked for a rotation before the next key was safe to
    /// sign; it happens at the first safe moment.
    KeyRotationScheduled,
    /// An operator took a signing key out of the JWKS at once.
    KeyRevoked,
    /// A used refresh token was presented again; its family is revoked.
    RefreshTokenReuse,
    /// Many failed client authentications in a short time.
    AuthFailureBurst,
    /// A kind this program does not know.
    #[serde(other)]
    Other,
}

impl AuditKind {
    /// Whether this is a security event rather than an operator's action.
    pub fn is_security(self) -> bool {
        matches!(self, Self::RefreshTokenReuse | Self::AuthFailureBurst)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ClientCreated => "client_created",
            Self::SecretRotated => "secret_rotated",
            Self::ClientKeysSet => "client_keys_set",
            Self::ClientRevoked => "client_revoked",
            Self::ClientReactivated => "client_reactivated",
            Self::ClientDeleted => "client_deleted",
            Self::FamiliesRevoked => "families_revoked",
            Self::KeyRotated => "key_rotated",
            Self::KeyImported => "key_imported",
            Self::KeyRetired => "key_retired",
            Self::KeyRotationScheduled => "key_rotation_scheduled",
            Self::KeyRevoked => "key_revoked",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::AuthFailureBurst => "auth_failure_burst",
            Self::Other => "other",
        })
    }
}

/// One entry of the audit trail (`GET /v1/audit`). Never carries a secret
/// or a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the trail: strictly increasing, never reused, so a
    /// follower asks for everything `after` the last one it saw.
    pub seq: u64,
    /// When it happened, seconds since the epoch.
    pub at: u64,
    /// What happened.
    pub kind: AuditKind,
    /// The client concerned, if one is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// A sentence for the operator (counts, grace periods, ...).
    #[serde(default)]
    pub detail: String,
}

/// `GET /v1/stats`: counters since the server started, read with relaxed
/// atomics (each is exact; the three are not one snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// When the server started, seconds since the epoch.
    pub started_at: u64,
    /// Access tokens issued by client_credentials grants.
    pub tokens_issued: u64,
    /// Successful refresh-token grants.
    pub tokens_refreshed: u64,
    /// Token requests refused as `invalid_client`.
    pub failed_authentications: u64,
}
