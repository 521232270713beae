//! `authorize_request` over bound and unbound tokens, each refusal with its
//! status and challenge. Proofs are signed with ring here, not through the
//! crate's DPoP code.

use http::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

use super::super::tests::{AUDIENCE, ISSUER, TestKey, good_claims, now};
use super::*;
use crate::dpop::access_token_hash;
use crate::jwk::JwkSet;

const URL: &str = "https://api.test/api/v1/organization";

struct Fixture {
    signer: TestKey,
    client_key: TestKey,
    verifier: Verifier,
}

fn fixture() -> Fixture {
    let signer = TestKey::es256();
    let verifier = Verifier::new(JwkSet { keys: vec![signer.jwk().clone()] }, ISSUER, AUDIENCE);
    Fixture { signer, client_key: TestKey::es256(), verifier }
}

impl Fixture {
    fn bound_token(&self) -> String {
        let mut claims = good_claims();
        claims["cnf"] = json!({ "jkt": self.client_key.jwk().thumbprint().unwrap() });
        self.signer.token(&claims)
    }

    fn proof_by(key: &TestKey, token: &str, jti: &str, method: &str, url: &str) -> String {
        let header = json!({ "typ": "dpop+jwt", "alg": key.alg(), "jwk": key.jwk() });
        let claims: Value =
            json!({ "jti": jti, "htm": method, "htu": url, "iat": now(), "ath": access_token_hash(token) });
        key.sign_raw(&header, &claims)
    }

    fn proof(&self, token: &str, jti: &str) -> String {
        Self::proof_by(&self.client_key, token, jti, "GET", URL)
    }

    async fn call(&self, authorization: &str, proofs: &[&str]) -> Result<AccessTokenClaims, RequestError> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        for proof in proofs {
            headers.append(DPOP_HEADER, HeaderValue::from_str(proof).unwrap());
        }
        self.verifier.authorize_request(&headers, "GET", URL, &["organization:read"]).await
    }
}

#[tokio::test]
async fn a_bound_token_with_a_proof_of_its_key_is_accepted_once() {
    let f = fixture();
    let token = f.bound_token();
    let proof = f.proof(&token, "p1");
    let claims = f.call(&format!("DPoP {token}"), &[&proof]).await.unwrap();
    assert_eq!(claims.dpop_jkt(), f.client_key.jwk().thumbprint().ok().as_deref());
    let replayed = f.call(&format!("DPoP {token}"), &[&proof]).await.unwrap_err();
    assert_eq!(replayed, RequestError::InvalidProof(DpopError::Replayed));
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert!(f.call(&format!("DPoP {token}"), &[&f.proof(&token, "p2")]).await.is_ok());
}

#[tokio::test]
async fn a_bound_token_as_bearer_gets_the_dpop_challenge() {
    let f = fixture();
    let token = f.bound_token();
    let error = f.call(&format!("Bearer {token}"), &[]).await.unwrap_err();
    assert_eq!(error, RequestError::BoundTokenAsBearer);
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    let challenge = error.www_authenticate();
    let challenge = challenge.to_str().unwrap();
    assert!(challenge.starts_with(r#"DPoP error="invalid_token""#), "{challenge}");
    assert!(challenge.ends_with(r#"algs="ES256 EdDSA RS256 PS256""#), "{challenge}");
    // The plain bearer API refuses it too, with the same challenge.
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let bearer = f.verifier.authorize(&headers, &[]).await.unwrap_err();
    assert_eq!(bearer, BearerError::InvalidToken(VerifyError::DpopBound));
    assert!(bearer.www_authenticate().to_str().unwrap().starts_with("DPoP error=\"invalid_token\""));
}

#[tokio::test]
async fn proofs_that_do_not_fit_the_request_or_the_key_are_refused() {
    let f = fixture();
    let token = f.bound_token();
    let auth = format!("DPoP {token}");
    let other_key = TestKey::ed25519();
    let cases = [
        (vec![], RequestError::InvalidProof(DpopError::Missing)),
        (vec![f.proof(&token, "a"), f.proof(&token, "b")], RequestError::InvalidProof(DpopError::Repeated)),
        (
            vec![Fixture::proof_by(&f.client_key, &token, "c", "POST", URL)],
            RequestError::InvalidProof(DpopError::WrongMethod),
        ),
        (
            vec![Fixture::proof_by(&f.client_key, &token, "d", "GET", "https://api.test/other")],
            RequestError::InvalidProof(DpopError::WrongUri),
        ),
        (vec![f.proof("another.token.value", "e")], RequestError::InvalidProof(DpopError::WrongAth)),
        (vec![Fixture::proof_by(&other_key, &token, "f", "GET", URL)], RequestError::KeyMismatch),
        (vec!["not-a-proof".to_owned()], RequestError::InvalidProof(DpopError::Malformed)),
    ];
    for (proofs, want) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let error = f.call(&auth, &proofs).await.unwrap_err();
        assert_eq!(error, want);
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        assert!(
            error.www_authenticate().to_str().unwrap().starts_with(r#"DPoP error="invalid_dpop_proof""#),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn a_full_replay_cache_refuses_proofs_rather_than_forget_one() {
    let mut f = fixture();
    f.verifier = f.verifier.clone().with_dpop_replay_capacity(1);
    let token = f.bound_token();
    assert!(f.call(&format!("DPoP {token}"), &[&f.proof(&token, "one")]).await.is_ok());
    let full = f.call(&format!("DPoP {token}"), &[&f.proof(&token, "two")]).await.unwrap_err();
    assert_eq!(full, RequestError::InvalidProof(DpopError::ReplayCacheFull));
}

#[tokio::test]
async fn unbound_tokens_work_as_bearer_only() {
    let f = fixture();
    let token = f.signer.token(&good_claims());
    assert!(f.call(&format!("Bearer {token}"), &[]).await.is_ok());
    let error = f.call(&format!("DPoP {token}"), &[&f.proof(&token, "x")]).await.unwrap_err();
    assert_eq!(error, RequestError::UnboundTokenAsDpop);
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_malformed_invalid_and_scope_answers() {
    let f = fixture();
    let missing = f.call("Basic dXNlcjpwYXNz", &[]).await.unwrap_err();
    assert_eq!(missing, RequestError::Missing);
    assert_eq!(missing.www_authenticate(), r#"Bearer, DPoP algs="ES256 EdDSA RS256 PS256""#);
    let malformed = f.call("DPoP a\"b", &[]).await.unwrap_err();
    assert_eq!((malformed.clone(), malformed.status()), (RequestError::Malformed, StatusCode::BAD_REQUEST));
    let forged = f.call("DPoP abc.def.ghi", &[]).await.unwrap_err();
    assert!(matches!(forged, RequestError::InvalidToken { scheme: Scheme::Dpop, .. }), "{forged:?}");
    assert!(forged.www_authenticate().to_str().unwrap().starts_with(r#"DPoP error="invalid_token""#));
    let mut claims = good_claims();
    claims["scope"] = json!("billing");
    claims["cnf"] = json!({ "jkt": f.client_key.jwk().thumbprint().unwrap() });
    let token = f.signer.token(&claims);
    let scoped = f.call(&format!("DPoP {token}"), &[&f.proof(&token, "s")]).await.unwrap_err();
    assert_eq!(scoped.status(), StatusCode::FORBIDDEN);
    assert!(
        scoped
            .www_authenticate()
            .to_str()
            .unwrap()
            .starts_with(r#"DPoP error="insufficient_scope", scope="organization:read""#)
    );
}
