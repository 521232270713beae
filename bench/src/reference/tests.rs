use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

use super::*;

/// Splits a compact JWT at its last dot: (signing input, signature bytes).
fn split(token: &str) -> (&str, Vec<u8>) {
    let (input, signature) = token.rsplit_once('.').unwrap();
    (input, URL_SAFE_NO_PAD.decode(signature).unwrap())
}

#[test]
fn token_signature_verifies_with_the_public_key() {
    let signer = Signer::new().unwrap();
    let token = signer.token().unwrap();
    let (input, signature) = split(&token);
    assert_eq!(signature.len(), 64, "ES256 fixed signatures are r || s");
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_key());
    public.verify(input.as_bytes(), &signature).unwrap();
}

#[test]
fn a_changed_claim_no_longer_verifies() {
    let signer = Signer::new().unwrap();
    let token = signer.token().unwrap();
    let (input, signature) = split(&token);
    let tampered = input.replacen("eyJ", "eyK", 1);
    assert_ne!(tampered, input);
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_key());
    assert!(public.verify(tampered.as_bytes(), &signature).is_err());
}

#[test]
fn every_token_is_signed_anew() {
    // ECDSA draws a fresh nonce per signature: two tokens for the same
    // input differ only in their signatures, and both verify.
    let signer = Signer::new().unwrap();
    let (first, second) = (signer.token().unwrap(), signer.token().unwrap());
    assert_ne!(first, second);
    assert_eq!(first.rsplit_once('.').unwrap().0, second.rsplit_once('.').unwrap().0);
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_key());
    for token in [&first, &second] {
        let (input, signature) = split(token);
        public.verify(input.as_bytes(), &signature).unwrap();
    }
}

#[test]
fn token_has_the_shape_of_an_access_token() {
    let token = Signer::new().unwrap().token().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
}

#[test]
fn body_is_the_token_endpoint_json() {
    let token = Signer::new().unwrap().token().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&body(&token)).unwrap();
    assert_eq!(value, serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": 300 }),);
}

#[test]
fn response_carries_the_token_endpoint_headers() {
    let response = response(Bytes::from_static(b"{}"));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[PRAGMA], "no-cache");
}
