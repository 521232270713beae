//! RFC 6750 for a resource server: the bearer token in the `Authorization`
//! header, and the answer when it is missing, bad or short of a scope.
//!
//! | [`BearerError`] | status | `WWW-Authenticate` |
//! |---|---|---|
//! | `Missing` | 401 | `Bearer` (no error attribute, RFC 6750 §3.1) |
//! | `Malformed` | 400 | `Bearer error="invalid_request", ...` |
//! | `InvalidToken` | 401 | `Bearer error="invalid_token", ...` (`DPoP error="invalid_token", algs=...` for a DPoP-bound token) |
//! | `InsufficientScope` | 403 | `Bearer error="insufficient_scope", scope="..."` |

use http::header::{AUTHORIZATION, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::{MissingScope, VerifyError};

/// Longer `Authorization` headers are refused unread: Tessera's tokens are
/// well under 2 KiB.
const MAX_HEADER_LEN: usize = 8 * 1024;

/// Why a request is not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer` header at all.
    #[error("the request carries no bearer token")]
    Missing,
    /// The header is repeated, or its token is not a `b64token`.
    #[error("the Authorization header is malformed")]
    Malformed,
    /// The token failed a check.
    #[error("the access token is invalid: {0}")]
    InvalidToken(#[source] VerifyError),
    /// The token is valid but lacks a required scope.
    #[error("{0}")]
    InsufficientScope(#[source] MissingScope),
}

impl BearerError {
    /// The HTTP status to answer with (RFC 6750 §3.1).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::Malformed => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The RFC 6750 error code, if any (none when no token was sent).
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            Self::Malformed => Some("invalid_request"),
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::InsufficientScope(_) => Some("insufficient_scope"),
        }
    }

    /// A sentence for a response body or a log: names the failed check,
    /// never echoes anything taken from the token.
    pub fn description(&self) -> String {
        match self {
            Self::InvalidToken(e) => format!("the token failed the {} check", e.check()),
            other => other.to_string(),
        }
    }

    /// The `WWW-Authenticate` challenge. The description names the failed
    /// check only; nothing from the token is echoed into the header.
    pub fn www_authenticate(&self) -> HeaderValue {
        let value = match self {
            Self::Missing => "Bearer".to_owned(),
            Self::Malformed => {
                r#"Bearer error="invalid_request", error_description="the Authorization header is malformed""#
                    .to_owned()
            }
            // A DPoP-bound token sent as Bearer: the client is told to use
            // the DPoP scheme (RFC 9449 §7.1).
            Self::InvalidToken(VerifyError::DpopBound) => super::dpop::challenge("invalid_token", &self.description()),
            Self::InvalidToken(_) => {
                format!(r#"Bearer error="invalid_token", error_description="{}""#, self.description())
            }
            Self::InsufficientScope(MissingScope(scope)) => {
                // Scopes are the resource server's own constants; quoting is
                // still made safe in case one holds a quote or backslash.
                format!(r#"Bearer error="insufficient_scope", scope="{}""#, quote_safe(scope))
            }
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

fn quote_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').collect()
}

/// The bearer token of the request's `Authorization` header.
///
/// # Errors
/// [`BearerError::Missing`] without an `Authorization` header or with one
/// of another scheme; [`BearerError::Malformed`] for a repeated header or a
/// token that is not an RFC 6750 `b64token`.
pub fn token_from_headers(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(BearerError::Missing),
        (Some(value), None) => token_from_value(value.as_bytes()),
        (Some(_), Some(_)) => Err(BearerError::Malformed),
    }
}

/// The token of one `Authorization` header value, `Bearer <b64token>`.
///
/// # Errors
/// As [`token_from_headers`].
pub fn token_from_value(value: &[u8]) -> Result<&str, BearerError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(BearerError::Malformed);
    }
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return if value.eq_ignore_ascii_case(b"bearer") {
            Err(BearerError::Malformed)
        } else {
            Err(BearerError::Missing)
        };
    };
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return Err(BearerError::Missing);
    }
    b64token(&value[space..]).ok_or(BearerError::Malformed)
}

/// The credentials after an auth scheme, if they are a `b64token` (RFC 6750
/// §2.1; RFC 9449 §7.1 uses the same `token68` syntax).
pub(super) fn b64token(credentials: &[u8]) -> Option<&str> {
    let token = credentials.trim_ascii();
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body_len = token.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    let body_ok = token[..body_len].iter().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b));
    if body_len == 0 || !body_ok {
        return None;
    }
    std::str::from_utf8(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_of_a_bearer_header() {
        assert_eq!(token_from_value(b"Bearer abc.def-_~+/=="), Ok("abc.def-_~+/=="));
        assert_eq!(token_from_value(b"bearer   abc "), Ok("abc"));
    }

    #[test]
    fn no_header_or_another_scheme_is_missing() {
        assert_eq!(token_from_headers(&HeaderMap::new()), Err(BearerError::Missing));
        assert_eq!(token_from_value(b"Basic dXNlcjpwYXNz"), Err(BearerError::Missing));
    }

    #[test]
    fn a_broken_bearer_header_is_malformed() {
        for value in [&b"Bearer"[..], b"Bearer ", b"Bearer a b", b"Bearer a\"b", b"Bearer ==="] {
            assert_eq!(token_from_value(value), Err(BearerError::Malformed), "{value:?}");
        }
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(token_from_headers(&headers), Err(BearerError::Malformed));
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(BearerError::Missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(BearerError::Missing.www_authenticate(), "Bearer");
        let invalid = BearerError::InvalidToken(VerifyError::Expired);
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            invalid.www_authenticate(),
            r#"Bearer error="invalid_token", error_description="the token failed the exp check""#
        );
        let scope = BearerError::InsufficientScope(MissingScope("organization:read".into()));
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        assert_eq!(scope.www_authenticate(), r#"Bearer error="insufficient_scope", scope="organization:read""#);
        assert_eq!(BearerError::Malformed.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_token_chosen_kid_never_reaches_the_header() {
        let error = BearerError::InvalidToken(VerifyError::UnknownKey("\"\r\nSet-Cookie: x".into()));
        let header = error.www_authenticate();
        assert!(!header.to_str().unwrap().contains("Set-Cookie"));
    }
}
