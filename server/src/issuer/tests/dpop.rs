//! DPoP on the token service (issue 16): a proof binds the access token;
//! a missing (where required), bad or replayed proof is refused before
//! anything is written.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::json;

use super::*;

/// A client key, and proofs for the fixture's token endpoint at `START`.
struct ClientKey(EcdsaKeyPair);

impl ClientKey {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap())
    }

    fn xy(&self) -> (String, String) {
        let point = self.0.public_key().as_ref();
        (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]))
    }

    fn jkt(&self) -> String {
        let (x, y) = self.xy();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
    }

    fn proof(&self, jti: &str, htu: &str) -> DpopHeader {
        let (x, y) = self.xy();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": x, "y": y}});
        let claims = json!({"jti": jti, "htm": "POST", "htu": htu, "iat": START});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.0.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        DpopHeader::Present(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

const TOKEN_ENDPOINT: &str = "https://tessera.test/oauth2/token";

impl Fixture {
    async fn dpop_client(&self, require_dpop: bool) -> ClientCredentials {
        let created = self
            .admin
            .create_client(CreateClient {
                name: "dpop".into(),
                scopes: Vec::new(),
                refresh_tokens: true,
                secret_ttl_seconds: None,
                access_token_ttl_seconds: None,
                audiences: Vec::new(),
                require_dpop,
                public_keys: Vec::new(),
            })
            .await
            .unwrap();
        ClientCredentials { client_id: created.client_id, client_secret: created.client_secret }
    }

    async fn grant_with(&self, client: &ClientCredentials, dpop: &DpopHeader) -> Result<TokenResponse, TokenError> {
        let request = TokenRequest {
            credentials: Presented::Secret(client.clone()),
            grant: Grant::ClientCredentials { scope: None },
            resource: None,
        };
        self.issuer.token_with_dpop(request, dpop).await
    }

    async fn families(&self, client: &ClientCredentials) -> u64 {
        self.store.count_live_families(&client.client_id, START).await.unwrap()
    }
}

#[tokio::test]
async fn a_proof_binds_the_access_token_to_its_key() {
    let f = fixture().await;
    let client = f.dpop_client(false).await;
    let key = ClientKey::new();
    let bound = f.grant_with(&client, &key.proof("p1", TOKEN_ENDPOINT)).await.unwrap();
    assert_eq!(bound.token_type, "DPoP");
    let claims = f.verify(&bound.access_token).unwrap();
    assert_eq!(claims.dpop_jkt(), Some(key.jkt().as_str()));
    let plain = f.grant(&client, None).await.unwrap();
    assert_eq!((plain.token_type.as_str(), f.verify(&plain.access_token).unwrap().cnf), ("Bearer", None));
}

#[tokio::test]
async fn a_refused_proof_writes_nothing() {
    let f = fixture().await;
    let strict = f.dpop_client(true).await;
    let key = ClientKey::new();
    let refused = [
        (DpopHeader::Absent, "a DPoP proof is required"),
        (key.proof("p1", "https://tessera.test/oauth2/revoke"), "the DPoP proof's htu does not match the request URI"),
        (DpopHeader::Invalid(tessera_shared::dpop::DpopError::Repeated), "exactly one DPoP header is allowed"),
    ];
    for (header, description) in refused {
        let error = f.grant_with(&strict, &header).await.unwrap_err();
        assert_eq!((error.code(), error.to_string()), (ErrorCode::InvalidDpopProof, description.to_owned()));
    }
    assert_eq!(f.families(&strict).await, 0, "no family was started");

    let proof = key.proof("once", TOKEN_ENDPOINT);
    assert_eq!(f.grant_with(&strict, &proof).await.unwrap().token_type, "DPoP");
    let replayed = f.grant_with(&strict, &proof).await.unwrap_err();
    assert_eq!(replayed.to_string(), "the DPoP proof's jti was already used");
    assert_eq!(f.families(&strict).await, 1, "only the accepted request started one");

    // Authentication comes first: a wrong secret is invalid_client, proof or not.
    let wrong = ClientCredentials { client_secret: "wrong".into(), ..strict.clone() };
    let error = f.grant_with(&wrong, &key.proof("p2", TOKEN_ENDPOINT)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidClient);
}
