//! private_key_jwt (RFC 7523 §2.2, §3): checking a client assertion, a
//! compact JWS signed by one of the client's registered public keys.
//!
//! Pure: the caller supplies the keys, the accepted audiences and `now`,
//! and records the `jti` afterwards (the replay set is the store's). The
//! rules:
//! - the algorithm is pinned to the key's type: ES256 for EC P-256, EdDSA
//!   for Ed25519, RS256 or PS256 for RSA (one of them if the key's JWK
//!   names it); `none`, HMAC and anything else are refused;
//! - `iss` = `sub` = the client ID;
//! - `aud` holds the token endpoint URL or the issuer;
//! - `exp` is required, in the future (with [`LEEWAY`]) and at most
//!   [`MAX_LIFETIME`] ahead; `nbf`, if present, has passed;
//! - `jti` is required.
//!
//! Every failure is an [`AssertionError`], which the endpoint answers as
//! the one `invalid_client` of a wrong secret; the variant is for tests
//! and debug logs only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tessera_shared::jwk::Jwk;

use crate::clock::UnixTime;
use crate::store::records::Digest32;

/// The `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest assertion accepted, in bytes (an RSA-4096 signature is 683).
pub const MAX_ASSERTION_BYTES: usize = 4096;
/// Largest decoded JOSE header accepted.
pub const MAX_HEADER_BYTES: usize = 512;
/// Largest decoded claims set accepted.
pub const MAX_CLAIMS_BYTES: usize = 2048;
/// Longest `jti` accepted.
pub const MAX_JTI_BYTES: usize = 256;
/// How far ahead `exp` may be: an assertion is good for 10 minutes at most,
/// which bounds how long its `jti` must be remembered.
pub const MAX_LIFETIME: u64 = 600;
/// Clock skew tolerated between the client and the server, in seconds.
pub const LEEWAY: u64 = 30;

/// Why an assertion was refused. Never shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not three base64url parts of bounded size with JSON inside.
    #[error("malformed assertion")]
    Malformed,
    /// `crit`, or an algorithm that is none, HMAC or unknown.
    #[error("algorithm or header refused")]
    Algorithm,
    /// No key of the client verifies the signature with that algorithm.
    #[error("bad signature")]
    Signature,
    /// `iss` or `sub` is not the client, or they differ.
    #[error("iss/sub is not the client")]
    Subject,
    /// `aud` names neither the token endpoint nor the issuer.
    #[error("wrong audience")]
    Audience,
    /// `exp` is missing.
    #[error("no exp")]
    NoExpiry,
    /// `exp` has passed, or `nbf` has not.
    #[error("expired or not yet valid")]
    Expired,
    /// `exp` is more than [`MAX_LIFETIME`] ahead.
    #[error("exp too far ahead")]
    TooLong,
    /// `jti` is missing, empty or too long.
    #[error("no usable jti")]
    NoJti,
}

/// The JOSE header members looked at.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions that must be understood; Tessera
    /// understands none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// `aud`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims looked at.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
}

/// What the endpoint accepts as `aud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAudiences {
    /// The issuer URL.
    pub issuer: String,
    /// The token endpoint URL.
    pub token_endpoint: String,
}

impl AcceptedAudiences {
    /// The audiences of the server whose issuer URL is `issuer`.
    pub fn for_issuer(issuer: &str) -> Self {
        Self { issuer: issuer.to_owned(), token_endpoint: format!("{}/oauth2/token", issuer.trim_end_matches('/')) }
    }

    fn accepts(&self, aud: &str) -> bool {
        aud == self.issuer || aud == self.token_endpoint
    }
}

/// A checked assertion: the `jti` to record, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// SHA-256 of the `jti` (the replay set stores no request values).
    pub jti_digest: Digest32,
    /// Until when the assertion could be used (its `exp` plus [`LEEWAY`]):
    /// the `jti` must be remembered that long.
    pub remember_until: UnixTime,
}

/// The client an assertion claims to be (its `sub`, else `iss`), read
/// without checking anything, so the caller knows whose keys to load and
/// whose rate limit applies. `None` if the assertion does not decode.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let (_, claims, _, _) = split(assertion).ok()?;
    claims.sub.or(claims.iss)
}

/// Checks `assertion` for the client `client_id`, whose keys are `keys`.
///
/// # Errors
/// The first rule it breaks, as an [`AssertionError`].
pub fn verify(
    assertion: &str,
    client_id: &str,
    keys: &[Jwk],
    audiences: &AcceptedAudiences,
    now: UnixTime,
) -> Result<Accepted, AssertionError> {
    let (header, claims, signing_input, signature) = split(assertion)?;
    if header.crit.is_some() {
        return Err(AssertionError::Algorithm);
    }
    let alg = header.alg.as_str();
    if !matches!(alg, "ES256" | "EdDSA" | "RS256" | "PS256") {
        return Err(AssertionError::Algorithm);
    }
    let verified = keys
        .iter()
        .filter(|key| header.kid.is_none() || key.kid == header.kid)
        .any(|key| key.verifies(alg, signing_input.as_bytes(), &signature));
    if !verified {
        return Err(AssertionError::Signature);
    }
    check_claims(&claims, client_id, audiences, now)
}

fn check_claims(
    claims: &Claims,
    client_id: &str,
    audiences: &AcceptedAudiences,
    now: UnixTime,
) -> Result<Accepted, AssertionError> {
    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        return Err(AssertionError::Subject);
    }
    let audience_ok = match &claims.aud {
        Some(Audience::One(aud)) => audiences.accepts(aud),
        Some(Audience::Many(auds)) => auds.iter().any(|aud| audiences.accepts(aud)),
        None => false,
    };
    if !audience_ok {
        return Err(AssertionError::Audience);
    }
    let exp = claims.exp.ok_or(AssertionError::NoExpiry)?;
    if exp.saturating_add(LEEWAY) <= now || claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY)) {
        return Err(AssertionError::Expired);
    }
    if exp > now.saturating_add(MAX_LIFETIME) {
        return Err(AssertionError::TooLong);
    }
    let jti = claims.jti.as_deref().filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES);
    let jti = jti.ok_or(AssertionError::NoJti)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, jti.as_bytes());
    let mut jti_digest = [0u8; 32];
    jti_digest.copy_from_slice(digest.as_ref());
    Ok(Accepted { jti_digest, remember_until: exp.saturating_add(LEEWAY) })
}

/// Decodes the three parts: header, claims, the signing input and the
/// signature, within the size bounds.
fn split(assertion: &str) -> Result<(Header, Claims, &str, Vec<u8>), AssertionError> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(AssertionError::Malformed);
    }
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionError::Malformed);
    };
    let decode = |part: &str, max: usize| {
        // base64url of `max` bytes is at most ceil(max * 4 / 3) characters.
        if part.len() > max.div_ceil(3) * 4 {
            return Err(AssertionError::Malformed);
        }
        URL_SAFE_NO_PAD.decode(part).map_err(|_| AssertionError::Malformed)
    };
    let signing_input = &assertion[..header.len() + 1 + claims.len()];
    let header_json = decode(header, MAX_HEADER_BYTES)?;
    let claims_json = decode(claims, MAX_CLAIMS_BYTES)?;
    let signature = decode(signature, MAX_ASSERTION_BYTES)?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| AssertionError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&claims_json).map_err(|_| AssertionError::Malformed)?;
    Ok((header, claims, signing_input, signature))
}

#[cfg(test)]
pub(crate) mod tests;
