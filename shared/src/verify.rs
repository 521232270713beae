//! Offline verification of Tessera access tokens with the issuer's public
//! keys alone.
//!
//! ```no_run
//! # fn demo(jwks_json: &str, token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_shared::{jwk::JwkSet, verify::Verifier};
//! let keys: JwkSet = serde_json::from_str(jwks_json)?;
//! let verifier = Verifier::new(keys, "http://127.0.0.1:8080", "http://127.0.0.1:8080");
//! let claims = verifier.verify(token)?;
//! println!("token of {}", claims.client_id);
//! # Ok(()) }
//! ```

use crate::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims};
use crate::jwk::{Algorithm, Jwk, JwkSet};

/// Default tolerance for clock skew on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// Why a token was refused; each variant is one check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not three base64url parts with a JSON header.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The `typ` header is not `at+jwt`.
    #[error("the token's typ is {0:?}, not \"at+jwt\"")]
    WrongType(Option<String>),
    /// The header names no `kid`.
    #[error("the token names no key (no kid)")]
    MissingKeyId,
    /// No key in the set has the token's `kid`.
    #[error("no key with kid {0:?} is known")]
    UnknownKey(String),
    /// The header's `alg` is not the one the key declares.
    #[error("algorithm {got} is not allowed for this key (it declares {allowed})")]
    AlgorithmNotAllowed {
        /// What the token says.
        got: String,
        /// What the key allows.
        allowed: String,
    },
    /// The key cannot be used (unknown type or missing members).
    #[error("the key with kid {0:?} is not usable")]
    UnusableKey(String),
    /// The signature does not match.
    #[error("the signature is invalid")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("the token's issuer is not the expected one")]
    WrongIssuer,
    /// `aud` does not name the expected audience.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("the token's claims are incomplete or malformed")]
    BadClaims,
}

/// Checks access tokens against a fixed key set.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: JwkSet,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
}

impl Verifier {
    /// A verifier for tokens of `issuer` meant for `audience`, signed by
    /// one of `keys`.
    pub fn new(keys: JwkSet, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self { keys, issuer: issuer.into(), audience: audience.into(), leeway_seconds: DEFAULT_LEEWAY_SECONDS }
    }

    /// Sets the clock-skew tolerance for `exp` and `nbf`.
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway_seconds = seconds;
        self
    }

    /// Verifies `token` and returns its claims.
    ///
    /// # Errors
    /// The first check the token fails, as a [`VerifyError`].
    pub fn verify(&self, token: &str) -> Result<AccessTokenClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.typ.as_deref().map(normalise_typ) != Some(ACCESS_TOKEN_TYP) {
            return Err(VerifyError::WrongType(header.typ));
        }
        let kid = header.kid.ok_or(VerifyError::MissingKeyId)?;
        let jwk = self.keys.find(&kid).ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?;
        let allowed = key_algorithm(jwk).ok_or_else(|| VerifyError::UnusableKey(kid.clone()))?;
        let got = header_algorithm(header.alg);
        if got != Some(allowed) {
            return Err(VerifyError::AlgorithmNotAllowed {
                got: format!("{:?}", header.alg),
                allowed: allowed.to_string(),
            });
        }
        let decoding_key = decoding_key(jwk).ok_or(VerifyError::UnusableKey(kid))?;

        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.leeway = self.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessTokenClaims>(token, &decoding_key, &validation)
            .map(|data| data.claims)
            .map_err(|e| classify(e.kind()))
    }
}

/// RFC 9068 §4: `typ` may also be spelled with the `application/` prefix.
fn normalise_typ(typ: &str) -> &str {
    typ.strip_prefix("application/").unwrap_or(typ)
}

/// The algorithm a key declares; a key without `alg` is not used, so a
/// token can never choose its own algorithm.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let alg: Algorithm = jwk.alg.as_deref()?.parse().ok()?;
    let kty_matches = match alg {
        Algorithm::ES256 => jwk.kty == "EC" && jwk.crv.as_deref() == Some("P-256"),
        Algorithm::EdDSA => jwk.kty == "OKP" && jwk.crv.as_deref() == Some("Ed25519"),
        Algorithm::RS256 => jwk.kty == "RSA",
    };
    kty_matches.then_some(alg)
}

fn header_algorithm(alg: jsonwebtoken::Algorithm) -> Option<Algorithm> {
    match alg {
        jsonwebtoken::Algorithm::ES256 => Some(Algorithm::ES256),
        jsonwebtoken::Algorithm::EdDSA => Some(Algorithm::EdDSA),
        jsonwebtoken::Algorithm::RS256 => Some(Algorithm::RS256),
        _ => None,
    }
}

fn decoding_key(jwk: &Jwk) -> Option<jsonwebtoken::DecodingKey> {
    // jsonwebtoken has its own JWK type; our JSON is the standard one.
    let value = serde_json::to_value(jwk).ok()?;
    let theirs: jsonwebtoken::jwk::Jwk = serde_json::from_value(value).ok()?;
    jsonwebtoken::DecodingKey::from_jwk(&theirs).ok()
}

fn classify(kind: &jsonwebtoken::errors::ErrorKind) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => VerifyError::BadSignature,
        K::ExpiredSignature => VerifyError::Expired,
        K::ImmatureSignature => VerifyError::NotYetValid,
        K::InvalidIssuer => VerifyError::WrongIssuer,
        K::InvalidAudience => VerifyError::WrongAudience,
        K::MissingRequiredClaim(_) | K::Json(_) | K::Utf8(_) => VerifyError::BadClaims,
        _ => VerifyError::Malformed,
    }
}
