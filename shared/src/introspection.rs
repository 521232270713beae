//! The RFC 7662 introspection response, as `POST /oauth2/introspect`
//! answers it.

use serde::{Deserialize, Serialize};

/// The `token_type` Tessera reports for a refresh token (RFC 7662 leaves
/// the value open; access tokens report `Bearer`).
pub const TOKEN_TYPE_REFRESH: &str = "refresh_token";

/// An introspection response (RFC 7662 §2.2). An inactive token is
/// exactly `{"active":false}`: nothing else is said about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    /// Whether the token is currently usable.
    pub active: bool,
    /// Space-separated scopes, when any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// The subject (the client ID, for client credentials).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exp: Option<u64>,
    /// Issue time, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iat: Option<u64>,
    /// The issuer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iss: Option<String>,
    /// The audience (access tokens only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aud: Option<String>,
    /// `Bearer` for access tokens, `DPoP` for DPoP-bound ones (RFC 9449
    /// §6.2), [`TOKEN_TYPE_REFRESH`] for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_type: Option<String>,
    /// The access token's ID (access tokens only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
    /// The key a DPoP-bound access token is bound to (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<crate::claims::Confirmation>,
}

impl IntrospectionResponse {
    /// `{"active":false}`.
    pub fn inactive() -> Self {
        Self::default()
    }
}
