//! DPoP (RFC 9449): proofs of possession of a key, checked by the token
//! server on a token request and by a resource server on every request with
//! a DPoP-bound access token.
//!
//! [`verify_proof`] does the stateless checks of RFC 9449 §4.3 in this order,
//! each failure being one [`DpopError`]: at most [`MAX_PROOF_LEN`] bytes;
//! three base64url parts; no `crit` extension; `typ` is `dpop+jwt`; `alg` is one of
//! [`SIGNING_ALGS`] (never `none`, never HMAC); `jwk` is a public key of
//! that algorithm's type (a private member is refused); the signature
//! verifies with that key (ring); `jti`, `htm`, `htu`, `iat` are present;
//! `htm` is the request's method; `htu` is its URI (without query and
//! fragment, compared normalised); `iat` is within the window of now; and,
//! when an access token is presented, `ath` is its SHA-256, base64url.
//! [`ProofChecker`] adds the `jti` replay cache ([`ReplayCache`]).
//!
//! The key's RFC 7638 thumbprint ([`Proof::thumbprint`]) is what a token
//! is bound to: `cnf.jkt` (RFC 9449 §6.1).
//!
//! - `htu`: URI normalisation for the `htu` comparison.
//! - [`replay`]: the bounded, time-windowed `jti` cache.

mod htu;
pub mod replay;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::jwk::Jwk;
pub use htu::normalise as normalise_htu;
pub use replay::ReplayCache;

/// The `typ` of a DPoP proof.
pub const PROOF_TYP: &str = "dpop+jwt";
/// The `token_type` of a DPoP-bound access token and the scheme of its
/// `Authorization` header.
pub const TOKEN_TYPE_DPOP: &str = "DPoP";
/// The algorithms a proof may be signed with, as the metadata's
/// `dpop_signing_alg_values_supported` and the challenge's `algs` list them.
pub const SIGNING_ALGS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];
/// Longer proofs are refused unread (an RSA-4096 proof is under 2 KiB).
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// How far `iat` may be from now, in seconds, either way.
pub const DEFAULT_IAT_WINDOW: u64 = 60;
/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// JWK members that only a private key has (RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof was refused. The `Display` text is a fixed sentence, fit for
/// an `error_description`: nothing from the proof is echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopError {
    /// No proof where one is required.
    Missing,
    /// More than one `DPoP` header.
    Repeated,
    /// Not a compact JWS with a JSON header and payload, or too large.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongType,
    /// `alg` is not an asymmetric algorithm Tessera accepts.
    UnsupportedAlgorithm,
    /// `jwk` is missing, not a public key of `alg`'s type, or unusable.
    BadKey,
    /// `jwk` holds private key material.
    PrivateKey,
    /// The signature does not verify with `jwk`.
    BadSignature,
    /// `jti`, `htm`, `htu` or `iat` is missing or of the wrong type.
    BadClaims,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URI.
    WrongUri,
    /// `iat` is too far from now.
    Stale,
    /// `ath` is missing or is not the presented access token's hash.
    WrongAth,
    /// A proof with this key and `jti` was accepted before.
    Replayed,
    /// Too many proofs are live to remember another: refused, fail closed.
    ReplayCacheFull,
}

impl std::fmt::Display for DpopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for DpopError {}

impl DpopError {
    /// The fixed sentence, for an `error_description` that must be `'static`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Missing => "a DPoP proof is required",
            Self::Repeated => "exactly one DPoP header is allowed",
            Self::Malformed => "the DPoP proof is not a well-formed JWT",
            Self::WrongType => "the DPoP proof's typ must be dpop+jwt",
            Self::UnsupportedAlgorithm => "the DPoP proof's alg must be one of ES256, EdDSA, RS256, PS256",
            Self::BadKey => "the DPoP proof's jwk must be a public key of the type its alg names",
            Self::PrivateKey => "the DPoP proof's jwk must not contain a private key",
            Self::BadSignature => "the DPoP proof's signature is invalid",
            Self::BadClaims => "the DPoP proof must carry jti, htm, htu and iat",
            Self::WrongMethod => "the DPoP proof's htm does not match the request method",
            Self::WrongUri => "the DPoP proof's htu does not match the request URI",
            Self::Stale => "the DPoP proof's iat is not recent",
            Self::WrongAth => "the DPoP proof's ath does not match the access token",
            Self::Replayed => "the DPoP proof's jti was already used",
            Self::ReplayCacheFull => "too many recent DPoP proofs to check this one for replay; try again shortly",
        }
    }
}

/// What the proof must match: this request.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method, e.g. `POST`.
    pub method: &'a str,
    /// The request's URI as the server knows it (`scheme://host[:port]/path`);
    /// a query and fragment are ignored.
    pub uri: &'a str,
    /// The access token sent with the request, if any: `ath` must be its hash.
    pub access_token: Option<&'a str>,
    /// Now, in seconds since the Unix epoch.
    pub now: u64,
    /// How far `iat` may be from `now`.
    pub window: u64,
}

/// A proof that passed the stateless checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key.
    pub thumbprint: [u8; 32],
    /// The proof's unique ID.
    pub jti: String,
    /// When the proof was made, seconds since the Unix epoch.
    pub iat: u64,
}

impl Proof {
    /// The thumbprint as `cnf.jkt` carries it: base64url, no padding.
    pub fn jkt(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.thumbprint)
    }
}

/// The `cnf.jkt` form of a thumbprint.
pub fn jkt_of(thumbprint: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(thumbprint)
}

/// `ath`: base64url(SHA-256(access token)).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes()))
}

/// Checks a proof with a replay cache. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ProofChecker {
    replay: ReplayCache,
    window: u64,
}

impl ProofChecker {
    /// A checker allowing `iat` within `window` seconds of now and
    /// remembering at most `capacity` live proofs.
    pub fn new(capacity: usize, window: u64) -> Self {
        Self { replay: ReplayCache::new(capacity, window), window }
    }

    /// The window `iat` must fall in.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// [`verify_proof`], then the replay check: on success the proof's
    /// `jti` is remembered.
    ///
    /// # Errors
    /// The first check the proof fails.
    pub fn check(
        &self,
        proof: &str,
        method: &str,
        uri: &str,
        access_token: Option<&str>,
        now: u64,
    ) -> Result<Proof, DpopError> {
        let expected = Expected { method, uri, access_token, now, window: self.window };
        let proof = verify_proof(proof, &expected)?;
        self.replay.remember(&proof, now)?;
        Ok(proof)
    }
}

/// The JOSE header of a proof.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
    /// Extensions the signer says must be understood (RFC 7515 §4.1.11):
    /// none is, so a proof naming any is refused.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// The claims of a proof.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: serde_json::Number,
    #[serde(default)]
    ath: Option<String>,
}

/// The stateless checks of RFC 9449 §4.3 (all but the replay check).
///
/// # Errors
/// The first check the proof fails.
pub fn verify_proof(proof: &str, expected: &Expected<'_>) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| DpopError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| DpopError::Malformed)?;
    if header.crit.is_some() {
        return Err(DpopError::Malformed);
    }
    if !header.typ.as_deref().is_some_and(|typ| typ.eq_ignore_ascii_case(PROOF_TYP)) {
        return Err(DpopError::WrongType);
    }
    let alg = ProofAlg::parse(&header.alg).ok_or(DpopError::UnsupportedAlgorithm)?;
    let jwk_members = header.jwk.ok_or(DpopError::BadKey)?;
    let key = PublicKey::from_members(alg, &jwk_members)?;
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| DpopError::Malformed)?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    key.verify(&proof.as_bytes()[..signing_input_len], &signature)?;

    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| DpopError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| DpopError::BadClaims)?;
    let iat = numeric_date(&claims.iat).ok_or(DpopError::BadClaims)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(DpopError::BadClaims);
    }
    if claims.htm != expected.method {
        return Err(DpopError::WrongMethod);
    }
    match (htu::normalise(&claims.htu), htu::normalise(expected.uri)) {
        (Some(got), Some(want)) if got == want => {}
        _ => return Err(DpopError::WrongUri),
    }
    if iat.saturating_add(expected.window) < expected.now || iat > expected.now.saturating_add(expected.window) {
        return Err(DpopError::Stale);
    }
    if let Some(token) = expected.access_token {
        // Both sides come from the request itself (the token and the proof
        // sent with it), so a plain comparison leaks nothing a caller lacks.
        if claims.ath.as_deref() != Some(access_token_hash(token).as_str()) {
            return Err(DpopError::WrongAth);
        }
    }
    Ok(Proof { thumbprint: key.thumbprint, jti: claims.jti, iat })
}

/// A NumericDate: a non-negative number of seconds, fractions dropped.
fn numeric_date(number: &serde_json::Number) -> Option<u64> {
    if let Some(seconds) = number.as_u64() {
        return Some(seconds);
    }
    let float = number.as_f64()?;
    // In range of u64 and not negative; truncation toward zero is intended.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "range checked just above")]
    (float.is_finite() && (0.0..1.0e19).contains(&float)).then_some(float as u64)
}

/// The algorithms a proof may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProofAlg {
    Es256,
    EdDsa,
    Rs256,
    Ps256,
}

impl ProofAlg {
    /// Its JOSE name.
    const fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    fn parse(alg: &str) -> Option<Self> {
        match alg {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            _ => None,
        }
    }
}

/// The proof's key, checked to be a public key of the proof's algorithm,
/// with its thumbprint.
struct PublicKey {
    alg: ProofAlg,
    /// Its required members only, as the thumbprint covers them.
    jwk: Jwk,
    thumbprint: [u8; 32],
}

impl PublicKey {
    fn from_members(alg: ProofAlg, members: &serde_json::Map<String, serde_json::Value>) -> Result<Self, DpopError> {
        if PRIVATE_MEMBERS.iter().any(|name| members.contains_key(*name)) {
            return Err(DpopError::PrivateKey);
        }
        let text = |name: &str| -> Result<String, DpopError> {
            members.get(name).and_then(serde_json::Value::as_str).map(str::to_owned).ok_or(DpopError::BadKey)
        };
        let bytes_of = |name: &str| -> Result<Vec<u8>, DpopError> {
            URL_SAFE_NO_PAD.decode(text(name)?).map_err(|_| DpopError::BadKey)
        };
        let kty = text("kty")?;
        let mut jwk =
            Jwk { kty: kty.clone(), use_: None, alg: None, kid: None, crv: None, x: None, y: None, n: None, e: None };
        match alg {
            ProofAlg::Es256 => {
                if kty != "EC" || text("crv")? != "P-256" {
                    return Err(DpopError::BadKey);
                }
                let (x, y) = (bytes_of("x")?, bytes_of("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(DpopError::BadKey);
                }
                (jwk.crv, jwk.x, jwk.y) = (Some(text("crv")?), Some(text("x")?), Some(text("y")?));
            }
            ProofAlg::EdDsa => {
                if kty != "OKP" || text("crv")? != "Ed25519" {
                    return Err(DpopError::BadKey);
                }
                let x = bytes_of("x")?;
                if x.len() != 32 {
                    return Err(DpopError::BadKey);
                }
                (jwk.crv, jwk.x) = (Some(text("crv")?), Some(text("x")?));
            }
            ProofAlg::Rs256 | ProofAlg::Ps256 => {
                if kty != "RSA" {
                    return Err(DpopError::BadKey);
                }
                let (n, e) = (bytes_of("n")?, bytes_of("e")?);
                // 2048 to 8192 bits, as ring verifies; leading zero bytes
                // would give the key a second thumbprint.
                if !(256..=1024).contains(&n.len()) || e.is_empty() || e.len() > 8 || n[0] == 0 || e[0] == 0 {
                    return Err(DpopError::BadKey);
                }
                (jwk.n, jwk.e) = (Some(text("n")?), Some(text("e")?));
            }
        }
        let thumbprint = jwk.thumbprint().map_err(|_| DpopError::BadKey)?;
        let digest = URL_SAFE_NO_PAD.decode(thumbprint).map_err(|_| DpopError::BadKey)?;
        let thumbprint: [u8; 32] = digest.try_into().map_err(|_| DpopError::BadKey)?;
        Ok(Self { alg, jwk, thumbprint })
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), DpopError> {
        if self.jwk.verifies(self.alg.name(), message, signature) { Ok(()) } else { Err(DpopError::BadSignature) }
    }
}

#[cfg(test)]
mod tests;
