//! JSON Web Keys (RFC 7517) as Tessera publishes them, and their RFC 7638
//! thumbprints, which Tessera uses as `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// A signature algorithm Tessera can sign access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256, the default.
    ES256,
    /// Ed25519.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

impl Algorithm {
    /// The JOSE name of the algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(Self::ES256),
            "EdDSA" => Ok(Self::EdDSA),
            "RS256" => Ok(Self::RS256),
            other => Err(format!("unknown signing algorithm {other:?} (expected ES256, EdDSA or RS256)")),
        }
    }
}

/// A public JSON Web Key. Only the members Tessera's key types use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `EC`, `OKP` or `RSA`.
    pub kty: String,
    /// Always `sig`: these keys only verify signatures.
    #[serde(rename = "use", skip_serializing_if = "Option::is_none", default)]
    pub use_: Option<String>,
    /// The one algorithm this key may be used with.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alg: Option<String>,
    /// The key ID, the RFC 7638 thumbprint.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kid: Option<String>,
    /// Curve, for `EC` and `OKP`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    /// X coordinate (`EC`) or public key (`OKP`), base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    /// Y coordinate (`EC`), base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
    /// Modulus (`RSA`), base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    /// Public exponent (`RSA`), base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
}

/// Errors building a key from raw public key bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwkError {
    /// The bytes are not an uncompressed P-256 point.
    #[error("not an uncompressed P-256 public key")]
    BadEcPoint,
    /// The bytes are not a 32-byte Ed25519 public key.
    #[error("not an Ed25519 public key")]
    BadEd25519Key,
    /// A member the thumbprint needs is missing.
    #[error("the key lacks the member {0:?} its type requires")]
    MissingMember(&'static str),
    /// The key type is not one Tessera knows.
    #[error("unsupported key type {0:?}")]
    UnsupportedKeyType(String),
}

impl Jwk {
    /// A P-256 signing key for ES256 from the uncompressed point
    /// `0x04 || X || Y` that ring returns as the public key.
    ///
    /// # Errors
    /// [`JwkError::BadEcPoint`] if `point` is not 65 bytes starting with 4.
    pub fn es256(point: &[u8]) -> Result<Self, JwkError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(JwkError::BadEcPoint);
        }
        let mut jwk = Self::bare("EC");
        jwk.crv = Some("P-256".into());
        jwk.x = Some(URL_SAFE_NO_PAD.encode(&point[1..33]));
        jwk.y = Some(URL_SAFE_NO_PAD.encode(&point[33..65]));
        jwk.finish(Algorithm::ES256)
    }

    /// An Ed25519 signing key for EdDSA from its 32 public bytes.
    ///
    /// # Errors
    /// [`JwkError::BadEd25519Key`] if `public` is not 32 bytes.
    pub fn ed25519(public: &[u8]) -> Result<Self, JwkError> {
        if public.len() != 32 {
            return Err(JwkError::BadEd25519Key);
        }
        let mut jwk = Self::bare("OKP");
        jwk.crv = Some("Ed25519".into());
        jwk.x = Some(URL_SAFE_NO_PAD.encode(public));
        jwk.finish(Algorithm::EdDSA)
    }

    /// An RSA signing key for RS256 from its big-endian modulus and exponent.
    ///
    /// # Errors
    /// Never in practice; the signature matches the other constructors.
    pub fn rs256(modulus: &[u8], exponent: &[u8]) -> Result<Self, JwkError> {
        let mut jwk = Self::bare("RSA");
        jwk.n = Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(modulus)));
        jwk.e = Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(exponent)));
        jwk.finish(Algorithm::RS256)
    }

    fn bare(kty: &str) -> Self {
        Self { kty: kty.into(), use_: None, alg: None, kid: None, crv: None, x: None, y: None, n: None, e: None }
    }

    fn finish(mut self, alg: Algorithm) -> Result<Self, JwkError> {
        self.kid = Some(self.thumbprint()?);
        self.use_ = Some("sig".into());
        self.alg = Some(alg.as_str().into());
        Ok(self)
    }

    /// The RFC 7638 thumbprint: SHA-256 over the required members in
    /// lexicographic order with no whitespace, base64url without padding.
    ///
    /// # Errors
    /// If the key lacks a member its type requires, or its type is unknown.
    pub fn thumbprint(&self) -> Result<String, JwkError> {
        fn member<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, JwkError> {
            value.as_deref().ok_or(JwkError::MissingMember(name))
        }
        // Members are base64url or fixed names, so no JSON escaping is needed;
        // serde_json still does the quoting so nothing odd can slip through.
        let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let canonical = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                q(member(&self.crv, "crv")?),
                q(member(&self.x, "x")?),
                q(member(&self.y, "y")?)
            ),
            "OKP" => {
                format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, q(member(&self.crv, "crv")?), q(member(&self.x, "x")?))
            }
            "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, q(member(&self.e, "e")?), q(member(&self.n, "n")?)),
            other => return Err(JwkError::UnsupportedKeyType(other.to_owned())),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    /// Whether this public key verifies `signature` over `message` (a JWS
    /// signing input) with `alg`: ES256 for a P-256 key, EdDSA for Ed25519,
    /// RS256 or PS256 for RSA, and only the `alg` the key names if it names
    /// one. Never `none`, never HMAC: any other pairing is `false`. The one
    /// signature check of client assertions and DPoP proofs.
    #[must_use]
    pub fn verifies(&self, alg: &str, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
        let member = |value: &Option<String>| value.as_deref().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        if self.alg.as_deref().is_some_and(|pinned| pinned != alg) {
            return false;
        }
        match (alg, self.kty.as_str(), self.crv.as_deref()) {
            ("ES256", "EC", Some("P-256")) => {
                let (Some(x), Some(y)) = (member(&self.x), member(&self.y)) else { return false };
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, signature).is_ok()
            }
            ("EdDSA", "OKP", Some("Ed25519")) => {
                let Some(x) = member(&self.x) else { return false };
                UnparsedPublicKey::new(&signature::ED25519, x).verify(message, signature).is_ok()
            }
            ("RS256" | "PS256", "RSA", _) => {
                let (Some(n), Some(e)) = (member(&self.n), member(&self.e)) else { return false };
                let params = if alg == "RS256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n, e }.verify(params, message, signature).is_ok()
            }
            _ => false,
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The key with this `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7638 §3.1.
    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk = Jwk {
            n: Some(
                "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
                    .into(),
            ),
            e: Some("AQAB".into()),
            ..Jwk::bare("RSA")
        };
        assert_eq!(jwk.thumbprint(), Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".into()));
    }

    /// The Ed25519 example of RFC 8037 Appendix A.3.
    #[test]
    fn rfc8037_okp_thumbprint() {
        let jwk = Jwk {
            crv: Some("Ed25519".into()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
            ..Jwk::bare("OKP")
        };
        assert_eq!(jwk.thumbprint(), Ok("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".into()));
    }

    #[test]
    fn es256_rejects_compressed_points() {
        assert_eq!(Jwk::es256(&[2; 33]), Err(JwkError::BadEcPoint));
        assert_eq!(Jwk::ed25519(&[0; 31]), Err(JwkError::BadEd25519Key));
    }

    #[test]
    fn es256_key_carries_kid_alg_and_use() {
        let mut point = vec![4u8];
        point.extend(1..=64u8);
        let jwk = Jwk::es256(&point).expect("valid point");
        assert_eq!(jwk.alg.as_deref(), Some("ES256"));
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        assert_eq!(jwk.kid, jwk.thumbprint().ok());
    }

    #[test]
    fn unknown_algorithm_is_refused() {
        assert!("HS256".parse::<Algorithm>().is_err());
        assert_eq!("EdDSA".parse::<Algorithm>(), Ok(Algorithm::EdDSA));
    }
}
