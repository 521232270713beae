//! The assertion rules, with assertions signed here by ring. (The e2e
//! tests sign with an independent implementation.)

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use serde_json::json;
use tessera_shared::jwk::{Algorithm, Jwk};

use super::*;

pub(crate) const CLIENT: &str = "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
pub(crate) const ISSUER: &str = "https://tessera.test";
pub(crate) const NOW: u64 = 1_800_000_000;

/// A private key of one of the four algorithms, and its public JWK.
pub(crate) enum TestKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl TestKey {
    pub(crate) fn es256() -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap())
    }

    pub(crate) fn eddsa() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::EdDsa(Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap())
    }

    /// One RSA key per test run: generating them is slow.
    pub(crate) fn rsa() -> Self {
        static PKCS8: OnceLock<Vec<u8>> = OnceLock::new();
        let doc = PKCS8
            .get_or_init(|| crate::crypto::signing::generate_pkcs8(Algorithm::RS256, &SystemRandom::new()).unwrap());
        Self::Rsa(RsaKeyPair::from_pkcs8(doc).unwrap())
    }

    pub(crate) fn jwk(&self) -> Jwk {
        match self {
            Self::Es256(pair) => Jwk::es256(pair.public_key().as_ref()).unwrap(),
            Self::EdDsa(pair) => Jwk::ed25519(pair.public_key().as_ref()).unwrap(),
            Self::Rsa(pair) => {
                let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                let mut jwk = Jwk::rs256(&public.n, &public.e).unwrap();
                jwk.alg = None;
                jwk
            }
        }
    }

    /// The algorithm it signs with by default.
    pub(crate) fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
            Self::Rsa(_) => "RS256",
        }
    }

    pub(crate) fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Es256(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Self::EdDsa(pair) => pair.sign(input).as_ref().to_vec(),
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                let padding: &dyn ring::signature::RsaEncoding =
                    if alg == "PS256" { &RSA_PSS_SHA256 } else { &RSA_PKCS1_SHA256 };
                pair.sign(padding, &rng, input, &mut signature).unwrap();
                signature
            }
        }
    }
}

pub(crate) fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A compact JWS of `header` and `claims` signed by `key` with `alg`.
pub(crate) fn signed(key: &TestKey, alg: &str, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(alg, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Good claims for [`CLIENT`] at [`NOW`], with this `jti`.
pub(crate) fn claims(jti: &str) -> serde_json::Value {
    json!({"iss": CLIENT, "sub": CLIENT, "aud": format!("{ISSUER}/oauth2/token"), "exp": NOW + 60, "iat": NOW, "jti": jti})
}

/// A good assertion by `key` for [`CLIENT`].
pub(crate) fn good(key: &TestKey, jti: &str) -> String {
    signed(key, key.alg(), &json!({"alg": key.alg(), "typ": "JWT"}), &claims(jti))
}

fn audiences() -> AcceptedAudiences {
    AcceptedAudiences::for_issuer(ISSUER)
}

fn check(assertion: &str, keys: &[Jwk]) -> Result<Accepted, AssertionError> {
    verify(assertion, CLIENT, keys, &audiences(), NOW)
}

fn with(key: &TestKey, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut claims = claims("j1");
    change(&mut claims);
    signed(key, key.alg(), &json!({"alg": key.alg()}), &claims)
}

#[test]
fn each_algorithm_verifies_with_its_key() {
    for key in [TestKey::es256(), TestKey::eddsa(), TestKey::rsa()] {
        let accepted = check(&good(&key, "j1"), &[key.jwk()]).unwrap();
        assert_eq!(accepted.remember_until, NOW + 60 + LEEWAY);
        let digest = ring::digest::digest(&ring::digest::SHA256, b"j1");
        assert_eq!(accepted.jti_digest.as_slice(), digest.as_ref());
    }
    let rsa = TestKey::rsa();
    let pss = signed(&rsa, "PS256", &json!({"alg": "PS256"}), &claims("j1"));
    assert!(check(&pss, &[rsa.jwk()]).is_ok(), "an RSA key signs PS256 too");
}

#[test]
fn the_algorithm_is_pinned_to_the_key() {
    let (ec, ed, rsa) = (TestKey::es256(), TestKey::eddsa(), TestKey::rsa());
    // Signed properly, but declared as another algorithm.
    let lying = signed(&ec, "ES256", &json!({"alg": "EdDSA"}), &claims("j1"));
    assert_eq!(check(&lying, &[ec.jwk(), ed.jwk()]), Err(AssertionError::Signature));
    // A JWK that names its algorithm allows only that one.
    let mut rs256_only = rsa.jwk();
    rs256_only.alg = Some("RS256".into());
    let pss = signed(&rsa, "PS256", &json!({"alg": "PS256"}), &claims("j1"));
    assert_eq!(check(&pss, &[rs256_only]), Err(AssertionError::Signature));
}

#[test]
fn none_and_hmac_are_refused() {
    let ec = TestKey::es256();
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims("j1")));
    assert_eq!(check(&unsigned, &[ec.jwk()]), Err(AssertionError::Algorithm));
    // HMAC keyed with the public key as the verifier would have it.
    let jwk = ec.jwk();
    for secret in [serde_json::to_vec(&jwk).unwrap(), jwk.x.clone().unwrap().into_bytes()] {
        let input = format!("{}.{}", b64(&json!({"alg": "HS256"})), b64(&claims("j1")));
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), input.as_bytes());
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(check(&forged, std::slice::from_ref(&jwk)), Err(AssertionError::Algorithm));
    }
    let critical = signed(&ec, "ES256", &json!({"alg": "ES256", "crit": ["exp"]}), &claims("j1"));
    assert_eq!(check(&critical, &[ec.jwk()]), Err(AssertionError::Algorithm));
}

#[test]
fn another_key_or_a_tampered_assertion_fails() {
    let (mine, other) = (TestKey::es256(), TestKey::es256());
    assert_eq!(check(&good(&other, "j1"), &[mine.jwk()]), Err(AssertionError::Signature));
    let assertion = good(&mine, "j1");
    let (input, signature) = assertion.rsplit_once('.').unwrap();
    let (header, _) = input.split_once('.').unwrap();
    let mut claims = claims("j1");
    claims["sub"] = json!("oa2-client-id_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB");
    let tampered = format!("{header}.{}.{signature}", b64(&claims));
    assert_eq!(check(&tampered, &[mine.jwk()]), Err(AssertionError::Signature));
    // A kid that names no key of the client finds nothing to verify with.
    let with_kid = signed(&mine, "ES256", &json!({"alg": "ES256", "kid": "nope"}), &self::claims("j1"));
    assert_eq!(check(&with_kid, &[mine.jwk()]), Err(AssertionError::Signature));
    let right_kid = signed(&mine, "ES256", &json!({"alg": "ES256", "kid": mine.jwk().kid}), &self::claims("j1"));
    assert!(check(&right_kid, &[other.jwk(), mine.jwk()]).is_ok());
}

#[test]
fn each_claim_rule_has_its_refusal() {
    let key = TestKey::eddsa();
    let keys = [key.jwk()];
    let case = |change: &dyn Fn(&mut serde_json::Value)| check(&with(&key, change), &keys);
    assert_eq!(case(&|c| c["iss"] = json!("someone")), Err(AssertionError::Subject));
    assert_eq!(case(&|c| c["sub"] = json!("someone")), Err(AssertionError::Subject));
    assert_eq!(case(&|c| drop(c.as_object_mut().unwrap().remove("sub"))), Err(AssertionError::Subject));
    assert_eq!(case(&|c| c["aud"] = json!("https://elsewhere.test")), Err(AssertionError::Audience));
    assert_eq!(case(&|c| drop(c.as_object_mut().unwrap().remove("aud"))), Err(AssertionError::Audience));
    assert!(case(&|c| c["aud"] = json!(ISSUER)).is_ok(), "the issuer is an audience");
    assert!(case(&|c| c["aud"] = json!(["https://x.test", ISSUER])).is_ok(), "in a list too");
    assert_eq!(case(&|c| drop(c.as_object_mut().unwrap().remove("exp"))), Err(AssertionError::NoExpiry));
    assert_eq!(case(&|c| c["exp"] = json!(NOW - LEEWAY)), Err(AssertionError::Expired));
    assert!(case(&|c| c["exp"] = json!(NOW - LEEWAY + 1)).is_ok(), "within the leeway");
    assert_eq!(case(&|c| c["nbf"] = json!(NOW + LEEWAY + 1)), Err(AssertionError::Expired));
    assert_eq!(case(&|c| c["exp"] = json!(NOW + MAX_LIFETIME + 1)), Err(AssertionError::TooLong));
    assert!(case(&|c| c["exp"] = json!(NOW + MAX_LIFETIME)).is_ok());
    assert_eq!(case(&|c| c["exp"] = json!("soon")), Err(AssertionError::Malformed));
    assert_eq!(case(&|c| drop(c.as_object_mut().unwrap().remove("jti"))), Err(AssertionError::NoJti));
    assert_eq!(case(&|c| c["jti"] = json!("")), Err(AssertionError::NoJti));
    assert_eq!(case(&|c| c["jti"] = json!("j".repeat(MAX_JTI_BYTES + 1))), Err(AssertionError::NoJti));
}

#[test]
fn the_claimed_client_is_read_without_checks() {
    let key = TestKey::es256();
    assert_eq!(claimed_client(&good(&key, "j")).as_deref(), Some(CLIENT));
    assert_eq!(claimed_client("a.b.c"), None);
    assert_eq!(claimed_client(""), None);
}

#[test]
fn oversized_parts_are_malformed() {
    let key = TestKey::es256();
    let mut claims = claims("j1");
    claims["pad"] = json!("x".repeat(MAX_CLAIMS_BYTES));
    let big = signed(&key, "ES256", &json!({"alg": "ES256"}), &claims);
    assert_eq!(check(&big, &[key.jwk()]), Err(AssertionError::Malformed));
    assert_eq!(check(&"a".repeat(MAX_ASSERTION_BYTES + 1), &[key.jwk()]), Err(AssertionError::Malformed));
    assert_eq!(check("a.b", &[key.jwk()]), Err(AssertionError::Malformed));
    assert_eq!(check("a.b.c.d", &[key.jwk()]), Err(AssertionError::Malformed));
}

proptest! {
    #[test]
    fn arbitrary_assertions_never_panic(assertion in ".{0,600}", dots in "[A-Za-z0-9_.-]{0,600}") {
        let key = Jwk::ed25519(&[7; 32]).unwrap();
        prop_assert!(verify(&assertion, CLIENT, std::slice::from_ref(&key), &audiences(), NOW).is_err());
        prop_assert!(verify(&dots, CLIENT, &[key], &audiences(), NOW).is_err());
        let _ = claimed_client(&assertion);
        let _ = claimed_client(&dots);
    }

    #[test]
    fn arbitrary_json_parts_never_panic(header in any::<Vec<u8>>(), claims in any::<Vec<u8>>()) {
        let assertion = format!("{}.{}.AAAA", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        prop_assert!(verify(&assertion, CLIENT, &[Jwk::ed25519(&[7; 32]).unwrap()], &audiences(), NOW).is_err());
    }
}
