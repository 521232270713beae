//! A PEM public key (`-----BEGIN PUBLIC KEY-----`, the SubjectPublicKeyInfo
//! of RFC 5280 §4.1.2.7) as a [`Jwk`] that declares its one algorithm.
//!
//! Only the three key types Tessera signs with are read, with a DER reader
//! just large enough for them; anything else is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::jwk::Jwk;

/// id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / P-256 (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// id-Ed25519 (1.3.101.112).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// rsaEncryption (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

const SEQUENCE: u8 = 0x30;
const OBJECT_IDENTIFIER: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const INTEGER: u8 = 0x02;

/// The JWK of the public key in `pem`.
///
/// # Errors
/// A short reason if `pem` is not a P-256, Ed25519 or RSA public key.
pub fn public_key_jwk(pem: &str) -> Result<Jwk, &'static str> {
    let der = pem_body(pem)?;
    let mut outer = Der::new(&der).expect(SEQUENCE)?;
    let mut algorithm = outer.expect(SEQUENCE)?;
    let key = outer.expect(BIT_STRING)?.rest;
    let oid = algorithm.expect(OBJECT_IDENTIFIER)?.rest;
    // A BIT STRING starts with the count of unused bits, 0 for keys.
    let key = match key.split_first() {
        Some((0, key)) => key,
        _ => return Err("the key's BIT STRING is malformed"),
    };
    match oid {
        OID_EC_PUBLIC_KEY => {
            if algorithm.expect(OBJECT_IDENTIFIER)?.rest != OID_P256 {
                return Err("only P-256 EC keys are supported");
            }
            Jwk::es256(key).map_err(|_| "not an uncompressed P-256 point")
        }
        OID_ED25519 => Jwk::ed25519(key).map_err(|_| "not an Ed25519 public key"),
        OID_RSA => {
            let mut rsa = Der::new(key).expect(SEQUENCE)?;
            let modulus = rsa.expect(INTEGER)?.rest;
            let exponent = rsa.expect(INTEGER)?.rest;
            Jwk::rs256(modulus, exponent).map_err(|_| "not an RSA public key")
        }
        _ => Err("the key type is not P-256, Ed25519 or RSA"),
    }
}

/// The DER bytes between the `PUBLIC KEY` armour lines.
fn pem_body(pem: &str) -> Result<Vec<u8>, &'static str> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let start = pem.find(BEGIN).ok_or("no -----BEGIN PUBLIC KEY----- line")? + BEGIN.len();
    let len = pem[start..].find(END).ok_or("no -----END PUBLIC KEY----- line")?;
    let base64: String = pem[start..start + len].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(base64).map_err(|_| "the PEM body is not base64")
}

/// A cursor over DER-encoded data.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Reads one element with tag `tag` and returns a cursor over its content.
    fn expect(&mut self, tag: u8) -> Result<Der<'a>, &'static str> {
        const BAD: &str = "the DER structure is malformed";
        let (&found, rest) = self.rest.split_first().ok_or(BAD)?;
        if found != tag {
            return Err(BAD);
        }
        let (&first, mut rest) = rest.split_first().ok_or(BAD)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(BAD);
            }
            let (bytes, after) = rest.split_at(count);
            rest = after;
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if rest.len() < len {
            return Err(BAD);
        }
        let (content, after) = rest.split_at(len);
        self.rest = after;
        Ok(Der { rest: content })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(der: &[u8]) -> String {
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }

    #[test]
    fn reads_an_ed25519_key() {
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend([7u8; 32]);
        let jwk = public_key_jwk(&pem(&der)).unwrap();
        assert_eq!(jwk, Jwk::ed25519(&[7; 32]).unwrap());
    }

    /// The RSA example key of RFC 7638 §3.1, as SPKI DER.
    #[test]
    fn reads_an_rsa_key_and_gets_the_rfc_7638_thumbprint() {
        let n = URL_SAFE_N;
        let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n).unwrap();
        let mut int_n = vec![0x00];
        int_n.extend(&modulus);
        let mut rsa_key = vec![0x02, 0x82, 0x01, 0x01];
        rsa_key.extend(&int_n);
        rsa_key.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut seq = vec![0x30, 0x82];
        seq.extend(u16::try_from(rsa_key.len()).unwrap().to_be_bytes());
        seq.extend(rsa_key);
        let mut bits = vec![0x03, 0x82];
        bits.extend(u16::try_from(seq.len() + 1).unwrap().to_be_bytes());
        bits.push(0);
        bits.extend(seq);
        let alg = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
        let mut body = alg.to_vec();
        body.extend(bits);
        let mut der = vec![0x30, 0x82];
        der.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        der.extend(body);
        let jwk = public_key_jwk(&pem(&der)).unwrap();
        assert_eq!(jwk.alg.as_deref(), Some("RS256"));
        assert_eq!(jwk.kid.as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    }

    const URL_SAFE_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn refuses_what_is_not_a_supported_public_key() {
        assert!(public_key_jwk("hello").is_err());
        assert!(public_key_jwk(&pem(&[0x30, 0x03, 0x02, 0x01, 0x00])).is_err());
        assert!(public_key_jwk(&pem(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])).is_err());
        // Ed448 (1.3.101.113) is not supported.
        let mut der = vec![0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00];
        der.extend([7u8; 57]);
        assert!(public_key_jwk(&pem(&der)).is_err());
    }
}
