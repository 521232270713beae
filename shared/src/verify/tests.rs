//! One token per check, failing exactly that check, plus the key sources.
//! Tokens are signed here with ring directly (not through the verifier's
//! code), so headers and signatures can be forged at will.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

use super::*;

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "https://api.test";

/// Seconds since the epoch, for claims that jsonwebtoken checks against
/// its own clock.
#[allow(clippy::disallowed_methods, reason = "jsonwebtoken reads the system clock; the claims must match it")]
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A signing key made with ring, and its public JWK.
pub enum TestKey {
    Es256(EcdsaKeyPair, Jwk),
    Ed25519(Ed25519KeyPair, Jwk),
}

impl TestKey {
    pub fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let jwk = Jwk::es256(pair.public_key().as_ref()).unwrap();
        Self::Es256(pair, jwk)
    }

    pub fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = Jwk::ed25519(pair.public_key().as_ref()).unwrap();
        Self::Ed25519(pair, jwk)
    }

    pub fn jwk(&self) -> &Jwk {
        match self {
            Self::Es256(_, jwk) | Self::Ed25519(_, jwk) => jwk,
        }
    }

    pub fn kid(&self) -> String {
        self.jwk().kid.clone().unwrap()
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(..) => "ES256",
            Self::Ed25519(..) => "EdDSA",
        }
    }

    /// The SubjectPublicKeyInfo PEM of the public key.
    pub fn pem(&self) -> String {
        let der = match self {
            Self::Es256(pair, _) => {
                let mut der = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
                der.extend_from_slice(pair.public_key().as_ref());
                der
            }
            Self::Ed25519(pair, _) => {
                let mut der = hex("302a300506032b6570032100");
                der.extend_from_slice(pair.public_key().as_ref());
                der
            }
        };
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }

    /// Signs `header.claims` as given, whatever the header says.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = match self {
            Self::Es256(pair, _) => pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap().as_ref().to_vec(),
            Self::Ed25519(pair, _) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The header Tessera writes for this key.
    pub fn header(&self) -> Value {
        json!({ "typ": "at+jwt", "alg": self.alg(), "kid": self.kid() })
    }

    /// A well-formed token with `claims`.
    pub fn token(&self, claims: &Value) -> String {
        self.sign_raw(&self.header(), claims)
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Claims that pass every check.
pub fn good_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "oa2-client-id_x", "client_id": "oa2-client-id_x", "aud": AUDIENCE,
        "iat": now, "exp": now + 300, "jti": "j1", "scope": "organization:read billing"
    })
}

fn with(claims: Value, key: &str, value: Value) -> Value {
    let mut claims = claims;
    claims[key] = value;
    claims
}

fn verifier(key: &TestKey) -> Verifier {
    Verifier::new(JwkSet { keys: vec![key.jwk().clone()] }, ISSUER, AUDIENCE).with_leeway(5)
}

#[test]
fn a_good_token_verifies_with_both_algorithms() {
    for key in [TestKey::es256(), TestKey::ed25519()] {
        let claims = verifier(&key).verify(&key.token(&good_claims())).unwrap();
        assert_eq!(claims.client_id, "oa2-client-id_x");
        assert!(claims.has_scope("organization:read"));
    }
}

#[test]
fn forged_signature_fails_the_signature_check() {
    let key = TestKey::es256();
    let forger = TestKey::es256();
    // The forger signs with its own key but names the real key's kid.
    let token = forger.sign_raw(&key.header(), &good_claims());
    assert_eq!(verifier(&key).verify(&token), Err(VerifyError::BadSignature));
    // A claim changed after signing fails the same check.
    let good = key.token(&good_claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let widened = b64(&with(good_claims(), "scope", json!("admin")));
    parts[1] = &widened;
    assert_eq!(verifier(&key).verify(&parts.join(".")), Err(VerifyError::BadSignature));
}

#[test]
fn alg_none_fails_the_alg_check() {
    let key = TestKey::es256();
    let header = json!({ "typ": "at+jwt", "alg": "none", "kid": key.kid() });
    let token = format!("{}.{}.", b64(&header), b64(&good_claims()));
    let error = verifier(&key).verify(&token).unwrap_err();
    assert_eq!(error, VerifyError::AlgorithmNotAllowed { got: "none".into(), allowed: "ES256".into() });
    assert_eq!(error.check(), "alg");
}

#[test]
fn hs256_with_the_public_key_as_secret_fails_the_alg_check() {
    for key in [TestKey::es256(), TestKey::ed25519()] {
        let header = json!({ "typ": "at+jwt", "alg": "HS256", "kid": key.kid() });
        let input = format!("{}.{}", b64(&header), b64(&good_claims()));
        // The classic confusion: the published key, as text, used as the HMAC secret.
        let secret = serde_json::to_vec(key.jwk()).unwrap();
        let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert!(
            matches!(verifier(&key).verify(&token), Err(VerifyError::AlgorithmNotAllowed { ref got, .. }) if got == "HS256")
        );
    }
}

#[test]
fn an_alg_the_key_does_not_declare_fails_the_alg_check() {
    let key = TestKey::ed25519();
    let header = json!({ "typ": "at+jwt", "alg": "ES256", "kid": key.kid() });
    assert!(matches!(
        verifier(&key).verify(&key.sign_raw(&header, &good_claims())),
        Err(VerifyError::AlgorithmNotAllowed { .. })
    ));
}

#[test]
fn a_key_without_alg_or_for_encryption_is_never_used() {
    let key = TestKey::es256();
    let mut no_alg = key.jwk().clone();
    no_alg.alg = None;
    let token = key.token(&good_claims());
    let v = Verifier::new(JwkSet { keys: vec![no_alg] }, ISSUER, AUDIENCE);
    assert_eq!(v.verify(&token), Err(VerifyError::UnusableKey(key.kid())));
    let mut enc = key.jwk().clone();
    enc.use_ = Some("enc".into());
    let v = Verifier::new(JwkSet { keys: vec![enc] }, ISSUER, AUDIENCE);
    assert_eq!(v.verify(&token), Err(VerifyError::UnusableKey(key.kid())));
}

#[test]
fn wrong_typ_fails_the_typ_check() {
    let key = TestKey::es256();
    for typ in [Some("JWT"), None] {
        let mut header = key.header();
        match typ {
            Some(typ) => header["typ"] = json!(typ),
            None => {
                header.as_object_mut().unwrap().remove("typ");
            }
        }
        let error = verifier(&key).verify(&key.sign_raw(&header, &good_claims())).unwrap_err();
        assert_eq!(error, VerifyError::WrongType(typ.map(str::to_owned)));
    }
    // RFC 9068 §4 allows the full media type.
    let mut header = key.header();
    header["typ"] = json!("application/at+jwt");
    assert!(verifier(&key).verify(&key.sign_raw(&header, &good_claims())).is_ok());
}

#[test]
fn wrong_iss_fails_the_iss_check() {
    let key = TestKey::es256();
    let token = key.token(&with(good_claims(), "iss", json!("https://evil.test")));
    assert_eq!(verifier(&key).verify(&token), Err(VerifyError::WrongIssuer));
}

#[test]
fn wrong_aud_fails_the_aud_check() {
    let key = TestKey::es256();
    let token = key.token(&with(good_claims(), "aud", json!("https://other-api.test")));
    assert_eq!(verifier(&key).verify(&token), Err(VerifyError::WrongAudience));
}

#[test]
fn expired_fails_the_exp_check_beyond_the_leeway_only() {
    let key = TestKey::es256();
    let now = now();
    let expired = key.token(&with(with(good_claims(), "exp", json!(now - 60)), "iat", json!(now - 360)));
    assert_eq!(verifier(&key).verify(&expired), Err(VerifyError::Expired));
    assert!(verifier(&key).with_leeway(120).verify(&expired).is_ok(), "within the leeway");
    // With the caller's clock instead of the system's.
    let token = key.token(&good_claims());
    let exp = now + 300;
    assert!(verifier(&key).with_leeway(0).verify_at(&token, exp).is_ok(), "valid through its exp second");
    assert_eq!(verifier(&key).with_leeway(0).verify_at(&token, exp + 1), Err(VerifyError::Expired));
}

#[test]
fn not_yet_valid_fails_the_nbf_check_beyond_the_leeway_only() {
    let key = TestKey::es256();
    let token = key.token(&with(good_claims(), "nbf", json!(now() + 60)));
    assert_eq!(verifier(&key).verify(&token), Err(VerifyError::NotYetValid));
    assert!(verifier(&key).with_leeway(120).verify(&token).is_ok(), "within the leeway");
}

#[test]
fn unknown_kid_fails_the_kid_check() {
    let key = TestKey::es256();
    let other = TestKey::es256();
    assert_eq!(verifier(&key).verify(&other.token(&good_claims())), Err(VerifyError::UnknownKey(other.kid())));
    let mut header = key.header();
    header.as_object_mut().unwrap().remove("kid");
    assert_eq!(verifier(&key).verify(&key.sign_raw(&header, &good_claims())), Err(VerifyError::MissingKeyId));
}

#[test]
fn garbage_and_missing_claims_are_refused() {
    let key = TestKey::es256();
    for token in ["", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30.e30"] {
        assert_eq!(verifier(&key).verify(token), Err(VerifyError::Malformed), "{token:?}");
    }
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("sub");
    assert_eq!(verifier(&key).verify(&key.token(&claims)), Err(VerifyError::BadClaims));
}

#[test]
fn required_scopes_name_the_missing_one() {
    let key = TestKey::es256();
    let claims = verifier(&key).verify(&key.token(&good_claims())).unwrap();
    assert_eq!(require_scopes(&claims, &["organization:read", "billing"]), Ok(()));
    assert_eq!(require_scopes(&claims, &["organization:read", "admin"]), Err(MissingScope("admin".into())));
    assert_eq!(require_scopes(&claims, &[]), Ok(()));
}

#[test]
fn a_pem_key_verifies_tokens_naming_its_thumbprint() {
    for key in [TestKey::es256(), TestKey::ed25519()] {
        let v = Verifier::from_pem(&key.pem(), ISSUER, AUDIENCE).unwrap();
        assert!(v.verify(&key.token(&good_claims())).is_ok());
        assert_eq!(v.keys().keys[0].alg.as_deref(), Some(key.alg()));
    }
    assert!(matches!(Verifier::from_pem("nope", ISSUER, AUDIENCE), Err(KeyLoadError::BadPem(_))));
}

#[test]
fn a_jwks_file_is_read_once() {
    let key = TestKey::ed25519();
    let dir = std::env::temp_dir().join(format!("tessera-verify-test-{}", key.kid()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&JwkSet { keys: vec![key.jwk().clone()] }).unwrap()).unwrap();
    let v = Verifier::from_jwks_file(&path, ISSUER, AUDIENCE).unwrap();
    assert!(v.verify(&key.token(&good_claims())).is_ok());
    std::fs::write(&path, b"{\"keys\":[]}").unwrap();
    assert!(matches!(Verifier::from_jwks_file(&path, ISSUER, AUDIENCE), Err(KeyLoadError::NoUsableKey)));
    std::fs::write(&path, b"not json").unwrap();
    assert!(matches!(Verifier::from_jwks_file(&path, ISSUER, AUDIENCE), Err(KeyLoadError::NotJwks(_))));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(Verifier::from_jwks_file(&path, ISSUER, AUDIENCE), Err(KeyLoadError::Io { .. })));
}

#[tokio::test]
async fn authorize_reads_the_header_and_checks_scopes() {
    use http::header::{AUTHORIZATION, HeaderValue};
    let key = TestKey::es256();
    let v = verifier(&key);
    let mut headers = http::HeaderMap::new();
    assert_eq!(v.authorize(&headers, &[]).await, Err(bearer::BearerError::Missing));
    let token = key.token(&good_claims());
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    assert!(v.authorize(&headers, &["organization:read"]).await.is_ok());
    assert_eq!(
        v.authorize(&headers, &["admin"]).await,
        Err(bearer::BearerError::InsufficientScope(MissingScope("admin".into())))
    );
    let expired = key.token(&with(good_claims(), "exp", json!(now() - 60)));
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {expired}")).unwrap());
    assert_eq!(v.authorize(&headers, &[]).await, Err(bearer::BearerError::InvalidToken(VerifyError::Expired)));
}
