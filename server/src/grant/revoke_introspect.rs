//! The requests of `POST /oauth2/revoke` (RFC 7009 §2.1) and
//! `POST /oauth2/introspect` (RFC 7662 §2.1): a `token`, an optional
//! `token_type_hint`, and the client's credentials exactly as the token
//! endpoint takes them.

use super::error::TokenError;
use super::request::{Param, ParsePolicy};
use crate::client_auth::{self, AuthorizationHeader, Presented};

/// What kind of token the client says it sends. A hint only: the server
/// looks the token up as the other kind too (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

/// A revocation or introspection request, checked for shape.
#[derive(Clone, PartialEq, Eq)]
pub struct RevokeIntrospectRequest {
    /// The caller's credentials.
    pub credentials: Presented,
    /// The token to revoke or introspect.
    pub token: String,
    /// The caller's hint; `None` when absent or not one we know (RFC 7009
    /// lets a server ignore hints it does not understand).
    pub hint: Option<TokenHint>,
}

impl std::fmt::Debug for RevokeIntrospectRequest {
    // The token must not reach a log through a stray `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeIntrospectRequest")
            .field("credentials", &self.credentials)
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}

/// Parameter names that may appear in an error description.
const KNOWN: [&str; 6] =
    ["token", "token_type_hint", "client_id", "client_secret", "client_assertion_type", "client_assertion"];

impl RevokeIntrospectRequest {
    /// Checks and types the parameters.
    ///
    /// # Errors
    /// [`TokenError::InvalidRequest`] for a repeated parameter, a missing
    /// `token`, or credentials in two places or a forbidden place;
    /// [`TokenError::InvalidClient`] for absent or malformed credentials.
    pub fn parse(
        params: &[Param],
        authorization: AuthorizationHeader,
        policy: ParsePolicy,
    ) -> Result<Self, TokenError> {
        for (i, param) in params.iter().enumerate() {
            if params[..i].iter().any(|earlier| earlier.name == param.name) {
                return Err(TokenError::InvalidRequest(match KNOWN.iter().find(|k| **k == param.name) {
                    Some(&"token") => "token is repeated",
                    Some(&"token_type_hint") => "token_type_hint is repeated",
                    Some(&"client_id") => "client_id is repeated",
                    Some(&"client_secret") => "client_secret is repeated",
                    Some(&"client_assertion_type") => "client_assertion_type is repeated",
                    Some(&"client_assertion") => "client_assertion is repeated",
                    _ => "a parameter is repeated",
                }));
            }
        }
        let find = |name: &str| params.iter().find(|p| p.name == name && !p.value.is_empty());
        // Authentication comes first, as at the token endpoint: an
        // unauthenticated caller learns nothing about its parameters.
        let credentials = client_auth::presented(params, authorization, policy)?;
        let token = find("token").ok_or(TokenError::InvalidRequest("token is missing"))?.value.clone();
        let hint = find("token_type_hint").and_then(|p| match p.value.as_str() {
            "access_token" => Some(TokenHint::AccessToken),
            "refresh_token" => Some(TokenHint::RefreshToken),
            _ => None,
        });
        Ok(Self { credentials, token, hint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_auth::ClientCredentials;
    use crate::grant::request::Source;

    fn p(name: &str, value: &str) -> Param {
        Param { name: name.into(), value: value.into(), source: Source::Body }
    }

    const POLICY: ParsePolicy = ParsePolicy { allow_query_credentials: true };

    fn basic() -> AuthorizationHeader {
        AuthorizationHeader::Basic(ClientCredentials { client_id: "id".into(), client_secret: "s".into() })
    }

    #[test]
    fn reads_token_hint_and_credentials() {
        let request =
            RevokeIntrospectRequest::parse(&[p("token", "t"), p("token_type_hint", "refresh_token")], basic(), POLICY)
                .unwrap();
        assert_eq!(request.token, "t");
        assert_eq!(request.hint, Some(TokenHint::RefreshToken));
        let request = RevokeIntrospectRequest::parse(
            &[p("token", "t"), p("client_id", "id"), p("client_secret", "s"), p("token_type_hint", "id_token")],
            AuthorizationHeader::Absent,
            POLICY,
        )
        .unwrap();
        assert_eq!(request.credentials.client_id(), "id");
        assert_eq!(request.hint, None, "an unknown hint is ignored");
    }

    #[test]
    fn a_missing_or_repeated_token_is_invalid_request() {
        let missing = RevokeIntrospectRequest::parse(&[], basic(), POLICY).unwrap_err();
        assert!(matches!(missing, TokenError::InvalidRequest("token is missing")));
        let repeated =
            RevokeIntrospectRequest::parse(&[p("token", "a"), p("token", "b")], basic(), POLICY).unwrap_err();
        assert!(matches!(repeated, TokenError::InvalidRequest("token is repeated")));
    }

    #[test]
    fn no_credentials_is_invalid_client_before_anything_else() {
        let error = RevokeIntrospectRequest::parse(&[], AuthorizationHeader::Absent, POLICY).unwrap_err();
        assert!(matches!(error, TokenError::InvalidClient));
    }
}
