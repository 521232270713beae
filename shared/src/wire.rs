//! The token endpoint's JSON, as clients see it.

use serde::{Deserialize, Serialize};

/// The `token_type` of an access token not bound to a key.
pub const TOKEN_TYPE_BEARER: &str = "Bearer";
/// The `token_type` of a DPoP-bound access token (RFC 9449 §5).
pub use crate::dpop::TOKEN_TYPE_DPOP;

/// A successful token response (RFC 6749 §5.1), in the field order of the
/// Blynk page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The signed JWT.
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a token bound to the key of the request's
    /// DPoP proof.
    pub token_type: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// The next refresh token of the family; absent for clients created
    /// with `--no-refresh`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_token: Option<String>,
    /// The granted scope, present when a scope was asked for or when the
    /// granted scope differs from what was asked (RFC 6749 §5.1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
}

/// The error codes of RFC 6749 §5.2 that the token endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: a missing, repeated or unparsable parameter.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The refresh token is unknown, expired, revoked, reused or not the client's.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not one Tessera supports.
    UnsupportedGrantType,
    /// The requested scope is not allowed or widens the original grant.
    InvalidScope,
    /// The `resource` (RFC 8707 §2) is not one of the client's audiences.
    InvalidTarget,
    /// The DPoP proof is missing where required, malformed, replayed,
    /// stale, does not match the request, or is of a key other than the
    /// one the refresh token is bound to (RFC 9449 §5).
    InvalidDpopProof,
    /// The server failed (RFC 6749 §4.1.2.1); never caused by input.
    ServerError,
    /// Too many failed client authentications: sent with 429 and
    /// `Retry-After` (the registered OAuth code for "try again later").
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code as it appears in the `error` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An error response body (RFC 6749 §5.2); both fields are always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The machine-readable code.
    pub error: ErrorCode,
    /// A human-readable sentence; never contains a secret or a token.
    pub error_description: String,
}

/// The description of every failed client authentication, exactly as on
/// the Blynk page.
pub const INVALID_CLIENT_DESCRIPTION: &str = "Client ID is not found or password is wrong.";

/// RFC 8414 authorization server metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The `iss` of every token.
    pub issuer: String,
    /// Where `POST /oauth2/token` is.
    pub token_endpoint: String,
    /// Where the public keys are.
    pub jwks_uri: String,
    /// `client_credentials` and `refresh_token`.
    pub grant_types_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post` and `private_key_jwt`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms a DPoP proof may be signed with (RFC 9449 §5.1).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// The algorithms a client assertion may be signed with (private_key_jwt).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// How callers of the revocation endpoint authenticate (as at the token endpoint).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// How callers of the introspection endpoint authenticate (as at the token endpoint).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 7009 endpoint, once served.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revocation_endpoint: Option<String>,
    /// RFC 7662 endpoint, once served.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub introspection_endpoint: Option<String>,
    /// `response_types_supported` is REQUIRED by RFC 8414; a
    /// machine-to-machine server supports none, so it is empty.
    pub response_types_supported: Vec<String>,
}
