//! RFC 9449 for a resource server: a DPoP-bound access token (`cnf.jkt`) is
//! accepted only as `Authorization: DPoP <token>` with a `DPoP` proof, by
//! the key the token is bound to, of this request (`htm`, `htu`, `ath`, a
//! fresh `iat`, an unseen `jti`). Unbound tokens keep working as `Bearer`.
//!
//! [`Verifier::authorize_request`] is the one call; its [`RequestError`]
//! knows its answer:
//!
//! | [`RequestError`] | status | `WWW-Authenticate` |
//! |---|---|---|
//! | `Missing` | 401 | `Bearer, DPoP algs="..."` |
//! | `Malformed` | 400 | `Bearer error="invalid_request", ...` |
//! | `InvalidToken` (as Bearer) | 401 | `Bearer error="invalid_token", ...` |
//! | `InvalidToken` (as DPoP), `BoundTokenAsBearer`, `UnboundTokenAsDpop` | 401 | `DPoP error="invalid_token", ..., algs="..."` |
//! | `InvalidProof`, `KeyMismatch` | 401 | `DPoP error="invalid_dpop_proof", ..., algs="..."` |
//! | `InsufficientScope` | 403 | `<scheme> error="insufficient_scope", scope="..."` |

use http::header::{AUTHORIZATION, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::bearer::{self, BearerError};
use super::{MissingScope, Verifier, VerifyError, require_scopes, unix_now};
use crate::claims::AccessTokenClaims;
use crate::dpop::{DpopError, MAX_PROOF_LEN, SIGNING_ALGS};

/// How many proofs a verifier remembers for replay detection by default:
/// those of the last two minutes, about 800 requests a second with bound
/// tokens; beyond, proofs are refused until old ones expire (fail closed).
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The header a DPoP proof travels in.
pub const DPOP_HEADER: &str = "dpop";

/// How the access token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// Why a request is not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `Authorization` header with a scheme Tessera's tokens use.
    #[error("the request carries no access token")]
    Missing,
    /// The `Authorization` header is repeated or its token malformed.
    #[error("the Authorization header is malformed")]
    Malformed,
    /// The token failed a check.
    #[error("the access token is invalid: {error}")]
    InvalidToken {
        /// How it was sent, which names the challenge.
        scheme: Scheme,
        /// The failed check.
        #[source]
        error: VerifyError,
    },
    /// A DPoP-bound token sent as a bearer token.
    #[error("the access token is bound to a key (DPoP) and was sent without a proof")]
    BoundTokenAsBearer,
    /// An unbound token sent with the DPoP scheme.
    #[error("the access token is not bound to a key; send it as a Bearer token")]
    UnboundTokenAsDpop,
    /// The `DPoP` proof is missing, repeated or fails a check.
    #[error("{0}")]
    InvalidProof(#[source] DpopError),
    /// The proof is valid but by another key than the token's.
    #[error("the DPoP proof is not by the key the access token is bound to")]
    KeyMismatch,
    /// The token is valid but lacks a required scope.
    #[error("{error}")]
    InsufficientScope {
        /// How it was sent, which names the challenge.
        scheme: Scheme,
        /// The scope it lacks.
        #[source]
        error: MissingScope,
    },
}

impl RequestError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The error code, if any (none when no token was sent).
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            Self::Malformed => Some("invalid_request"),
            Self::InvalidToken { .. } | Self::BoundTokenAsBearer | Self::UnboundTokenAsDpop => Some("invalid_token"),
            Self::InvalidProof(_) | Self::KeyMismatch => Some("invalid_dpop_proof"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
        }
    }

    /// A sentence for a response body or a log: names the failed check,
    /// never echoes anything taken from the request.
    pub fn description(&self) -> String {
        match self {
            Self::InvalidToken { error, .. } => format!("the token failed the {} check", error.check()),
            other => other.to_string(),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9449 §7.1).
    pub fn www_authenticate(&self) -> HeaderValue {
        let value = match self {
            Self::Missing => format!(r#"Bearer, DPoP algs="{}""#, SIGNING_ALGS.join(" ")),
            Self::Malformed => return BearerError::Malformed.www_authenticate(),
            Self::InvalidToken { scheme: Scheme::Bearer, error } => {
                return BearerError::InvalidToken(error.clone()).www_authenticate();
            }
            Self::InsufficientScope { scheme: Scheme::Bearer, error } => {
                return BearerError::InsufficientScope(error.clone()).www_authenticate();
            }
            Self::InsufficientScope { scheme: Scheme::Dpop, error: MissingScope(scope) } => {
                let scope: String = scope.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').collect();
                format!(r#"DPoP error="insufficient_scope", scope="{scope}", algs="{}""#, SIGNING_ALGS.join(" "))
            }
            Self::InvalidToken { scheme: Scheme::Dpop, .. } | Self::BoundTokenAsBearer | Self::UnboundTokenAsDpop => {
                challenge("invalid_token", &self.description())
            }
            Self::InvalidProof(_) | Self::KeyMismatch => challenge("invalid_dpop_proof", &self.description()),
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
    }
}

/// A `DPoP` challenge with an error; `description` is one of this crate's
/// fixed sentences.
pub(super) fn challenge(error: &str, description: &str) -> String {
    format!(r#"DPoP error="{error}", error_description="{description}", algs="{}""#, SIGNING_ALGS.join(" "))
}

impl Verifier {
    /// Authorizes a request: reads its `Authorization` header (`Bearer` or
    /// `DPoP`) and `DPoP` header from `headers`, verifies the token as
    /// [`Verifier::verify_async`] does, and
    ///
    /// - for a token bound to a key (`cnf.jkt`): requires the `DPoP` scheme
    ///   and exactly one `DPoP` proof by that key for this request —
    ///   `method` (e.g. `GET`) and `url`, the request's URL as clients reach
    ///   it (`https://api.example.com/path`; a query is ignored) — with
    ///   `ath` the token's hash, `iat` within 60 s and a `jti` not seen
    ///   before by this verifier or its clones;
    /// - for an unbound token: requires the `Bearer` scheme;
    ///
    /// then checks that it grants every scope in `required_scopes`. The
    /// error says which answer to send: [`RequestError::status`] and
    /// [`RequestError::www_authenticate`].
    ///
    /// # Errors
    /// [`RequestError`]: the first check the request fails.
    pub async fn authorize_request(
        &self,
        headers: &HeaderMap,
        method: &str,
        url: &str,
        required_scopes: &[&str],
    ) -> Result<AccessTokenClaims, RequestError> {
        let (scheme, token) = credentials(headers)?;
        let claims = self.verify_async(token).await.map_err(|error| RequestError::InvalidToken { scheme, error })?;
        match (scheme, claims.dpop_jkt()) {
            (Scheme::Bearer, Some(_)) => return Err(RequestError::BoundTokenAsBearer),
            (Scheme::Dpop, None) => return Err(RequestError::UnboundTokenAsDpop),
            (Scheme::Bearer, None) => {}
            (Scheme::Dpop, Some(jkt)) => {
                let proof = proof_header(headers)?;
                let proof =
                    self.dpop.check(proof, method, url, Some(token), unix_now()).map_err(RequestError::InvalidProof)?;
                if proof.jkt() != jkt {
                    return Err(RequestError::KeyMismatch);
                }
            }
        }
        require_scopes(&claims, required_scopes).map_err(|error| RequestError::InsufficientScope { scheme, error })?;
        Ok(claims)
    }
}

/// The scheme and token of the one `Authorization` header.
fn credentials(headers: &HeaderMap) -> Result<(Scheme, &str), RequestError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(RequestError::Missing),
        (Some(value), None) => value.as_bytes(),
        (Some(_), Some(_)) => return Err(RequestError::Malformed),
    };
    if value.len() > 8 * 1024 {
        return Err(RequestError::Malformed);
    }
    let space = value.iter().position(|b| *b == b' ').unwrap_or(value.len());
    let scheme = match &value[..space] {
        s if s.eq_ignore_ascii_case(b"bearer") => Scheme::Bearer,
        s if s.eq_ignore_ascii_case(b"dpop") => Scheme::Dpop,
        _ => return Err(RequestError::Missing),
    };
    let token = bearer::b64token(&value[space..]).ok_or(RequestError::Malformed)?;
    Ok((scheme, token))
}

/// The one `DPoP` header's proof.
fn proof_header(headers: &HeaderMap) -> Result<&str, RequestError> {
    let mut values = headers.get_all(DPOP_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(RequestError::InvalidProof(DpopError::Missing)),
        (Some(_), Some(_)) => Err(RequestError::InvalidProof(DpopError::Repeated)),
        (Some(value), None) => match value.to_str() {
            Ok(text) if text.len() <= MAX_PROOF_LEN => Ok(text.trim()),
            _ => Err(RequestError::InvalidProof(DpopError::Malformed)),
        },
    }
}

#[cfg(test)]
mod tests;
