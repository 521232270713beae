//! DPoP proofs (RFC 9449 §4.2) made here, independently of the server's
//! code: the compact JWS is assembled by hand and signed with ring, and the
//! RFC 7638 thumbprint is computed from its own canonical JSON.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

use super::now_unix;

/// A client's proof key.
#[derive(Debug)]
pub enum DpopKey {
    /// P-256, ES256.
    Es256(EcdsaKeyPair),
    /// Ed25519, EdDSA.
    Ed25519(Ed25519KeyPair),
}

/// What a proof claims; [`Default`] is nothing, [`DpopKey::proof`] fills in
/// a fresh `jti` and `iat` = now.
#[derive(Debug, Clone, Default)]
pub struct ProofClaims {
    /// `htm`.
    pub htm: String,
    /// `htu`.
    pub htu: String,
    /// `iat`; now if `None`.
    pub iat: Option<u64>,
    /// `jti`; random if `None`.
    pub jti: Option<String>,
    /// The access token whose hash goes in `ath`.
    pub access_token: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DpopKey {
    /// A new P-256 key.
    pub fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        Self::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key"))
    }

    /// A new Ed25519 key.
    pub fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"))
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Ed25519(_) => "EdDSA",
        }
    }

    /// The public JWK, as the proof header carries it.
    pub fn jwk(&self) -> Value {
        match self {
            Self::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Self::Ed25519(pair) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// The RFC 7638 thumbprint, base64url: what `cnf.jkt` must say.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let member = |name: &str| jwk[name].as_str().expect("member").to_owned();
        let canonical = match self {
            Self::Es256(_) => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, member("x"), member("y"))
            }
            Self::Ed25519(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, member("x")),
        };
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// The proper header: `typ` `dpop+jwt`, the key's `alg` and public `jwk`.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// A proof with the proper header.
    pub fn proof(&self, claims: &ProofClaims) -> String {
        self.sign(&self.header(), &claims_json(claims))
    }

    /// Signs any header and payload, however wrong.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
        let signature = match self {
            Self::Es256(pair) => pair.sign(&SystemRandom::new(), input.as_bytes()).expect("sign").as_ref().to_vec(),
            Self::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// The proof's payload for `claims`.
pub fn claims_json(claims: &ProofClaims) -> Value {
    let jti = claims.jti.clone().unwrap_or_else(|| {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).expect("random");
        b64(&bytes)
    });
    let mut payload =
        json!({"jti": jti, "htm": claims.htm, "htu": claims.htu, "iat": claims.iat.unwrap_or_else(now_unix)});
    if let Some(token) = &claims.access_token {
        payload["ath"] = json!(b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref()));
    }
    payload
}

/// The claims of a proof for the token endpoint of the server at `base`.
pub fn token_endpoint(base: &str) -> ProofClaims {
    ProofClaims { htm: "POST".into(), htu: format!("{base}/oauth2/token"), ..ProofClaims::default() }
}
