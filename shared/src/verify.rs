//! Offline verification of Tessera access tokens with the issuer's public
//! keys alone.
//!
//! A [`Verifier`] holds the issuer's keys and the expected `iss` and `aud`.
//! It is built from the issuer's JWKS URL (with the default `fetch`
//! feature: fetched over HTTPS, cached as `Cache-Control: max-age` says and
//! refreshed in the background, so a slow issuer never holds up a token
//! whose key is cached; refetched when a token names a key it does not
//! know, at most once per short interval; stale keys used for a bounded
//! time only), from a JWKS file, from a PEM public key, or from a
//! [`JwkSet`] in hand.
//!
//! ```no_run
//! # async fn demo(headers: &http::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_shared::verify::Verifier;
//! let verifier = Verifier::from_jwks_url(
//!     "https://auth.example.com/.well-known/jwks.json",
//!     "https://auth.example.com", // iss
//!     "https://api.example.com",  // aud
//! )
//! .await?;
//! // In a handler: the Authorization header, checked, with a required scope.
//! let claims = verifier.authorize(headers, &["organization:read"]).await?;
//! println!("request from client {}", claims.client_id);
//! # Ok(()) }
//! ```
//!
//! What is checked, in this order, each failure being one [`VerifyError`]:
//! the JOSE header parses; `typ` is `at+jwt`; a `kid` is named and known;
//! `alg` is exactly the one algorithm the key declares (so never `none`,
//! never HMAC with a public key); the signature; `iss`; `aud`; `exp` and
//! `nbf` with a leeway (default [`DEFAULT_LEEWAY_SECONDS`]).
//!
//! - [`bearer`]: RFC 6750 — reading `Authorization: Bearer`, and the 401/403
//!   answers with their `WWW-Authenticate` challenges.
//! - [`dpop`]: RFC 9449 for a resource server — `Authorization: DPoP` with
//!   a proof of the token's key ([`Verifier::authorize_request`]), and the
//!   answers with their `WWW-Authenticate: DPoP` challenges.
//! - `pem`: SubjectPublicKeyInfo PEM keys as JWKs.
//! - `remote` (feature `fetch`): the cached JWKS URL.

pub mod bearer;
pub mod dpop;
mod pem;
#[cfg(feature = "fetch")]
mod remote;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims};
use crate::jwk::{Algorithm, Jwk, JwkSet};

#[cfg(feature = "fetch")]
pub use remote::FetchOptions;

/// Default tolerance for clock skew on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// Why a token was refused; each variant is one check.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    /// The key cannot be used (unknown type, no declared `alg`, missing members).
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
    /// The issuer's keys could not be refreshed for longer than
    /// [`FetchOptions::max_stale`] past their `max-age`: no token is
    /// accepted until a refresh succeeds.
    #[error(
        "the issuer's keys could not be refreshed for longer than the stale-key bound allows; no token is accepted \
         until the JWKS can be fetched again"
    )]
    StaleKeys,
    /// The token is DPoP-bound (`cnf.jkt`) but was presented as a bearer
    /// token, without a proof of its key.
    #[error("the token is bound to a key (DPoP) and needs a proof of it")]
    DpopBound,
}

impl VerifyError {
    /// The name of the check that failed, for logs and metrics: one word,
    /// never anything taken from the token.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Malformed => "format",
            Self::WrongType(_) => "typ",
            Self::MissingKeyId | Self::UnknownKey(_) => "kid",
            Self::AlgorithmNotAllowed { .. } => "alg",
            Self::UnusableKey(_) => "key",
            Self::BadSignature => "signature",
            Self::Expired => "exp",
            Self::NotYetValid => "nbf",
            Self::WrongIssuer => "iss",
            Self::WrongAudience => "aud",
            Self::BadClaims => "claims",
            Self::StaleKeys => "jwks",
            Self::DpopBound => "cnf",
        }
    }
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// The JWKS file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The document is not a JWKS.
    #[error("not a JSON Web Key Set: {0}")]
    NotJwks(String),
    /// The PEM text is not a public key Tessera can use.
    #[error("not a usable public key: {0}")]
    BadPem(&'static str),
    /// The key set has no key a token could be checked with.
    #[error("the key set holds no usable signing key")]
    NoUsableKey,
    /// The JWKS URL is neither `https://` nor plain HTTP to a loopback address.
    #[error("the JWKS URL {0} must be https:// (plain http:// only to a loopback address)")]
    InsecureUrl(String),
    /// The JWKS URL could not be fetched.
    #[error("cannot fetch the JWKS from {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why (the HTTP status, a connection error, ...).
        reason: String,
    },
}

/// A scope the token lacks.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the token lacks the scope {0:?}")]
pub struct MissingScope(pub String);

/// Checks that `claims` grant every scope in `required`.
///
/// # Errors
/// [`MissingScope`] naming the first scope not granted.
pub fn require_scopes(claims: &AccessTokenClaims, required: &[&str]) -> Result<(), MissingScope> {
    match required.iter().find(|scope| !claims.has_scope(scope)) {
        Some(missing) => Err(MissingScope((*missing).to_owned())),
        None => Ok(()),
    }
}

/// Where the keys come from.
#[derive(Debug, Clone)]
enum Keys {
    /// A set fixed at construction (file, PEM, in hand).
    Fixed(Arc<JwkSet>),
    /// The issuer's JWKS URL, cached.
    #[cfg(feature = "fetch")]
    Remote(Arc<remote::RemoteJwks>),
}

/// Checks access tokens. Cheap to clone: clones share the keys (and the
/// JWKS cache).
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Keys,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    /// DPoP proofs of the requests with bound tokens: the `jti` replay
    /// cache, shared by clones.
    dpop: Arc<crate::dpop::ProofChecker>,
}

impl Verifier {
    /// A verifier for tokens of `issuer` meant for `audience`, signed by
    /// one of `keys`.
    pub fn new(keys: JwkSet, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self::with_keys(Keys::Fixed(Arc::new(keys)), issuer.into(), audience.into())
    }

    fn with_keys(keys: Keys, issuer: String, audience: String) -> Self {
        Self {
            keys,
            issuer,
            audience,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            dpop: Arc::new(crate::dpop::ProofChecker::new(
                dpop::DEFAULT_REPLAY_CAPACITY,
                crate::dpop::DEFAULT_IAT_WINDOW,
            )),
        }
    }

    /// A verifier with the keys of a JWKS document (`{"keys":[...]}`).
    ///
    /// # Errors
    /// [`KeyLoadError::NotJwks`] if `json` is not a key set,
    /// [`KeyLoadError::NoUsableKey`] if none of its keys can verify a token.
    pub fn from_jwks_json(
        json: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyLoadError> {
        Ok(Self::new(parse_jwks(json)?, issuer, audience))
    }

    /// A verifier with the keys of a JWKS file, read once.
    ///
    /// # Errors
    /// [`KeyLoadError::Io`] if the file cannot be read, otherwise as
    /// [`Verifier::from_jwks_json`].
    pub fn from_jwks_file(
        path: impl AsRef<Path>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyLoadError> {
        let path = path.as_ref();
        let json =
            std::fs::read(path).map_err(|source| KeyLoadError::Io { path: path.display().to_string(), source })?;
        Self::from_jwks_json(&json, issuer, audience)
    }

    /// A verifier with one public key in PEM (`-----BEGIN PUBLIC KEY-----`,
    /// SubjectPublicKeyInfo): P-256 (ES256), Ed25519 (EdDSA) or RSA
    /// (RS256). The algorithm follows from the key; the `kid` tokens must
    /// name is its RFC 7638 thumbprint, as Tessera uses.
    ///
    /// # Errors
    /// [`KeyLoadError::BadPem`] if the text is not such a key.
    pub fn from_pem(pem: &str, issuer: impl Into<String>, audience: impl Into<String>) -> Result<Self, KeyLoadError> {
        let jwk = pem::public_key_jwk(pem).map_err(KeyLoadError::BadPem)?;
        Ok(Self::new(JwkSet { keys: vec![jwk] }, issuer, audience))
    }

    /// A verifier that fetches the issuer's JWKS from `url` now, then keeps
    /// it cached as the response's `Cache-Control: max-age` allows (five
    /// minutes without one), refreshes it in a background task (backing
    /// off after failures) while the cached keys keep serving, and fetches
    /// it again when a token names an unknown `kid`, at most once per
    /// [`FetchOptions::min_refetch_interval`]. Keys that could not be
    /// refreshed for [`FetchOptions::max_stale`] (24 h) past their
    /// `max-age` are no longer used. The URL must be `https://` (plain
    /// HTTP only to a loopback address) and redirects are not followed.
    /// HTTPS uses rustls with the webpki root certificates. Call it within
    /// a tokio runtime: the background task is spawned on it, and ends when
    /// the last clone of the verifier is dropped.
    ///
    /// # Errors
    /// [`KeyLoadError::InsecureUrl`] for a plain-HTTP URL to another machine,
    /// [`KeyLoadError::Fetch`] if the first fetch fails,
    /// [`KeyLoadError::NotJwks`] or [`KeyLoadError::NoUsableKey`] if its
    /// answer is no usable key set.
    #[cfg(feature = "fetch")]
    pub async fn from_jwks_url(
        url: &str,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyLoadError> {
        Self::from_jwks_url_with(url, issuer, audience, FetchOptions::default()).await
    }

    /// [`Verifier::from_jwks_url`] with other cache and timeout settings.
    ///
    /// # Errors
    /// As [`Verifier::from_jwks_url`].
    #[cfg(feature = "fetch")]
    pub async fn from_jwks_url_with(
        url: &str,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        options: FetchOptions,
    ) -> Result<Self, KeyLoadError> {
        let remote = remote::RemoteJwks::fetch_first(url, options, Arc::new(std::time::Instant::now)).await?;
        let remote = Arc::new(remote);
        drop(tokio::spawn(remote::refresh_in_background(Arc::downgrade(&remote))));
        Ok(Self::with_keys(Keys::Remote(remote), issuer.into(), audience.into()))
    }

    /// Sets the clock-skew tolerance for `exp` and `nbf`.
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway_seconds = seconds;
        self
    }

    /// Sets how many DPoP proofs the replay cache holds (default
    /// [`dpop::DEFAULT_REPLAY_CAPACITY`]): those of the last two minutes
    /// must fit, or proofs are refused until old ones expire. A new, empty
    /// cache shared by the clones made from here on.
    #[must_use]
    pub fn with_dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop = Arc::new(crate::dpop::ProofChecker::new(capacity, crate::dpop::DEFAULT_IAT_WINDOW));
        self
    }

    /// The keys tokens are checked against right now.
    pub fn keys(&self) -> Arc<JwkSet> {
        match &self.keys {
            Keys::Fixed(keys) => keys.clone(),
            #[cfg(feature = "fetch")]
            Keys::Remote(remote) => remote.keys(),
        }
    }

    /// The keys tokens may be checked against now: for a URL-backed
    /// verifier, its cached set unless it is stale beyond the bound.
    fn usable_keys(&self) -> Result<Arc<JwkSet>, VerifyError> {
        match &self.keys {
            Keys::Fixed(keys) => Ok(keys.clone()),
            #[cfg(feature = "fetch")]
            Keys::Remote(remote) => remote.usable_keys(),
        }
    }

    /// Verifies `token` against the keys held now, without any network
    /// access (a URL-backed verifier uses its cached set as it stands).
    ///
    /// # Errors
    /// The first check the token fails, as a [`VerifyError`].
    pub fn verify(&self, token: &str) -> Result<AccessTokenClaims, VerifyError> {
        let keys = self.usable_keys()?;
        self.verify_with(&keys, token, unix_now())
    }

    /// [`Verifier::verify`] with `exp` and `nbf` judged at `now` (seconds
    /// since the Unix epoch) instead of the system clock: for a caller that
    /// keeps time itself (the token server's introspection, tests).
    ///
    /// # Errors
    /// The first check the token fails, as a [`VerifyError`].
    pub fn verify_at(&self, token: &str, now: u64) -> Result<AccessTokenClaims, VerifyError> {
        let keys = self.usable_keys()?;
        self.verify_with(&keys, token, now)
    }

    /// Verifies `token`; a URL-backed verifier uses its cached keys (never
    /// waiting for a refresh of them), and if the token names an unknown
    /// `kid` fetches the JWKS again (rate-limited), waiting for that fetch
    /// at most [`FetchOptions::unknown_kid_wait`]. A fetch failure keeps
    /// the cached keys. For other verifiers this is [`Verifier::verify`].
    ///
    /// # Errors
    /// The first check the token fails, as a [`VerifyError`].
    pub async fn verify_async(&self, token: &str) -> Result<AccessTokenClaims, VerifyError> {
        match &self.keys {
            Keys::Fixed(keys) => self.verify_with(keys, token, unix_now()),
            #[cfg(feature = "fetch")]
            Keys::Remote(remote) => {
                let keys = remote.usable_keys()?;
                match self.verify_with(&keys, token, unix_now()) {
                    Err(VerifyError::UnknownKey(kid)) => {
                        if remote.refetch_for_unknown_kid().await {
                            let keys = remote.usable_keys()?;
                            self.verify_with(&keys, token, unix_now())
                        } else {
                            Err(VerifyError::UnknownKey(kid))
                        }
                    }
                    other => other,
                }
            }
        }
    }

    /// Reads the bearer token from `headers` (RFC 6750 §2.1), verifies it
    /// with [`Verifier::verify_async`] and checks that it grants every scope
    /// in `required_scopes`. A DPoP-bound token is refused
    /// ([`VerifyError::DpopBound`]): [`Verifier::authorize_request`] accepts
    /// both kinds. The error says which answer to send:
    /// [`bearer::BearerError::status`] and
    /// [`bearer::BearerError::www_authenticate`].
    ///
    /// # Errors
    /// [`bearer::BearerError`]: no token, a malformed header, a token that
    /// fails verification, or a missing scope.
    pub async fn authorize(
        &self,
        headers: &http::HeaderMap,
        required_scopes: &[&str],
    ) -> Result<AccessTokenClaims, bearer::BearerError> {
        let token = bearer::token_from_headers(headers)?;
        let claims = self.verify_async(token).await.map_err(bearer::BearerError::InvalidToken)?;
        if claims.cnf.is_some() {
            return Err(bearer::BearerError::InvalidToken(VerifyError::DpopBound));
        }
        require_scopes(&claims, required_scopes).map_err(bearer::BearerError::InsufficientScope)?;
        Ok(claims)
    }

    fn verify_with(&self, keys: &JwkSet, token: &str, now: u64) -> Result<AccessTokenClaims, VerifyError> {
        let header = decode_header(token)?;
        if header.typ.as_deref().map(normalise_typ) != Some(ACCESS_TOKEN_TYP) {
            return Err(VerifyError::WrongType(header.typ));
        }
        let kid = header.kid.ok_or(VerifyError::MissingKeyId)?;
        let jwk = keys.find(&kid).ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?;
        let allowed = key_algorithm(jwk).ok_or_else(|| VerifyError::UnusableKey(kid.clone()))?;
        // The allow-list is the one algorithm the key declares; the header's
        // `alg` is compared as a string, so `none`, `HS256` and any other
        // name are refused before a key is even built.
        if header.alg != allowed.as_str() {
            return Err(VerifyError::AlgorithmNotAllowed { got: header.alg, allowed: allowed.to_string() });
        }
        let decoding_key = decoding_key(jwk).ok_or(VerifyError::UnusableKey(kid))?;

        // jsonwebtoken checks the signature, iss and aud; exp and nbf are
        // checked below against `now`, since jsonwebtoken only knows the
        // system clock.
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken_algorithm(allowed));
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let decoded = jsonwebtoken::decode::<WithNbf>(token, &decoding_key, &validation)
            .map(|data| data.claims)
            .map_err(|e| classify(e.kind()))?;
        if decoded.claims.exp.saturating_add(self.leeway_seconds) < now {
            return Err(VerifyError::Expired);
        }
        if decoded.nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway_seconds)) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(decoded.claims)
    }
}

/// The claims plus `nbf`, which Tessera does not issue but another signer
/// of the same keys might.
#[derive(Deserialize)]
struct WithNbf {
    #[serde(flatten)]
    claims: AccessTokenClaims,
    #[serde(default)]
    nbf: Option<u64>,
}

/// Seconds since the Unix epoch by the system clock.
#[allow(clippy::disallowed_methods, reason = "the verifier runs in resource servers, which have no server::clock")]
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The members of the JOSE header the checks read.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Parses the header ourselves rather than with jsonwebtoken, whose header
/// type cannot represent `alg: none` and would turn that check into a
/// parse error.
fn decode_header(token: &str) -> Result<Header, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed);
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| VerifyError::Malformed)
}

/// Parses a JWKS document and checks that at least one key is usable.
fn parse_jwks(json: &[u8]) -> Result<JwkSet, KeyLoadError> {
    let keys: JwkSet = serde_json::from_slice(json).map_err(|e| KeyLoadError::NotJwks(e.to_string()))?;
    if !keys.keys.iter().any(|k| k.kid.is_some() && key_algorithm(k).is_some()) {
        return Err(KeyLoadError::NoUsableKey);
    }
    Ok(keys)
}

/// RFC 9068 §4: `typ` may also be spelled with the `application/` prefix.
fn normalise_typ(typ: &str) -> &str {
    typ.strip_prefix("application/").unwrap_or(typ)
}

/// The algorithm a key declares; a key without `alg` is not used, so a
/// token can never choose its own algorithm.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let alg: Algorithm = jwk.alg.as_deref()?.parse().ok()?;
    let kty_matches = match alg {
        Algorithm::ES256 => jwk.kty == "EC" && jwk.crv.as_deref() == Some("P-256"),
        Algorithm::EdDSA => jwk.kty == "OKP" && jwk.crv.as_deref() == Some("Ed25519"),
        Algorithm::RS256 => jwk.kty == "RSA",
    };
    kty_matches.then_some(alg)
}

fn jsonwebtoken_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
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

#[cfg(test)]
mod tests;
