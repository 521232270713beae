use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::*;
use crate::client_auth::assertion::tests::TestKey;

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn spki(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    [prefix, key].concat()
}

fn point_of(key: &TestKey) -> Vec<u8> {
    let jwk = key.jwk();
    let mut point = vec![4];
    point.extend(URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(jwk.y.unwrap()).unwrap());
    point
}

#[test]
fn pem_public_keys_of_each_type_become_their_jwk() {
    let ec = TestKey::es256();
    let from_pem = parse_document(&pem("PUBLIC KEY", &spki(&P256_SPKI_PREFIX, &point_of(&ec)))).unwrap();
    assert_eq!(from_pem, vec![ec.jwk()]);
    assert_eq!(from_pem[0].kid, ec.jwk().thumbprint().ok(), "the kid is the RFC 7638 thumbprint");

    let ed = TestKey::eddsa();
    let x = URL_SAFE_NO_PAD.decode(ed.jwk().x.unwrap()).unwrap();
    assert_eq!(parse_document(&pem("PUBLIC KEY", &spki(&ED25519_SPKI_PREFIX, &x))).unwrap(), vec![ed.jwk()]);

    let rsa = TestKey::rsa();
    let jwk = rsa.jwk();
    let n = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(jwk.n.clone().unwrap()).unwrap());
    let e = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(jwk.e.clone().unwrap()).unwrap());
    let public = rsa::RsaPublicKey::new(n, e).unwrap();
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::pkcs8::EncodePublicKey as _;
    let spki_pem = public.to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let parsed = parse_document(&spki_pem).unwrap();
    assert_eq!(parsed, vec![jwk.clone()]);
    assert_eq!(parsed[0].alg, None, "an RSA key from PEM may sign RS256 or PS256");
    let pkcs1 = public.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert_eq!(parse_document(&pkcs1).unwrap(), vec![jwk]);
}

#[test]
fn jwks_and_jwks_sets_are_read_and_normalised() {
    let (ec, ed) = (TestKey::es256(), TestKey::eddsa());
    let set = json!({"keys": [ec.jwk(), ed.jwk()]}).to_string();
    assert_eq!(parse_document(&set).unwrap(), vec![ec.jwk(), ed.jwk()]);
    let bare = ec.jwk();
    let minimal = json!({"kty": "EC", "crv": "P-256", "x": bare.x, "y": bare.y, "kid": "mine"}).to_string();
    assert_eq!(parse_document(&minimal).unwrap(), vec![ec.jwk()], "our kid replaces theirs");
    let rsa = TestKey::rsa().jwk();
    let pinned = json!({"kty": "RSA", "n": rsa.n, "e": rsa.e, "alg": "PS256"}).to_string();
    assert_eq!(parse_document(&pinned).unwrap()[0].alg.as_deref(), Some("PS256"));
}

#[test]
fn private_symmetric_weak_and_foreign_keys_are_refused() {
    let ec = TestKey::es256().jwk();
    let private = json!({"kty": "EC", "crv": "P-256", "x": ec.x, "y": ec.y, "d": "AAAA"}).to_string();
    assert_eq!(parse_document(&private), Err(KeyDocumentError::PrivateKey));
    assert_eq!(parse_document(r#"{"kty":"oct","k":"c2VjcmV0"}"#), Err(KeyDocumentError::PrivateKey));
    assert_eq!(
        parse_document("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(KeyDocumentError::PrivateKey)
    );
    let p384 = json!({"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"}).to_string();
    assert!(matches!(parse_document(&p384), Err(KeyDocumentError::Unsupported(_))));
    let hs = json!({"kty": "EC", "crv": "P-256", "x": ec.x, "y": ec.y, "alg": "HS256"}).to_string();
    assert!(matches!(parse_document(&hs), Err(KeyDocumentError::Unsupported(_))));
    let weak = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xff; 128]), "e": "AQAB"}).to_string();
    assert_eq!(parse_document(&weak), Err(KeyDocumentError::RsaSize(1024)));
    // A point that is not on the curve.
    let off = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1; 32]), "y": URL_SAFE_NO_PAD.encode([2; 32])});
    assert_eq!(parse_document(&off.to_string()), Err(KeyDocumentError::Invalid("EC P-256")));
    let enc = json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([1; 32]), "use": "enc"});
    assert!(matches!(parse_document(&enc.to_string()), Err(KeyDocumentError::BadJwk(_))));
    assert_eq!(parse_document("hello"), Err(KeyDocumentError::Unrecognised));
    assert!(matches!(parse_document("{not json"), Err(KeyDocumentError::BadJwk(_))));
    assert_eq!(parse_document(&" ".repeat(MAX_DOCUMENT_BYTES + 1)), Err(KeyDocumentError::TooLarge));
}

#[test]
fn a_client_has_one_to_eight_distinct_keys() {
    let ec = json!(TestKey::es256().jwk()).to_string();
    assert_eq!(parse_documents(&[]), Err(KeyDocumentError::Count));
    assert_eq!(parse_documents(&[r#"{"keys":[]}"#.into()]), Err(KeyDocumentError::Count));
    assert!(matches!(parse_documents(&[ec.clone(), ec.clone()]), Err(KeyDocumentError::Duplicate(_))));
    let many: Vec<String> = (0..=MAX_KEYS).map(|_| json!(TestKey::eddsa().jwk()).to_string()).collect();
    assert_eq!(parse_documents(&many), Err(KeyDocumentError::Count));
    assert_eq!(parse_documents(&many[..MAX_KEYS]).unwrap().len(), MAX_KEYS);
}
