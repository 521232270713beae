//! The physical limit: how many access-token-shaped JWTs one core signs per
//! second with ring, with the key parsed once (as the server does).

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

/// A signing input the size and shape of a real access token's.
pub fn signing_input(alg: &str) -> String {
    let header = format!(r#"{{"typ":"at+jwt","alg":"{alg}","kid":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}}"#);
    let claims = r#"{"iss":"http://127.0.0.1:8080","sub":"oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-","aud":"http://127.0.0.1:8080","exp":1795948984,"iat":1795948684,"jti":"QxPGJHkdfwB_B9R42z-o6Q","client_id":"oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-"}"#;
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims))
}

/// Signs for `seconds` on the calling thread and returns signatures per second.
///
/// # Errors
/// If a key cannot be made or a signature fails.
pub fn measure(alg: &str, seconds: f64) -> Result<f64, String> {
    let rng = SystemRandom::new();
    let input = signing_input(alg);
    let sign: Box<dyn Fn() -> Result<usize, String>> = match alg {
        "ES256" => {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|e| e.to_string())?;
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .map_err(|e| e.to_string())?;
            Box::new(move || {
                let signature = key.sign(&rng, input.as_bytes()).map_err(|e| e.to_string())?;
                Ok(URL_SAFE_NO_PAD.encode(signature.as_ref()).len())
            })
        }
        "EdDSA" => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
            let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
            Box::new(move || Ok(URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).as_ref()).len()))
        }
        "RS256" => {
            let key = RsaKeyPair::from_pkcs8(&rsa_pkcs8()?).map_err(|e| e.to_string())?;
            let mut signature = vec![0u8; key.public().modulus_len()];
            let signature = std::cell::RefCell::new(std::mem::take(&mut signature));
            Box::new(move || {
                let mut out = signature.borrow_mut();
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out).map_err(|e| e.to_string())?;
                Ok(URL_SAFE_NO_PAD.encode(&*out).len())
            })
        }
        other => return Err(format!("unknown algorithm {other}")),
    };
    let deadline = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut count = 0u64;
    let mut sink = 0usize;
    while started.elapsed() < deadline {
        for _ in 0..16 {
            sink = sink.wrapping_add(sign()?);
        }
        count += 16;
    }
    std::hint::black_box(sink);
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// A fresh 2048-bit RSA key as PKCS#8 DER. ring cannot generate RSA keys;
/// the openssl command line does it for the benchmark. (Its PEM output is
/// PKCS#8; its DER output would be PKCS#1, which ring does not take.)
fn rsa_pkcs8() -> Result<Vec<u8>, String> {
    let output = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .map_err(|e| format!("RS256 needs the openssl command to make a key: {e}"))?;
    if !output.status.success() {
        return Err(format!("openssl genpkey failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let pem = String::from_utf8_lossy(&output.stdout);
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| format!("openssl printed no PEM key: {e}"))
}
