//! From decoded parameters and the Authorization header to a typed token
//! request (RFC 6749 §2.3.1, §3.2, §4.4, §6).

use super::error::TokenError;
use super::scope;
use crate::client_auth::{self, AuthorizationHeader, Presented};

/// Where a parameter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request URI's query string.
    Query,
    /// An `application/x-www-form-urlencoded` body.
    Body,
}

/// One decoded `name=value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Decoded name.
    pub name: String,
    /// Decoded value.
    pub value: String,
    /// Query or body.
    pub source: Source,
}

/// The grant asked for.
#[derive(Clone, PartialEq, Eq)]
pub enum Grant {
    /// `grant_type=client_credentials`.
    ClientCredentials {
        /// Requested scope, if any.
        scope: Option<Vec<String>>,
    },
    /// `grant_type=refresh_token`.
    RefreshToken {
        /// The presented refresh token.
        refresh_token: String,
        /// Requested (narrower) scope, if any.
        scope: Option<Vec<String>>,
    },
    /// Any other grant type; refused after client authentication.
    Unsupported,
}

impl std::fmt::Debug for Grant {
    // The refresh token must not reach a log through a stray `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientCredentials { scope } => f.debug_struct("ClientCredentials").field("scope", scope).finish(),
            Self::RefreshToken { scope, .. } => {
                f.debug_struct("RefreshToken").field("scope", scope).finish_non_exhaustive()
            }
            Self::Unsupported => f.write_str("Unsupported"),
        }
    }
}

impl Grant {
    /// The `grant_type` value, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClientCredentials { .. } => "client_credentials",
            Self::RefreshToken { .. } => "refresh_token",
            Self::Unsupported => "unsupported",
        }
    }
}

/// A token request, checked for shape but not yet authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The client's credentials.
    pub credentials: Presented,
    /// The grant.
    pub grant: Grant,
    /// The RFC 8707 `resource`: which of the client's audiences the access
    /// token is for.
    pub resource: Option<String>,
}

/// Parsing options from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsePolicy {
    /// Whether `client_id`/`client_secret` may come in the query string.
    pub allow_query_credentials: bool,
}

/// Parameters whose names may appear in an error description; any other
/// name came from the request and is not echoed.
const KNOWN: [&str; 8] = [
    "grant_type",
    "client_id",
    "client_secret",
    "refresh_token",
    "scope",
    "resource",
    "client_assertion_type",
    "client_assertion",
];

impl TokenRequest {
    /// Checks and types the parameters of a token request.
    ///
    /// # Errors
    /// [`TokenError::InvalidRequest`] for a repeated or missing parameter,
    /// credentials in two places or in a forbidden place;
    /// [`TokenError::InvalidClient`] for absent or malformed credentials;
    /// [`TokenError::InvalidScope`] for a malformed scope.
    pub fn parse(
        params: &[Param],
        authorization: AuthorizationHeader,
        policy: ParsePolicy,
    ) -> Result<Self, TokenError> {
        reject_repeats(params)?;
        // RFC 6749 §3.1: a parameter without a value is treated as omitted.
        let find = |name: &str| params.iter().find(|p| p.name == name && !p.value.is_empty());

        let grant_type = find("grant_type").ok_or(TokenError::InvalidRequest("grant_type is missing"))?;
        let credentials = client_auth::presented(params, authorization, policy)?;
        let scope = find("scope").map(|p| scope::parse(&p.value)).transpose()?;
        let grant = match grant_type.value.as_str() {
            "client_credentials" => Grant::ClientCredentials { scope },
            "refresh_token" => {
                let token = find("refresh_token").ok_or(TokenError::InvalidRequest("refresh_token is missing"))?;
                Grant::RefreshToken { refresh_token: token.value.clone(), scope }
            }
            _ => Grant::Unsupported,
        };
        let resource = find("resource").map(|p| p.value.clone());
        Ok(Self { credentials, grant, resource })
    }
}

fn reject_repeats(params: &[Param]) -> Result<(), TokenError> {
    for (i, param) in params.iter().enumerate() {
        if params[..i].iter().any(|earlier| earlier.name == param.name) {
            return Err(TokenError::InvalidRequest(match KNOWN.iter().find(|k| **k == param.name) {
                Some(&"grant_type") => "grant_type is repeated",
                Some(&"client_id") => "client_id is repeated",
                Some(&"client_secret") => "client_secret is repeated",
                Some(&"client_assertion_type") => "client_assertion_type is repeated",
                Some(&"client_assertion") => "client_assertion is repeated",
                Some(&"refresh_token") => "refresh_token is repeated",
                Some(&"scope") => "scope is repeated",
                // RFC 8707 allows several; a token has one audience here.
                Some(&"resource") => "resource is repeated; a token is issued for one resource",
                _ => "a parameter is repeated",
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
