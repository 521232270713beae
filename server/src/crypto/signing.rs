//! JWT signing with ring, with the private key parsed once.
//!
//! jsonwebtoken 9's `encode` parses the private key again on every call
//! (about a third of the cost of a P-256 signature); a [`JwtSigner`] holds
//! the parsed ring key pair and a pre-encoded header instead.
//!
//! ring signs ES256, EdDSA and RS256 but cannot generate RSA keys: those are
//! generated with the `rsa` crate (fed by ring's random generator) and
//! exported as PKCS#8, then parsed and used by ring like the others.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use serde::Serialize;
use tessera_shared::claims::ACCESS_TOKEN_TYP;
use tessera_shared::jwk::{Algorithm, Jwk};

use super::CryptoError;

/// A parsed private key of one of the supported algorithms.
#[derive(Debug)]
enum PrivateKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

/// Size of the RSA keys Tessera generates: 2048 bits is the floor of
/// RFC 7518 §3.3 and of ring; 3072 buys little for keys that rotate.
pub const RSA_KEY_BITS: usize = 2048;

/// The JOSE header, in the member order of RFC 9068's examples.
#[derive(Serialize)]
struct JwtHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

/// Generates a new private key for `alg` as a PKCS#8 document. An RSA key
/// takes a noticeable time (tens to hundreds of milliseconds): call it off
/// the async threads.
///
/// # Errors
/// [`CryptoError::Key`] if generation fails.
pub fn generate_pkcs8(alg: Algorithm, rng: &SystemRandom) -> Result<Vec<u8>, CryptoError> {
    let document = match alg {
        Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng),
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(rng),
        Algorithm::RS256 => return generate_rsa_pkcs8(rng),
    }
    .map_err(|_| CryptoError::Key(format!("cannot generate a {alg} key")))?;
    Ok(document.as_ref().to_vec())
}

fn generate_rsa_pkcs8(rng: &SystemRandom) -> Result<Vec<u8>, CryptoError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let mut source = RingRng(rng);
    let key = rsa::RsaPrivateKey::new(&mut source, RSA_KEY_BITS)
        .map_err(|e| CryptoError::Key(format!("cannot generate an RSA key: {e}")))?;
    let document = key.to_pkcs8_der().map_err(|e| CryptoError::Key(format!("cannot encode an RSA key: {e}")))?;
    Ok(document.as_bytes().to_vec())
}

/// ring's system generator as the `rand_core` source the `rsa` crate asks
/// for, so that every random bit still comes from ring.
struct RingRng<'a>(&'a SystemRandom);

impl rsa::rand_core::RngCore for RingRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // rand_core's infallible entry point: a failing system generator
        // leaves no safe way to continue key generation.
        #[allow(clippy::panic, reason = "no key may be made from a broken random generator")]
        if self.0.fill(dest).is_err() {
            panic!("the system random number generator failed");
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.0.fill(dest).map_err(|_| rsa::rand_core::Error::from(std::num::NonZeroU32::MIN))
    }
}

impl rsa::rand_core::CryptoRng for RingRng<'_> {}

/// The algorithm of a PKCS#8 private key, found by letting ring parse it as
/// each supported type in turn.
pub fn detect_algorithm(pkcs8: &[u8]) -> Option<Algorithm> {
    let rng = SystemRandom::new();
    [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256]
        .into_iter()
        .find(|alg| JwtSigner::from_pkcs8(*alg, pkcs8, rng.clone()).is_ok())
}

/// Signs access tokens with one key.
#[derive(Debug)]
pub struct JwtSigner {
    key: PrivateKey,
    jwk: Jwk,
    kid: String,
    /// base64url of `{"typ":"at+jwt","alg":...,"kid":...}` followed by `.`.
    header_prefix: String,
    rng: SystemRandom,
}

impl JwtSigner {
    /// Parses a PKCS#8 private key for `alg`.
    ///
    /// # Errors
    /// [`CryptoError::Key`] if the document is not a valid key for `alg`.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8], rng: SystemRandom) -> Result<Self, CryptoError> {
        let bad_key = |e: &dyn std::fmt::Display| CryptoError::Key(format!("invalid {alg} private key: {e}"));
        let (key, jwk) = match alg {
            Algorithm::ES256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).map_err(|e| bad_key(&e))?;
                let jwk = Jwk::es256(pair.public_key().as_ref()).map_err(|e| bad_key(&e))?;
                (PrivateKey::Es256(pair), jwk)
            }
            Algorithm::EdDSA => {
                // OpenSSL writes Ed25519 keys as PKCS#8 v1, without the
                // public key; ring derives it, which is what "unchecked" means.
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| bad_key(&e))?;
                let jwk = Jwk::ed25519(pair.public_key().as_ref()).map_err(|e| bad_key(&e))?;
                (PrivateKey::EdDsa(pair), jwk)
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| bad_key(&e))?;
                if pair.public().modulus_len() * 8 < RSA_KEY_BITS {
                    return Err(bad_key(&"the modulus is shorter than 2048 bits"));
                }
                let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                let jwk = Jwk::rs256(&public.n, &public.e).map_err(|e| bad_key(&e))?;
                (PrivateKey::Rs256(pair), jwk)
            }
        };
        let kid = jwk.kid.clone().ok_or_else(|| CryptoError::Key("public key has no kid".into()))?;
        let header = JwtHeader { typ: ACCESS_TOKEN_TYP, alg: alg.as_str(), kid: &kid };
        let header = serde_json::to_vec(&header).map_err(|e| bad_key(&e))?;
        let mut header_prefix = URL_SAFE_NO_PAD.encode(header);
        header_prefix.push('.');
        Ok(Self { key, jwk, kid, header_prefix, rng })
    }

    /// The key ID (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as published in the JWKS.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Returns the compact JWS of `claims`.
    ///
    /// # Errors
    /// [`CryptoError::Sign`] if the claims do not serialise or signing fails.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, CryptoError> {
        let payload = serde_json::to_vec(claims).map_err(|_| CryptoError::Sign)?;
        // header.payload.signature; an ES256 signature is 64 bytes (86 chars).
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() * 4 / 3 + 96);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &self.key {
            PrivateKey::Es256(pair) => pair.sign(&self.rng, token.as_bytes()).map_err(|_| CryptoError::Sign)?,
            PrivateKey::EdDsa(pair) => pair.sign(token.as_bytes()),
            PrivateKey::Rs256(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), &mut signature)
                    .map_err(|_| CryptoError::Sign)?;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
                return Ok(token);
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::claims::AccessTokenClaims;
    use tessera_shared::jwk::JwkSet;
    use tessera_shared::verify::{Verifier, VerifyError};

    fn claims(now: u64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://issuer.test".into(),
            sub: "oa2-client-id_a".into(),
            aud: "https://issuer.test".into(),
            exp: now + 300,
            iat: now,
            jti: "j".into(),
            client_id: "oa2-client-id_a".into(),
            scope: Some("read".into()),
            cnf: None,
        }
    }

    fn now() -> u64 {
        crate::clock::Clock::now(&crate::clock::SystemClock)
    }

    fn round_trip(alg: Algorithm) {
        let rng = SystemRandom::new();
        let pkcs8 = generate_pkcs8(alg, &rng).unwrap();
        let signer = JwtSigner::from_pkcs8(alg, &pkcs8, rng).unwrap();
        let token = signer.sign(&claims(now())).unwrap();
        let keys = JwkSet { keys: vec![signer.public_jwk().clone()] };
        let verifier = Verifier::new(keys, "https://issuer.test", "https://issuer.test");
        assert_eq!(verifier.verify(&token).unwrap(), claims(claims_iat(&token)));
    }

    fn claims_iat(token: &str) -> u64 {
        let payload = token.split('.').nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        json["iat"].as_u64().unwrap()
    }

    #[test]
    fn es256_tokens_verify() {
        round_trip(Algorithm::ES256);
    }

    #[test]
    fn eddsa_tokens_verify() {
        round_trip(Algorithm::EdDSA);
    }

    #[test]
    fn rs256_tokens_verify() {
        round_trip(Algorithm::RS256);
    }

    #[test]
    fn the_algorithm_of_a_pkcs8_key_is_detected() {
        let rng = SystemRandom::new();
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            assert_eq!(detect_algorithm(&generate_pkcs8(alg, &rng).unwrap()), Some(alg));
        }
        assert_eq!(detect_algorithm(b"not a key"), None);
    }

    #[test]
    fn header_has_typ_alg_and_thumbprint_kid() {
        let rng = SystemRandom::new();
        let pkcs8 = generate_pkcs8(Algorithm::ES256, &rng).unwrap();
        let signer = JwtSigner::from_pkcs8(Algorithm::ES256, &pkcs8, rng).unwrap();
        let token = signer.sign(&claims(now())).unwrap();
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"].as_str(), Some(signer.public_jwk().thumbprint().unwrap().as_str()));
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let rng = SystemRandom::new();
        let pkcs8 = generate_pkcs8(Algorithm::EdDSA, &rng).unwrap();
        assert!(JwtSigner::from_pkcs8(Algorithm::ES256, &pkcs8, rng.clone()).is_err());
        assert!(JwtSigner::from_pkcs8(Algorithm::EdDSA, b"garbage", rng).is_err());
    }

    #[test]
    fn a_tampered_payload_fails_verification() {
        let rng = SystemRandom::new();
        let pkcs8 = generate_pkcs8(Algorithm::ES256, &rng).unwrap();
        let signer = JwtSigner::from_pkcs8(Algorithm::ES256, &pkcs8, rng).unwrap();
        let token = signer.sign(&claims(now())).unwrap();
        let mut forged_claims = claims(now());
        forged_claims.scope = Some("admin".into());
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        let keys = JwkSet { keys: vec![signer.public_jwk().clone()] };
        let verifier = Verifier::new(keys, "https://issuer.test", "https://issuer.test");
        assert_eq!(verifier.verify(&forged), Err(VerifyError::BadSignature));
    }
}
