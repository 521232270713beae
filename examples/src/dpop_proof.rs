//! An example DPoP client helper (RFC 9449): prints a proof for one
//! request, signed with a P-256 key kept in a file, so a shell script can
//! get a DPoP-bound token with curl and call a resource server with it.
//!
//! ```text
//! dpop-proof --key FILE --method POST --url http://127.0.0.1:8080/oauth2/token
//! dpop-proof --key FILE --method GET --url http://127.0.0.1:9090/api/v1/organization --access-token TOKEN
//! dpop-proof --key FILE --thumbprint
//! ```
//!
//! The key file (PKCS#8, created with mode 0600 on first use) is the
//! client's private key: a token bound to it is useless without it. Each
//! proof has a fresh random `jti` and `iat` = now; `--access-token` adds
//! `ath`. `--thumbprint` prints the key's RFC 7638 thumbprint, which a
//! bound token's `cnf.jkt` carries.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::json;

const USAGE: &str = "usage: dpop-proof --key FILE (--method METHOD --url URL [--access-token TOKEN] | --thumbprint)";

fn main() -> std::process::ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dpop-proof: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(mut args: impl Iterator<Item = String>) -> Result<String, String> {
    let (mut key, mut method, mut url, mut access_token, mut thumbprint) = (None, None, None, None, false);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value; {USAGE}"));
        match flag.as_str() {
            "--key" => key = Some(value()?),
            "--method" => method = Some(value()?),
            "--url" => url = Some(value()?),
            "--access-token" => access_token = Some(value()?),
            "--thumbprint" => thumbprint = true,
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    let key = load_or_create(Path::new(&key.ok_or_else(|| format!("--key is required; {USAGE}"))?))?;
    let point = key.public_key().as_ref();
    let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
    if thumbprint {
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        return Ok(URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes())));
    }
    let method = method.ok_or_else(|| format!("--method is required; {USAGE}"))?;
    let url = url.ok_or_else(|| format!("--url is required; {USAGE}"))?;
    let rng = SystemRandom::new();
    let mut jti = [0u8; 16];
    rng.fill(&mut jti).map_err(|_| "no randomness".to_owned())?;
    let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": { "kty": "EC", "crv": "P-256", "x": x, "y": y } });
    let mut claims = json!({ "jti": URL_SAFE_NO_PAD.encode(jti), "htm": method, "htu": url, "iat": unix_now() });
    if let Some(token) = access_token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes())));
    }
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(&rng, input.as_bytes()).map_err(|_| "signing failed".to_owned())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
}

/// The P-256 key in `path`, created (mode 0600) if the file does not exist.
fn load_or_create(path: &Path) -> Result<EcdsaKeyPair, String> {
    let rng = SystemRandom::new();
    let pkcs8 = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| "cannot generate a key".to_owned())?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode_private()
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            file.write_all(document.as_ref()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            document.as_ref().to_vec()
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|_| format!("{} is not a P-256 PKCS#8 key", path.display()))
}

/// Mode 0600 for the key file, where the platform has modes.
trait ModePrivate {
    fn mode_private(&mut self) -> &mut Self;
}

impl ModePrivate for std::fs::OpenOptions {
    #[cfg(unix)]
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }

    #[cfg(not(unix))]
    fn mode_private(&mut self) -> &mut Self {
        self
    }
}

/// Seconds since the Unix epoch: a client's own clock is what `iat` means.
#[allow(clippy::disallowed_methods, reason = "an example client binary; it has no server::clock")]
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
