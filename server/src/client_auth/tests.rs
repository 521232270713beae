use std::sync::Arc;

use tessera_shared::admin::ClientStatus;
use tessera_shared::wire::ErrorCode;

use super::*;
use crate::store::records::PreviousSecret;
use crate::store::sled::SledStore;

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://tessera.test";
const ID: &str = "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const OPEN: ParsePolicy = ParsePolicy { allow_query_credentials: true };
const CLOSED: ParsePolicy = ParsePolicy { allow_query_credentials: false };

fn p(name: &str, value: &str, source: Source) -> Param {
    Param { name: name.into(), value: value.into(), source }
}

fn pair(id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials { client_id: id.into(), client_secret: secret.into() }
}

fn creds(id: &str, secret: &str) -> Presented {
    Presented::Secret(pair(id, secret))
}

fn code(result: Result<Presented, TokenError>) -> ErrorCode {
    result.expect_err("must fail").code()
}

#[test]
fn basic_or_parameters_but_not_both() {
    let basic = AuthorizationHeader::Basic(pair("a", "b"));
    assert_eq!(presented(&[], basic.clone(), CLOSED).unwrap(), creds("a", "b"));
    let body = [p("client_id", "a", Source::Body), p("client_secret", "b", Source::Body)];
    assert_eq!(presented(&body, AuthorizationHeader::Absent, CLOSED).unwrap(), creds("a", "b"));
    assert_eq!(code(presented(&body, basic, OPEN)), ErrorCode::InvalidRequest);
    assert_eq!(code(presented(&body, AuthorizationHeader::Malformed, OPEN)), ErrorCode::InvalidRequest);
}

#[test]
fn none_or_malformed_is_invalid_client_and_half_is_invalid_request() {
    assert_eq!(code(presented(&[], AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidClient);
    assert_eq!(code(presented(&[], AuthorizationHeader::Malformed, OPEN)), ErrorCode::InvalidClient);
    let half = [p("client_id", "a", Source::Body)];
    assert_eq!(
        presented(&half, AuthorizationHeader::Absent, OPEN).unwrap_err().to_string(),
        "client_secret is missing"
    );
    // An empty value is omitted (RFC 6749 §3.1).
    let empty = [p("client_id", "a", Source::Body), p("client_secret", "", Source::Body)];
    assert_eq!(code(presented(&empty, AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidRequest);
}

#[test]
fn query_credentials_follow_the_policy() {
    let query = [p("client_id", "a", Source::Query), p("client_secret", "b", Source::Body)];
    assert_eq!(presented(&query, AuthorizationHeader::Absent, OPEN).unwrap(), creds("a", "b"));
    assert_eq!(code(presented(&query, AuthorizationHeader::Absent, CLOSED)), ErrorCode::InvalidRequest);
}

async fn authenticator_with(change: impl FnOnce(&mut ClientRecord)) -> (ClientAuthenticator, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let secrets = SecretHasher::new(&[3; 32]);
    let mut record = ClientRecord {
        name: "t".into(),
        secret_digest: secrets.digest("right"),
        secret_set_at: NOW,
        scopes: Vec::new(),
        refresh_tokens: false,
        created_at: NOW,
        ..crate::store::conformance::client(ID)
    };
    change(&mut record);
    store.insert_client(&record).await.unwrap();
    (ClientAuthenticator::new(store.clone(), secrets, AcceptedAudiences::for_issuer(ISSUER)), store)
}

#[tokio::test]
async fn the_right_secret_authenticates_and_records_the_use() {
    let (authenticator, store) = authenticator_with(|_| {}).await;
    let authenticated = authenticator.authenticate(&creds(ID, "right"), NOW + 5).await;
    assert!(authenticated.known);
    assert_eq!(authenticated.result.unwrap().client_id, ID);
    assert_eq!(store.client_last_used(ID).await.unwrap(), Some(NOW + 5));
}

#[tokio::test]
async fn every_failure_is_invalid_client_and_says_whether_the_client_exists() {
    let (authenticator, _) = authenticator_with(|_| {}).await;
    let cases = [
        (creds(ID, "wrong"), true),
        (creds("oa2-client-id_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", "right"), false),
        (creds("not-an-id", "right"), false),
    ];
    for (presented, known) in cases {
        let outcome = authenticator.authenticate(&presented, NOW).await;
        assert_eq!(outcome.known, known, "{presented:?}");
        assert!(matches!(outcome.result, Err(TokenError::InvalidClient)), "{presented:?}");
    }
}

#[tokio::test]
async fn a_revoked_client_or_an_expired_secret_fails_like_a_wrong_one() {
    let (revoked, _) = authenticator_with(|c| c.status = ClientStatus::Revoked).await;
    assert!(matches!(revoked.authenticate(&creds(ID, "right"), NOW).await.result, Err(TokenError::InvalidClient)));
    let (expiring, _) = authenticator_with(|c| c.secret_expires_at = Some(NOW + 10)).await;
    assert!(expiring.authenticate(&creds(ID, "right"), NOW + 9).await.result.is_ok());
    assert!(matches!(
        expiring.authenticate(&creds(ID, "right"), NOW + 10).await.result,
        Err(TokenError::InvalidClient)
    ));
}

#[tokio::test]
async fn a_previous_secret_works_only_within_its_grace() {
    let secrets = SecretHasher::new(&[3; 32]);
    let old = secrets.digest("old");
    let (authenticator, _) =
        authenticator_with(|c| c.previous_secret = Some(PreviousSecret { digest: old, valid_until: NOW + 30 })).await;
    assert!(authenticator.authenticate(&creds(ID, "old"), NOW + 29).await.result.is_ok());
    assert!(authenticator.authenticate(&creds(ID, "old"), NOW + 30).await.result.is_err());
}

mod assertions {
    use super::*;
    use crate::client_auth::assertion::tests::{TestKey, good};

    fn with_assertion(assertion: &str, source: Source) -> Vec<Param> {
        vec![p("client_assertion_type", ASSERTION_TYPE, source), p("client_assertion", assertion, source)]
    }

    fn assertion_of(presented: Presented) -> ClientAssertion {
        match presented {
            Presented::Assertion(assertion) => assertion,
            Presented::Secret(_) => panic!("read as a secret"),
        }
    }

    #[test]
    fn an_assertion_names_its_client_and_excludes_every_other_method() {
        let assertion = good(&TestKey::es256(), "j");
        let params = with_assertion(&assertion, Source::Body);
        let read = assertion_of(presented(&params, AuthorizationHeader::Absent, CLOSED).unwrap());
        assert_eq!(read.client_id, ID, "from the unverified sub");
        assert!(!format!("{read:?}").contains(&assertion), "the assertion stays out of Debug");
        let mut named = params.clone();
        named.push(p("client_id", "oa2-client-id_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", Source::Body));
        let read = assertion_of(presented(&named, AuthorizationHeader::Absent, CLOSED).unwrap());
        assert_eq!(
            read.client_id, "oa2-client-id_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
            "the parameter is whose keys check it"
        );

        let mut with_secret = params.clone();
        with_secret.push(p("client_secret", "s", Source::Body));
        assert_eq!(code(presented(&with_secret, AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidRequest);
        assert_eq!(
            code(presented(&params, AuthorizationHeader::Basic(pair("a", "b")), OPEN)),
            ErrorCode::InvalidRequest
        );
        assert_eq!(code(presented(&params, AuthorizationHeader::Malformed, OPEN)), ErrorCode::InvalidRequest);
        assert_eq!(code(presented(&params[..1], AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidRequest);
        assert_eq!(code(presented(&params[1..], AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidRequest);
        let wrong_type = [p("client_assertion_type", "urn:other", Source::Body), params[1].clone()];
        assert_eq!(code(presented(&wrong_type, AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidClient);
        let garbage = with_assertion("not-a-jwt", Source::Body);
        assert_eq!(code(presented(&garbage, AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidClient);
        let query = with_assertion(&assertion, Source::Query);
        assert_eq!(code(presented(&query, AuthorizationHeader::Absent, CLOSED)), ErrorCode::InvalidRequest);
        assert!(presented(&query, AuthorizationHeader::Absent, OPEN).is_ok());
    }

    fn of(assertion: String) -> Presented {
        Presented::Assertion(ClientAssertion { client_id: ID.into(), assertion })
    }

    #[tokio::test]
    async fn a_key_client_authenticates_once_per_jti_and_never_with_a_secret() {
        let key = TestKey::eddsa();
        let jwk = key.jwk();
        let (authenticator, store) = authenticator_with(|c| c.public_keys = vec![jwk]).await;
        let first = authenticator.authenticate(&of(good(&key, "j1")), NOW).await;
        assert_eq!(first.result.unwrap().client_id, ID);
        assert_eq!(store.client_last_used(ID).await.unwrap(), Some(NOW));
        let replay = authenticator.authenticate(&of(good(&key, "j1")), NOW + 1).await;
        assert!(replay.known && matches!(replay.result, Err(TokenError::InvalidClient)), "a replayed jti");
        assert!(authenticator.authenticate(&of(good(&key, "j2")), NOW + 1).await.result.is_ok());
        // Its stored digest is of "right" in this fixture, and still refused.
        let secret = authenticator.authenticate(&creds(ID, "right"), NOW).await;
        assert!(secret.known && matches!(secret.result, Err(TokenError::InvalidClient)));
        let other = authenticator.authenticate(&of(good(&TestKey::eddsa(), "j3")), NOW).await;
        assert!(matches!(other.result, Err(TokenError::InvalidClient)), "another key");
    }

    #[tokio::test]
    async fn a_secret_client_or_a_revoked_one_cannot_use_an_assertion() {
        let key = TestKey::es256();
        let (secret_client, _) = authenticator_with(|_| {}).await;
        let outcome = secret_client.authenticate(&of(good(&key, "j1")), NOW).await;
        assert!(outcome.known && matches!(outcome.result, Err(TokenError::InvalidClient)));
        let jwk = key.jwk();
        let (revoked, _) = authenticator_with(|c| {
            c.public_keys = vec![jwk];
            c.status = ClientStatus::Revoked;
        })
        .await;
        assert!(matches!(
            revoked.authenticate(&of(good(&key, "j1")), NOW).await.result,
            Err(TokenError::InvalidClient)
        ));
        let unknown = Presented::Assertion(ClientAssertion {
            client_id: "oa2-client-id_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".into(),
            assertion: good(&key, "j1"),
        });
        let outcome = revoked.authenticate(&unknown, NOW).await;
        assert!(!outcome.known && matches!(outcome.result, Err(TokenError::InvalidClient)));
    }
}
