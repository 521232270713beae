//! A client's public keys for private_key_jwt (RFC 7523): what an operator
//! hands over (`--public-key FILE`: a PEM SubjectPublicKeyInfo, a JWK or a
//! JWKS), checked and stored as JWKs.
//!
//! Accepted: EC P-256 (ES256), Ed25519 (EdDSA) and RSA of 2048 to 4096
//! bits (RS256 or PS256; pinned to one of them if the JWK says `alg`).
//! Refused with a message saying why: anything else, a private key, a
//! malformed or weak key. Each stored key carries its RFC 7638 thumbprint
//! as `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::agreement;
use ring::rand::SystemRandom;
use tessera_shared::jwk::Jwk;

/// Most keys a client may have (rotation needs two; a few spare).
pub const MAX_KEYS: usize = 8;
/// Largest key document accepted (a JWKS of a few RSA keys fits easily).
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024;
/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 4096;

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Why a key document was refused; the text is shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDocumentError {
    /// Not PEM, not JSON.
    #[error("not a PEM public key, a JWK or a JWKS")]
    Unrecognised,
    /// A PEM of another kind.
    #[error("the PEM is a {0:?}; expected \"PUBLIC KEY\" (SubjectPublicKeyInfo) or \"RSA PUBLIC KEY\"")]
    WrongPemLabel(String),
    /// A PEM that does not decode.
    #[error("not a PEM document: {0}")]
    BadPem(&'static str),
    /// JSON that is not a usable JWK.
    #[error("not a usable JWK: {0}")]
    BadJwk(String),
    /// A private key (or an HMAC secret) where a public key belongs.
    #[error("this is a private or symmetric key; give the public key only")]
    PrivateKey,
    /// A key type or curve Tessera does not verify.
    #[error("unsupported key: {0} (use EC P-256, Ed25519 or RSA of 2048 to 4096 bits)")]
    Unsupported(String),
    /// An RSA key outside the accepted sizes.
    #[error("the RSA key has {0} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted")]
    RsaSize(usize),
    /// Key material that is not a valid key of its type.
    #[error("invalid {0} key material")]
    Invalid(&'static str),
    /// Too many keys, or none.
    #[error("a client has 1 to {MAX_KEYS} public keys")]
    Count,
    /// The same key twice.
    #[error("the key {0} is given twice")]
    Duplicate(String),
    /// A document too large to be a key.
    #[error("a key document may be at most {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
}

/// Checks and converts every key in `documents` (each a PEM, JWK or JWKS)
/// into the JWKs to store.
///
/// # Errors
/// [`KeyDocumentError`] for the first document or key refused, or for a
/// count of keys outside 1 to [`MAX_KEYS`], or a key given twice.
pub fn parse_documents(documents: &[String]) -> Result<Vec<Jwk>, KeyDocumentError> {
    let mut keys: Vec<Jwk> = Vec::new();
    for document in documents {
        for key in parse_document(document)? {
            let kid = key.kid.clone().unwrap_or_default();
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(KeyDocumentError::Duplicate(kid));
            }
            keys.push(key);
            if keys.len() > MAX_KEYS {
                return Err(KeyDocumentError::Count);
            }
        }
    }
    if keys.is_empty() {
        return Err(KeyDocumentError::Count);
    }
    Ok(keys)
}

/// The keys in one document.
///
/// # Errors
/// [`KeyDocumentError`] if it is not a usable public key document.
pub fn parse_document(document: &str) -> Result<Vec<Jwk>, KeyDocumentError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(KeyDocumentError::TooLarge);
    }
    let trimmed = document.trim_start();
    if trimmed.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| KeyDocumentError::BadJwk(format!("not JSON: {e}")))?;
        return match value.get("keys") {
            Some(serde_json::Value::Array(keys)) => keys.iter().map(from_jwk_value).collect(),
            Some(_) => Err(KeyDocumentError::BadJwk("\"keys\" is not an array".into())),
            None => Ok(vec![from_jwk_value(&value)?]),
        };
    }
    if trimmed.contains("-----BEGIN ") {
        return Ok(vec![from_pem(trimmed)?]);
    }
    Err(KeyDocumentError::Unrecognised)
}

fn from_pem(text: &str) -> Result<Jwk, KeyDocumentError> {
    let (label, der) = crate::keys::manager::parse_pem(text).map_err(KeyDocumentError::BadPem)?;
    match label.as_str() {
        "PUBLIC KEY" => from_spki(&der),
        "RSA PUBLIC KEY" => {
            use rsa::pkcs1::DecodeRsaPublicKey as _;
            let key = rsa::RsaPublicKey::from_pkcs1_der(&der).map_err(|_| KeyDocumentError::Invalid("RSA"))?;
            from_rsa(&key)
        }
        "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" | "OPENSSH PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            Err(KeyDocumentError::PrivateKey)
        }
        other => Err(KeyDocumentError::WrongPemLabel(other.to_owned())),
    }
}

fn from_spki(der: &[u8]) -> Result<Jwk, KeyDocumentError> {
    if let Some(point) = der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        return p256(point);
    }
    if let Some(public) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        return Jwk::ed25519(public).map_err(|_| KeyDocumentError::Invalid("Ed25519"));
    }
    use rsa::pkcs8::DecodePublicKey as _;
    match rsa::RsaPublicKey::from_public_key_der(der) {
        Ok(key) => from_rsa(&key),
        // A well-formed RSA key the crate refuses for its size.
        Err(rsa::pkcs8::spki::Error::KeyMalformed) => Err(KeyDocumentError::Invalid("RSA")),
        Err(_) => Err(KeyDocumentError::Unsupported("not an EC P-256, Ed25519 or RSA public key".into())),
    }
}

fn from_rsa(key: &rsa::RsaPublicKey) -> Result<Jwk, KeyDocumentError> {
    use rsa::traits::PublicKeyParts as _;
    rsa_jwk(&key.n().to_bytes_be(), &key.e().to_bytes_be(), None)
}

/// An ES256 JWK for an uncompressed P-256 point, checked to be on the curve.
fn p256(point: &[u8]) -> Result<Jwk, KeyDocumentError> {
    // ring validates a peer's point when it agrees on a key with it; an
    // ephemeral agreement is the one way it offers to check a point.
    let rng = SystemRandom::new();
    let ours = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| KeyDocumentError::Invalid("EC"))?;
    let theirs = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, point);
    agreement::agree_ephemeral(ours, &theirs, |_| ()).map_err(|_| KeyDocumentError::Invalid("EC P-256"))?;
    Jwk::es256(point).map_err(|_| KeyDocumentError::Invalid("EC P-256"))
}

fn rsa_jwk(modulus: &[u8], exponent: &[u8], alg: Option<&str>) -> Result<Jwk, KeyDocumentError> {
    let modulus = strip_zeros(modulus);
    let exponent = strip_zeros(exponent);
    let bits = modulus.first().map_or(0, |first| modulus.len() * 8 - first.leading_zeros() as usize);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(KeyDocumentError::RsaSize(bits));
    }
    // ring's bounds: an odd exponent from 3 to 2^33 - 1.
    let odd = exponent.last().is_some_and(|last| last & 1 == 1);
    if exponent.is_empty() || exponent.len() > 4 || !odd || exponent == [1] {
        return Err(KeyDocumentError::Invalid("RSA"));
    }
    let mut jwk = Jwk::rs256(modulus, exponent).map_err(|_| KeyDocumentError::Invalid("RSA"))?;
    // An RSA key may sign RS256 or PS256 unless its JWK pinned one.
    jwk.alg = alg.map(str::to_owned);
    Ok(jwk)
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn from_jwk_value(value: &serde_json::Value) -> Result<Jwk, KeyDocumentError> {
    let Some(object) = value.as_object() else { return Err(KeyDocumentError::BadJwk("not a JSON object".into())) };
    if PRIVATE_MEMBERS.iter().any(|m| object.contains_key(*m)) {
        return Err(KeyDocumentError::PrivateKey);
    }
    let text = |name: &str| -> Result<Option<&str>, KeyDocumentError> {
        match object.get(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(KeyDocumentError::BadJwk(format!("\"{name}\" is not a string"))),
        }
    };
    let bytes = |name: &'static str| -> Result<Vec<u8>, KeyDocumentError> {
        let encoded = text(name)?.ok_or_else(|| KeyDocumentError::BadJwk(format!("\"{name}\" is missing")))?;
        URL_SAFE_NO_PAD.decode(encoded).map_err(|_| KeyDocumentError::BadJwk(format!("\"{name}\" is not base64url")))
    };
    if let Some(use_) = text("use")?
        && use_ != "sig"
    {
        return Err(KeyDocumentError::BadJwk(format!("\"use\" is {use_:?}, not \"sig\"")));
    }
    let alg = text("alg")?;
    let kty = text("kty")?.ok_or_else(|| KeyDocumentError::BadJwk("\"kty\" is missing".into()))?;
    let expect_alg = |allowed: &[&str]| match alg {
        Some(alg) if !allowed.contains(&alg) => Err(KeyDocumentError::Unsupported(format!(
            "alg {alg:?} with a {kty} key (expected {})",
            allowed.join(" or ")
        ))),
        _ => Ok(()),
    };
    match (kty, text("crv")?) {
        ("EC", Some("P-256")) => {
            expect_alg(&["ES256"])?;
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(KeyDocumentError::Invalid("EC P-256"));
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            p256(&point)
        }
        ("OKP", Some("Ed25519")) => {
            expect_alg(&["EdDSA", "Ed25519"])?;
            Jwk::ed25519(&bytes("x")?).map_err(|_| KeyDocumentError::Invalid("Ed25519"))
        }
        ("RSA", _) => {
            expect_alg(&["RS256", "PS256"])?;
            rsa_jwk(&bytes("n")?, &bytes("e")?, alg)
        }
        ("oct", _) => Err(KeyDocumentError::PrivateKey),
        (kty, crv) => Err(KeyDocumentError::Unsupported(match crv {
            Some(crv) => format!("kty {kty:?} with crv {crv:?}"),
            None => format!("kty {kty:?}"),
        })),
    }
}

#[cfg(test)]
mod tests;
