//! An independent JOSE implementation for the private_key_jwt tests: client
//! assertions built here by hand (JSON, base64url, the JWS signing input),
//! signed with ring, without any of the server's code. A bug in how the
//! server reads a JWS cannot hide behind the same bug in how it was made.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaKeyPair,
};
use serde_json::{Value, json};

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A 2048-bit RSA test key (made with `openssl genpkey`; test-only).
const RSA_PRIVATE_PEM: &str = concat!(
    "-----BEGIN PRIVATE KEY-----\n",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDv7i3sxhm+cyMc\n",
    "fkR8Bph1wElwCP5kE0RJ7+8VBpDyE5OJQQXFWTyoINWSifeYWXgUrJKMy3fW8Sbw\n",
    "WdfUZDfZlMRoi/h4DHgJAvgY9Ptm+ne3LaPMQ6+l5SaaJqmu0qvW4IkDPfedxQvE\n",
    "ctE6vfH6D84Oy1qsQN69es0kFPuTI2Iue9OoisetGKfRHpt9ggFg3Y0gBiSBBnhG\n",
    "s25Hhq3ALvPJm5ixjyczLvfOu+dBWPB10GFcmsqWRxkba3Vk3x7yzh/gvdNi+W6B\n",
    "Ss8lpm0PG/rIus355h03WqyrnfLcfzCF8v9ZSgghWK8DomvRBFVJrkf6ajKoiuAN\n",
    "nlc1KF0NAgMBAAECggEAVKIKHhq06wq3KG5b3vn+no6g+P2bKpbnQEN77Mk/qLyC\n",
    "DujaTcZQEKhgXcwABAQPSQ+ktDhzgeTXzPGMIfXmA4CoFY7GKyaO0vLyq+8CnU0d\n",
    "nIZjYILBuz2NM9QOh8X1apsSiYu6xDLFF1s+9b8Z05DuqSZPSjKpv2HJagBiy4AB\n",
    "S2oCT/rF0wpmAqzYMSAQqr28p09Dsfi5CanAH2utu4kfqBwOhgzwtLgow2GNUGw6\n",
    "9S6PzmXuK5YN/Ee5EFryHKB6MqaGmfT662QV32gPd+Y1EmGY3Cv9nuQlcz7qXVP+\n",
    "ihJvOo2mt1WShT5Syn7ungt+pPPQJrHXvRM6uVP1ywKBgQD/3wlVI94TS3wbljlN\n",
    "f270HscN4X+NvqDCbCaPUK2eB0gEpfXb4e+/hePXcB6MxKEnMAJ1x21RWNdEz3g8\n",
    "LR/POEbCUM/OwbawPjZaL+tGSFa7EwyBAt41nRBbCjYndYKDjZeDH7QVXO4DoPwY\n",
    "uo5mANpX1oh5IKvHNoJU2fuC2wKBgQDwDRbcbLtkBqBOiWk3zQDX1wm1OSfkBk2a\n",
    "OzG4BWgcozcsV4at7p5qpJiwHnL/02R9bcOh/H0VND43s/nDrGNgaRzdU1NYv0aI\n",
    "JqoRPtG87WkqG/DJEoG8cCa8GfC8/KmzYCn+KnAiNTTQOBP2ALs2JuQK+m7ITZ4T\n",
    "3Q0HS2HANwKBgGsKyqO0qp4V0SjVUsmqCyfTjGCxOqR44FYV2pfQH6Hh1+4h49YG\n",
    "Ej9kaung/NbVF7oGKrFNKd2DNiOSS/GYyxrspyV5m0Ya4iufCyv1qg6wCqCemneK\n",
    "VJ3HRGVhw0AEuAIDBSSU6ciaJPSdr3lE6nef2bgvhs5trY9crW+D9eVLAoGBALYi\n",
    "aE8UnNXXBTixn8i73cDmorICzNaBRc4Yza9/QrA/0nPtcP11SHNHsaYnZD/g56UX\n",
    "bFDynwFAo1hmUMJ7gOc8ua7gMyPp9R0GoRD2pfJ/+8P8cSROy2rreShNUlBCMIwu\n",
    "EY6MKop57jlx4wtLIMCEn5AI1Zda9O7DUMhRFLjfAoGAe4jNWeHN7RQzqQ9Trb9f\n",
    "BpRcCv65RrL7HeM2R3P0nceKT42EZyrMc2bjPtMI6SbwLIJXpB1Vdou0BeuRE4tR\n",
    "mN9lnfLF7/377HJnCPlgSCD3rIzwjIXzINkYeNfwdpXGJcqN7jWiZ5GquatJwX0S\n",
    "ydwn/33ZsWw1+hQ8nx+eqsY=\n",
    "-----END PRIVATE KEY-----\n",
);

/// Its public key, as `openssl pkey -pubout` writes it.
const RSA_PUBLIC_PEM: &str = concat!(
    "-----BEGIN PUBLIC KEY-----\n",
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA7+4t7MYZvnMjHH5EfAaY\n",
    "dcBJcAj+ZBNESe/vFQaQ8hOTiUEFxVk8qCDVkon3mFl4FKySjMt31vEm8FnX1GQ3\n",
    "2ZTEaIv4eAx4CQL4GPT7Zvp3ty2jzEOvpeUmmiaprtKr1uCJAz33ncULxHLROr3x\n",
    "+g/ODstarEDevXrNJBT7kyNiLnvTqIrHrRin0R6bfYIBYN2NIAYkgQZ4RrNuR4at\n",
    "wC7zyZuYsY8nMy73zrvnQVjwddBhXJrKlkcZG2t1ZN8e8s4f4L3TYvlugUrPJaZt\n",
    "Dxv6yLrN+eYdN1qsq53y3H8whfL/WUoIIVivA6Jr0QRVSa5H+moyqIrgDZ5XNShd\n",
    "DQIDAQAB\n",
    "-----END PUBLIC KEY-----\n",
);

/// The DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480), before the point.
const P256_SPKI: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A client's private key.
pub enum ClientKey {
    /// EC P-256.
    Es256(EcdsaKeyPair),
    /// Ed25519.
    EdDsa(Ed25519KeyPair),
    /// RSA (the fixed test key), for RS256 and PS256.
    Rsa(RsaKeyPair),
}

impl ClientKey {
    /// A new P-256 key.
    pub fn es256() -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap())
    }

    /// A new Ed25519 key.
    pub fn eddsa() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::EdDsa(Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap())
    }

    /// The RSA test key.
    pub fn rsa() -> Self {
        Self::Rsa(RsaKeyPair::from_pkcs8(&pem_body(RSA_PRIVATE_PEM)).unwrap())
    }

    /// The algorithm it signs with by default.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
            Self::Rsa(_) => "RS256",
        }
    }

    /// The public key as an operator would hand it over: a PEM
    /// SubjectPublicKeyInfo for EC and RSA, a JWK for Ed25519.
    pub fn public_document(&self) -> String {
        match self {
            Self::Es256(pair) => {
                let der = [&P256_SPKI[..], pair.public_key().as_ref()].concat();
                format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
            }
            Self::EdDsa(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())})
                    .to_string()
            }
            Self::Rsa(_) => RSA_PUBLIC_PEM.to_owned(),
        }
    }

    /// [`ClientKey::public_document`] written to `dir/name`.
    pub fn public_file(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.public_document()).unwrap();
        path
    }

    /// The signature of `input` with `alg` (RS256 or PS256 for RSA).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
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

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// `base64url(JSON)` of a JOSE header or claims set.
pub fn part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A compact JWS of `header` and `claims`, signed by `key` with `alg`.
pub fn jws(key: &ClientKey, alg: &str, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", part(header), part(claims));
    let signature = key.sign(alg, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The claims of a good assertion of `client_id` for `audience`, valid
/// from `now` for a minute, with this `jti`.
pub fn assertion_claims(client_id: &str, audience: &str, now: u64, jti: &str) -> Value {
    json!({"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 60, "jti": jti})
}

/// A good assertion by `key` with its default algorithm.
pub fn assertion(key: &ClientKey, client_id: &str, audience: &str, now: u64, jti: &str) -> String {
    jws(key, key.alg(), &json!({"alg": key.alg(), "typ": "JWT"}), &assertion_claims(client_id, audience, now, jti))
}
