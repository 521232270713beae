//! The offline verifier on arbitrary strings: never panics and never
//! accepts (nothing can be signed without the private key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_shared::jwk::JwkSet;
use tessera_shared::verify::Verifier;

/// Public keys only (an ES256 and an EdDSA key, as Tessera publishes them).
const JWKS: &str = r#"{"keys":[
 {"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"ec",
  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
 {"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"ed",
  "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let keys: JwkSet = serde_json::from_str(JWKS).expect("the fixed JWKS parses");
    let verifier = Verifier::new(keys, "https://issuer.example", "https://issuer.example");
    assert!(verifier.verify(token).is_err(), "an unsigned input verified");
});
