//! The errors of the token endpoint.

use tessera_shared::wire::{ErrorCode, INVALID_CLIENT_DESCRIPTION};

use crate::crypto::CryptoError;
use crate::store::StoreError;

/// Why a token request failed. The `Display` text is the
/// `error_description` sent to the client: it never contains a secret, a
/// token or any other value taken from the request.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request is malformed.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed: unknown ID, wrong secret, revoked
    /// client, no or malformed credentials. One description for all, so
    /// the answer does not tell which.
    #[error("{}", INVALID_CLIENT_DESCRIPTION)]
    InvalidClient,
    /// The refresh token cannot be used.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// The client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    /// The grant type is unknown.
    #[error("grant_type must be client_credentials or refresh_token")]
    UnsupportedGrantType,
    /// The scope is malformed, not allowed, or wider than the original grant.
    #[error("{0}")]
    InvalidScope(&'static str),
    /// The `resource` is not one of the client's audiences (RFC 8707 §2).
    #[error("resource is not an audience this client may ask for")]
    InvalidTarget,
    /// The DPoP proof is missing where the client or the refresh token's
    /// binding requires one, malformed, replayed, stale, for another
    /// request, or of a key other than the refresh token is bound to
    /// (RFC 9449 §5).
    #[error("{0}")]
    InvalidDpopProof(&'static str),
    /// Storage failed.
    #[error("the server could not complete the request")]
    Storage(#[from] StoreError),
    /// Random generation or signing failed.
    #[error("the server could not complete the request")]
    Crypto(#[from] CryptoError),
}

impl TokenError {
    /// The RFC 6749 §5.2 code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::InvalidClient => ErrorCode::InvalidClient,
            Self::InvalidGrant(_) => ErrorCode::InvalidGrant,
            Self::UnauthorizedClient(_) => ErrorCode::UnauthorizedClient,
            Self::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
            Self::InvalidScope(_) => ErrorCode::InvalidScope,
            Self::InvalidTarget => ErrorCode::InvalidTarget,
            Self::InvalidDpopProof(_) => ErrorCode::InvalidDpopProof,
            Self::Storage(_) | Self::Crypto(_) => ErrorCode::ServerError,
        }
    }

    /// The internal cause, for the log only (never sent to the client).
    pub fn internal_cause(&self) -> Option<String> {
        match self {
            Self::Storage(e) => Some(e.to_string()),
            Self::Crypto(e) => Some(e.to_string()),
            _ => None,
        }
    }
}
