use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

use super::*;

const URI: &str = "https://server.example.com/oauth2/token";
const NOW: u64 = 1_700_000_000;

enum TestKey {
    Es(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding, &'static str),
}

fn es256() -> TestKey {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
    TestKey::Es(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key"))
}

fn ed25519() -> TestKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
    TestKey::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"))
}

fn rsa(pss: bool) -> TestKey {
    let pair = RsaKeyPair::from_der(include_bytes!("testdata/rsa2048.der")).expect("key");
    if pss {
        TestKey::Rsa(pair, &signature::RSA_PSS_SHA256, "PS256")
    } else {
        TestKey::Rsa(pair, &signature::RSA_PKCS1_SHA256, "RS256")
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    fn alg(&self) -> &'static str {
        match self {
            Self::Es(_) => "ES256",
            Self::Ed(_) => "EdDSA",
            Self::Rsa(_, _, alg) => alg,
        }
    }

    fn jwk(&self) -> Value {
        match self {
            Self::Es(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Self::Ed(pair) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
            Self::Rsa(pair, ..) => {
                let components = pair.public().into();
                let components: signature::RsaPublicKeyComponents<Vec<u8>> = components;
                json!({"kty": "RSA", "n": b64(&components.n), "e": b64(&components.e)})
            }
        }
    }

    fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let rng = SystemRandom::new();
        let signature = match self {
            Self::Es(pair) => pair.sign(&rng, input.as_bytes()).expect("sign").as_ref().to_vec(),
            Self::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Self::Rsa(pair, encoding, _) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, input.as_bytes(), &mut out).expect("sign");
                out
            }
        };
        format!("{input}.{}", b64(&signature))
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    fn proof(&self, claims: &Value) -> String {
        self.sign_raw(&self.header(), claims)
    }

    fn thumbprint(&self) -> [u8; 32] {
        let jwk: Jwk = serde_json::from_value(self.jwk()).expect("jwk");
        let text = jwk.thumbprint().expect("thumbprint");
        URL_SAFE_NO_PAD.decode(text).expect("b64").try_into().expect("32 bytes")
    }
}

fn claims(jti: &str) -> Value {
    json!({"jti": jti, "htm": "POST", "htu": URI, "iat": NOW})
}

fn expected() -> Expected<'static> {
    Expected { method: "POST", uri: URI, access_token: None, now: NOW, window: DEFAULT_IAT_WINDOW }
}

#[test]
fn a_good_proof_of_each_algorithm_verifies_and_names_its_key() {
    for key in [es256(), ed25519(), rsa(false), rsa(true)] {
        let proof =
            verify_proof(&key.proof(&claims("j1")), &expected()).unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(proof.thumbprint, key.thumbprint(), "{}", key.alg());
        assert_eq!((proof.jti.as_str(), proof.iat), ("j1", NOW));
        assert_eq!(proof.jkt(), jkt_of(&key.thumbprint()));
    }
}

#[test]
fn the_header_is_checked() {
    let key = es256();
    let cases: Vec<(Value, DpopError)> = vec![
        (json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk()}), DpopError::WrongType),
        (json!({"alg": "ES256", "jwk": key.jwk()}), DpopError::WrongType),
        (json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()}), DpopError::UnsupportedAlgorithm),
        (json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk()}), DpopError::UnsupportedAlgorithm),
        (json!({"typ": "dpop+jwt", "alg": "ES256"}), DpopError::BadKey),
        (json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()}), DpopError::BadKey),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}}),
            DpopError::BadKey,
        ),
    ];
    for (header, error) in cases {
        assert_eq!(verify_proof(&key.sign_raw(&header, &claims("j")), &expected()), Err(error), "{header}");
    }
}

#[test]
fn a_critical_extension_is_refused() {
    let key = es256();
    let mut header = key.header();
    header["crit"] = json!(["exp"]);
    assert_eq!(verify_proof(&key.sign_raw(&header, &claims("j")), &expected()), Err(DpopError::Malformed));
}

#[test]
fn a_private_key_in_the_header_is_refused() {
    let key = es256();
    let mut jwk = key.jwk();
    jwk["d"] = json!(b64(&[1; 32]));
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    assert_eq!(verify_proof(&key.sign_raw(&header, &claims("j")), &expected()), Err(DpopError::PrivateKey));
    let hmac = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
    assert_eq!(verify_proof(&key.sign_raw(&hmac, &claims("j")), &expected()), Err(DpopError::PrivateKey));
}

#[test]
fn another_keys_signature_is_refused() {
    let (signer, named) = (es256(), es256());
    let proof = signer.sign_raw(&named.header(), &claims("j"));
    assert_eq!(verify_proof(&proof, &expected()), Err(DpopError::BadSignature));
    let good = signer.proof(&claims("j"));
    let (input, _) = good.rsplit_once('.').expect("three parts");
    let tampered_claims = format!(
        "{}.{}.{}",
        input.split('.').next().expect("header"),
        b64(claims("other").to_string().as_bytes()),
        good.rsplit('.').next().expect("signature")
    );
    assert_eq!(verify_proof(&tampered_claims, &expected()), Err(DpopError::BadSignature));
}

#[test]
fn the_claims_must_match_the_request() {
    let key = ed25519();
    let with = |name: &str, value: Value| {
        let mut claims = claims("j");
        claims[name] = value;
        key.proof(&claims)
    };
    let cases = [
        (with("htm", json!("GET")), DpopError::WrongMethod),
        (with("htm", json!("post")), DpopError::WrongMethod),
        (with("htu", json!("https://server.example.com/oauth2/revoke")), DpopError::WrongUri),
        (with("htu", json!("https://evil.example.com/oauth2/token")), DpopError::WrongUri),
        (with("htu", json!("not a uri")), DpopError::WrongUri),
        (with("iat", json!(NOW - 61)), DpopError::Stale),
        (with("iat", json!(NOW + 61)), DpopError::Stale),
        (with("iat", json!("yesterday")), DpopError::BadClaims),
        (with("iat", json!(-5)), DpopError::BadClaims),
        (with("jti", json!("")), DpopError::BadClaims),
        (with("jti", json!("x".repeat(MAX_JTI_LEN + 1))), DpopError::BadClaims),
        (key.proof(&json!({"htm": "POST", "htu": URI, "iat": NOW})), DpopError::BadClaims),
    ];
    for (proof, error) in cases {
        assert_eq!(verify_proof(&proof, &expected()), Err(error));
    }
    // Within the window either way, and an htu with a query and another
    // spelling of the same URI.
    for ok in [
        with("iat", json!(NOW - 60)),
        with("iat", json!(NOW + 60)),
        with("iat", json!(NOW as f64 + 0.5)),
        with("htu", json!("HTTPS://server.example.com:443/oauth2/token?x=1")),
    ] {
        assert!(verify_proof(&ok, &expected()).is_ok());
    }
}

#[test]
fn ath_binds_the_proof_to_the_access_token() {
    let key = es256();
    let token = "eyJ.token.here";
    let mut with_ath = claims("j");
    with_ath["ath"] = json!(access_token_hash(token));
    let presenting = Expected { access_token: Some(token), ..expected() };
    assert!(verify_proof(&key.proof(&with_ath), &presenting).is_ok());
    assert_eq!(verify_proof(&key.proof(&claims("j")), &presenting), Err(DpopError::WrongAth));
    let other = Expected { access_token: Some("another.token.x"), ..expected() };
    assert_eq!(verify_proof(&key.proof(&with_ath), &other), Err(DpopError::WrongAth));
    // The RFC 9449 §7.1 example.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn malformed_and_oversized_proofs_are_refused() {
    for bad in ["", "a", "a.b", "a.b.c.d", "!!.b.c", &"a".repeat(MAX_PROOF_LEN + 1)] {
        assert_eq!(verify_proof(bad, &expected()), Err(DpopError::Malformed), "{bad:.20}");
    }
}

#[test]
fn the_checker_refuses_a_replayed_jti() {
    let key = es256();
    let checker = ProofChecker::new(100, DEFAULT_IAT_WINDOW);
    let proof = key.proof(&claims("once"));
    assert!(checker.check(&proof, "POST", URI, None, NOW).is_ok());
    assert_eq!(checker.check(&proof, "POST", URI, None, NOW + 1), Err(DpopError::Replayed));
    // A proof that fails a check does not use up its jti.
    let fresh = key.proof(&claims("fresh"));
    assert_eq!(checker.check(&fresh, "GET", URI, None, NOW), Err(DpopError::WrongMethod));
    assert!(checker.check(&fresh, "POST", URI, None, NOW).is_ok());
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("dpop+jwt".to_owned()),
            Just("ES256".to_owned()),
            Just("RS256".to_owned()),
            Just("EC".to_owned()),
            Just("RSA".to_owned()),
            Just("P-256".to_owned()),
            "[A-Za-z0-9_-]{0,400}"
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("typ".to_owned()),
                    Just("alg".to_owned()),
                    Just("jwk".to_owned()),
                    Just("kty".to_owned()),
                    Just("crv".to_owned()),
                    Just("x".to_owned()),
                    Just("y".to_owned()),
                    Just("n".to_owned()),
                    Just("e".to_owned()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_headers_and_claims_never_panic(header in arbitrary_json(), claims in arbitrary_json(), sig in "[A-Za-z0-9_-]{0,600}") {
        let proof = format!("{}.{}.{sig}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        // Unsigned by the key it names, it can never pass.
        prop_assert!(verify_proof(&proof, &expected()).is_err());
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        prop_assert!(verify_proof(&text, &expected()).is_err());
        let _ = normalise_htu(&text);
    }
}
