//! JWT signing with ring, with the private key parsed once.
//!
//! jsonwebtoken 9's `encode` parses the private key again on every call
//! (about a third of the cost of a P-256 signature); a [`JwtSigner`] holds
//! the parsed ring key pair and a pre-encoded header instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde::Serialize;
use tessera_shared::claims::ACCESS_TOKEN_TYP;
use tessera_shared::jwk::{Algorithm, Jwk};

use super::CryptoError;

/// A parsed private key of one of the supported algorithms.
#[derive(Debug)]
enum PrivateKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// The JOSE header, in the member order of RFC 9068's examples.
#[derive(Serialize)]
struct JwtHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

/// Generates a new private key for `alg` as a PKCS#8 document.
///
/// # Errors
/// [`CryptoError::Key`] for RS256 (ring cannot generate RSA keys) or if
/// generation fails.
pub fn generate_pkcs8(alg: Algorithm, rng: &SystemRandom) -> Result<Vec<u8>, CryptoError> {
    let document = match alg {
        Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng),
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(rng),
        Algorithm::RS256 => return Err(CryptoError::Key("RSA keys cannot be generated with ring".into())),
    }
    .map_err(|_| CryptoError::Key(format!("cannot generate a {alg} key")))?;
    Ok(document.as_ref().to_vec())
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
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| bad_key(&e))?;
                let jwk = Jwk::ed25519(pair.public_key().as_ref()).map_err(|e| bad_key(&e))?;
                (PrivateKey::EdDsa(pair), jwk)
            }
            Algorithm::RS256 => return Err(CryptoError::Key("RS256 signing is not supported yet".into())),
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
