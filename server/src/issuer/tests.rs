//! The token service with a hand-moved clock: no sockets, no sleeping.

use std::sync::Arc;

use tessera_shared::admin::CreateClient;
use tessera_shared::jwk::Algorithm;
use tessera_shared::verify::{Verifier, VerifyError};
use tessera_shared::wire::{ErrorCode, TokenResponse};

use super::*;
use crate::activity::burst::BurstPolicy;
use crate::admin::service::AdminService;
use crate::audit::Audit;
use crate::client_auth::ClientCredentials;
use crate::clock::testing::ManualClock;
use crate::store::sled::SledStore;

const START: u64 = 1_800_000_000;
const ISSUER: &str = "https://tessera.test";

struct Fixture {
    issuer: Issuer,
    admin: AdminService,
    clock: Arc<ManualClock>,
    keys: crate::keys::KeyManager,
    store: Arc<dyn Store>,
}

async fn fixture_with(reuse_grace: u64) -> Fixture {
    fixture_capped(reuse_grace, 1000).await
}

async fn fixture_capped(reuse_grace: u64, max_families_per_client: usize) -> Fixture {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(START));
    let keys = crate::keys::testing::manager(store.clone(), clock.clone(), Algorithm::ES256).await;
    let secrets = SecretHasher::new(&[5; 32]);
    let activity = Activity::new(Audit::new(store.clone(), clock.clone()), clock.clone(), BurstPolicy::default());
    let policy = IssuerPolicy {
        issuer_url: ISSUER.into(),
        audience: "https://api.test".into(),
        access_token_ttl: 300,
        refresh_token_ttl: 3600,
        refresh_reuse_grace: reuse_grace,
        max_families_per_client,
    };
    Fixture {
        issuer: Issuer::new(
            store.clone(),
            keys.handle(),
            secrets.clone(),
            clock.clone(),
            policy,
            activity.clone(),
            Metrics::new(),
        ),
        admin: AdminService::new(store.clone(), keys.clone(), secrets, clock.clone(), activity),
        clock,
        keys,
        store,
    }
}

async fn fixture() -> Fixture {
    fixture_with(0).await
}

impl Fixture {
    async fn client(&self, scopes: &[&str], refresh_tokens: bool) -> ClientCredentials {
        let created = self
            .admin
            .create_client(CreateClient {
                name: "t".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                refresh_tokens,
                secret_ttl_seconds: None,
                access_token_ttl_seconds: None,
                audiences: Vec::new(),
                require_dpop: false,
                public_keys: Vec::new(),
            })
            .await
            .unwrap();
        ClientCredentials { client_id: created.client_id, client_secret: created.client_secret }
    }

    /// A client without refresh tokens whose secret expires after `ttl` seconds.
    async fn client_with_secret_ttl(&self, ttl: u64) -> tessera_shared::admin::ClientCredentials {
        self.admin
            .create_client(CreateClient {
                name: "ttl".into(),
                scopes: Vec::new(),
                refresh_tokens: false,
                secret_ttl_seconds: Some(ttl),
                access_token_ttl_seconds: None,
                audiences: Vec::new(),
                require_dpop: false,
                public_keys: Vec::new(),
            })
            .await
            .unwrap()
    }

    async fn grant(
        &self,
        credentials: &ClientCredentials,
        scope: Option<&[&str]>,
    ) -> Result<TokenResponse, TokenError> {
        let scope = scope.map(|s| s.iter().map(|s| s.to_string()).collect());
        self.issuer
            .token(TokenRequest {
                credentials: Presented::Secret(credentials.clone()),
                grant: Grant::ClientCredentials { scope },
                resource: None,
            })
            .await
    }

    async fn refresh(
        &self,
        credentials: &ClientCredentials,
        token: &str,
        scope: Option<&[&str]>,
    ) -> Result<TokenResponse, TokenError> {
        let scope = scope.map(|s| s.iter().map(|s| s.to_string()).collect());
        self.issuer
            .token(TokenRequest {
                credentials: Presented::Secret(credentials.clone()),
                grant: Grant::RefreshToken { refresh_token: token.into(), scope },
                resource: None,
            })
            .await
    }

    fn verifier(&self) -> Verifier {
        Verifier::new(self.keys.handle().current().jwks().clone(), ISSUER, "https://api.test").with_leeway(0)
    }

    /// Verifies at the fixture's own time, never the wall clock: the tokens
    /// were minted on the hand-moved clock, so judging them by the real one
    /// would make these tests fail once the real date passes `START`.
    fn verify(&self, token: &str) -> Result<tessera_shared::claims::AccessTokenClaims, VerifyError> {
        self.verifier().verify_at(token, self.clock.now())
    }
}

fn code(result: Result<TokenResponse, TokenError>) -> ErrorCode {
    result.expect_err("must fail").code()
}

#[tokio::test]
async fn client_credentials_issue_a_verifiable_token_and_a_refresh_token() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let response = f.grant(&client, None).await.unwrap();
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in, 300);
    assert_eq!(response.scope, None);
    assert!(tessera_shared::ids::is_refresh_token(response.refresh_token.as_deref().unwrap()));
    let claims = f.verify(&response.access_token).unwrap();
    assert_eq!(claims.sub, client.client_id);
    assert_eq!(claims.client_id, client.client_id);
    assert_eq!((claims.iat, claims.exp), (START, START + 300));
    assert_eq!(claims.scope, None);
}

#[tokio::test]
async fn access_tokens_expire_with_their_ttl() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    let response = f.grant(&client, None).await.unwrap();
    assert_eq!(response.refresh_token, None, "a --no-refresh client gets none");
    // The verifier reads the real clock: START lies in the future, so
    // check the claim arithmetic rather than wall-clock expiry.
    let claims = f.verify(&response.access_token).unwrap();
    assert_eq!(claims.exp - claims.iat, 300);
}

#[tokio::test]
async fn unknown_wrong_and_revoked_clients_fail_alike() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let unknown = ClientCredentials {
        client_id: "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        client_secret: client.client_secret.clone(),
    };
    let wrong = ClientCredentials { client_secret: "x".repeat(40), ..client.clone() };
    let malformed = ClientCredentials { client_id: "nope".into(), ..client.clone() };
    for credentials in [&unknown, &wrong, &malformed] {
        let error = f.grant(credentials, None).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidClient);
        assert_eq!(error.to_string(), "Client ID is not found or password is wrong.");
    }
    let refresh = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    f.admin.revoke_client(&client.client_id).await.unwrap();
    assert_eq!(code(f.grant(&client, None).await), ErrorCode::InvalidClient);
    assert_eq!(f.store.count_live_families(&client.client_id, START).await.unwrap(), 0);
    assert_eq!(code(f.refresh(&client, &refresh, None).await), ErrorCode::InvalidClient);
}

#[tokio::test]
async fn scopes_default_to_all_allowed_and_may_be_narrowed() {
    let f = fixture().await;
    let client = f.client(&["read", "write"], true).await;
    let all = f.grant(&client, None).await.unwrap();
    assert_eq!(all.scope.as_deref(), Some("read write"));
    let read = f.grant(&client, Some(&["read"])).await.unwrap();
    assert_eq!(read.scope.as_deref(), Some("read"));
    assert_eq!(f.verify(&read.access_token).unwrap().scope.as_deref(), Some("read"));
    assert_eq!(code(f.grant(&client, Some(&["admin"])).await), ErrorCode::InvalidScope);
}

#[tokio::test]
async fn refresh_rotates_narrows_and_never_widens() {
    let f = fixture().await;
    let client = f.client(&["read", "write"], true).await;
    let first = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    let narrowed = f.refresh(&client, &first, Some(&["read"])).await.unwrap();
    assert_eq!(narrowed.scope.as_deref(), Some("read"));
    let second = narrowed.refresh_token.unwrap();
    assert_ne!(second, first);
    // The family keeps the original grant: a later refresh gets it back.
    let again = f.refresh(&client, &second, None).await.unwrap();
    assert_eq!(again.scope.as_deref(), Some("read write"));
    let third = again.refresh_token.unwrap();
    assert_eq!(code(f.refresh(&client, &third, Some(&["read", "admin"])).await), ErrorCode::InvalidScope);
    // A refused scope does not use up the token.
    assert!(f.refresh(&client, &third, None).await.is_ok());
}

#[tokio::test]
async fn reuse_revokes_the_whole_family() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let first = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    let second = f.refresh(&client, &first, None).await.unwrap().refresh_token.unwrap();
    let error = f.refresh(&client, &first, None).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidGrant);
    assert_eq!(code(f.refresh(&client, &second, None).await), ErrorCode::InvalidGrant, "the successor died too");
    // Other families of the client are untouched.
    let other = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    assert!(f.refresh(&client, &other, None).await.is_ok());
}

#[tokio::test]
async fn a_retry_within_the_reuse_grace_gets_a_new_successor() {
    let f = fixture_with(10).await;
    let client = f.client(&[], true).await;
    let first = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    let lost = f.refresh(&client, &first, None).await.unwrap().refresh_token.unwrap();
    f.clock.advance(5);
    let retried = f.refresh(&client, &first, None).await.unwrap().refresh_token.unwrap();
    assert_ne!(retried, lost);
    // The superseded successor now counts as used: presenting it is reuse.
    assert_eq!(code(f.refresh(&client, &lost, None).await), ErrorCode::InvalidGrant);
    assert_eq!(code(f.refresh(&client, &retried, None).await), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn a_grant_beyond_the_family_cap_retires_the_oldest_family() {
    let f = fixture_capped(0, 2).await;
    let client = f.client(&[], true).await;
    let oldest = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    // Family IDs order by the second they were started in.
    f.clock.advance(1);
    let middle = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    f.clock.advance(1);
    let newest = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    let error = f.refresh(&client, &oldest, None).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidGrant, "the oldest family was retired");
    assert!(f.refresh(&client, &middle, None).await.is_ok());
    assert!(f.refresh(&client, &newest, None).await.is_ok());
    assert_eq!(f.store.count_live_families(&client.client_id, START + 2).await.unwrap(), 2);
}

#[tokio::test]
async fn reuse_after_the_grace_is_theft() {
    let f = fixture_with(10).await;
    let client = f.client(&[], true).await;
    let first = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    let second = f.refresh(&client, &first, None).await.unwrap().refresh_token.unwrap();
    f.clock.advance(10);
    assert_eq!(code(f.refresh(&client, &first, None).await), ErrorCode::InvalidGrant);
    assert_eq!(code(f.refresh(&client, &second, None).await), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn refresh_tokens_expire_and_are_purged() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let first = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    f.clock.advance(3599);
    let second = f.refresh(&client, &first, None).await.unwrap().refresh_token.unwrap();
    f.clock.advance(3600);
    let error = f.refresh(&client, &second, None).await.unwrap_err();
    assert_eq!((error.code(), error.to_string().as_str()), (ErrorCode::InvalidGrant, "the refresh token has expired"));
    let report = f.store.purge_expired(f.clock.now(), 100).await.unwrap();
    assert_eq!(report.families, 1);
    assert_eq!(code(f.refresh(&client, &second, None).await), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn refresh_tokens_belong_to_their_client() {
    let f = fixture().await;
    let owner = f.client(&[], true).await;
    let other = f.client(&[], true).await;
    let token = f.grant(&owner, None).await.unwrap().refresh_token.unwrap();
    assert_eq!(code(f.refresh(&other, &token, None).await), ErrorCode::InvalidGrant);
    assert!(f.refresh(&owner, &token, None).await.is_ok(), "the failed attempt did not consume it");
}

#[tokio::test]
async fn no_refresh_clients_may_not_refresh() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    let error = f.refresh(&client, &"a".repeat(40), None).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::UnauthorizedClient);
}

#[tokio::test]
async fn malformed_and_unknown_refresh_tokens_are_invalid_grants() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    assert_eq!(code(f.refresh(&client, "short", None).await), ErrorCode::InvalidGrant);
    assert_eq!(code(f.refresh(&client, &"b".repeat(40), None).await), ErrorCode::InvalidGrant);
}

/// Issue 12: a token altered in one character is `invalid_grant` and
/// costs its holder nothing; the real one still rotates.
#[tokio::test]
async fn an_altered_refresh_token_changes_nothing() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let first = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    let second = f.refresh(&client, &first, None).await.unwrap().refresh_token.unwrap();
    let mut altered = second.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let error = f.refresh(&client, std::str::from_utf8(&altered).unwrap(), None).await.unwrap_err();
    assert_eq!((error.code(), error.to_string().as_str()), (ErrorCode::InvalidGrant, "the refresh token is not valid"));
    assert!(f.refresh(&client, &second, None).await.is_ok(), "the real token still rotates");
}

/// Issue 12: a family started before its client was revoked stays dead
/// after the client is re-activated, by the client's epoch alone.
#[tokio::test]
async fn a_family_from_before_a_client_revocation_stays_dead() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let before = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    f.store.update_client(&client.client_id, &crate::store::records::ClientRecord::revoke).await.unwrap();
    let reactivate =
        |c: &mut crate::store::records::ClientRecord| c.status = tessera_shared::admin::ClientStatus::Active;
    f.store.update_client(&client.client_id, &reactivate).await.unwrap();
    let error = f.refresh(&client, &before, None).await.unwrap_err();
    assert_eq!(
        (error.code(), error.to_string().as_str()),
        (ErrorCode::InvalidGrant, "the refresh token has been revoked")
    );
    let after = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    assert!(f.refresh(&client, &after, None).await.is_ok(), "a family of the new epoch works");
}

#[tokio::test]
async fn unsupported_grants_are_refused_after_authentication() {
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let request =
        TokenRequest { credentials: Presented::Secret(client.clone()), grant: Grant::Unsupported, resource: None };
    assert_eq!(f.issuer.token(request).await.unwrap_err().code(), ErrorCode::UnsupportedGrantType);
    let wrong = ClientCredentials { client_secret: "x".into(), ..client };
    let request = TokenRequest { credentials: Presented::Secret(wrong), grant: Grant::Unsupported, resource: None };
    assert_eq!(f.issuer.token(request).await.unwrap_err().code(), ErrorCode::InvalidClient);
}

#[tokio::test]
async fn the_old_secret_works_during_the_grace_and_not_a_second_after() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    let rotated = f.admin.rotate_secret(&client.client_id, 60, None).await.unwrap();
    assert_eq!(rotated.previous_secret_valid_until, Some(START + 60));
    let new = ClientCredentials { client_id: client.client_id.clone(), client_secret: rotated.client_secret };
    assert!(f.grant(&new, None).await.is_ok());
    f.clock.advance(59);
    assert!(f.grant(&client, None).await.is_ok(), "old secret inside the grace");
    f.clock.advance(1);
    assert_eq!(code(f.grant(&client, None).await), ErrorCode::InvalidClient, "old secret after the grace");
    assert!(f.grant(&new, None).await.is_ok());
}

#[tokio::test]
async fn without_grace_the_old_secret_stops_at_once() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    f.admin.rotate_secret(&client.client_id, 0, None).await.unwrap();
    assert_eq!(code(f.grant(&client, None).await), ErrorCode::InvalidClient);
}

#[tokio::test]
async fn an_expired_secret_fails_like_a_wrong_one_from_its_last_second_on() {
    let f = fixture().await;
    let created = f.client_with_secret_ttl(100).await;
    assert_eq!(created.secret_expires_at, Some(START + 100));
    let client = ClientCredentials { client_id: created.client_id.clone(), client_secret: created.client_secret };
    f.clock.advance(99);
    assert!(f.grant(&client, None).await.is_ok(), "one second before expiry");
    f.clock.advance(1);
    assert_eq!(code(f.grant(&client, None).await), ErrorCode::InvalidClient, "at expiry");
    let info = f.admin.client(&created.client_id).await.unwrap();
    assert_eq!(info.secret_expires_at, Some(START + 100), "shown to the operator");
}

#[tokio::test]
async fn a_rotated_secret_gets_its_own_ttl_and_the_grace_never_outlives_the_old_expiry() {
    let f = fixture().await;
    let created = f.client_with_secret_ttl(100).await;
    let old = ClientCredentials { client_id: created.client_id.clone(), client_secret: created.client_secret };
    f.clock.advance(50);
    // A grace of 600 s would outlive the old secret's expiry at START + 100.
    let rotated = f.admin.rotate_secret(&old.client_id, 600, Some(1000)).await.unwrap();
    assert_eq!(rotated.previous_secret_valid_until, Some(START + 100));
    assert_eq!(rotated.secret_expires_at, Some(START + 50 + 1000));
    let new = ClientCredentials { client_id: old.client_id.clone(), client_secret: rotated.client_secret };
    f.clock.advance(49);
    assert!(f.grant(&old, None).await.is_ok(), "old secret before its own expiry");
    f.clock.advance(1);
    assert_eq!(code(f.grant(&old, None).await), ErrorCode::InvalidClient, "old secret at its own expiry");
    assert!(f.grant(&new, None).await.is_ok());
    f.clock.advance(949);
    assert!(f.grant(&new, None).await.is_ok(), "new secret one second before its expiry");
    f.clock.advance(1);
    assert_eq!(code(f.grant(&new, None).await), ErrorCode::InvalidClient, "new secret at its expiry");
    // Rotating without a TTL gives a secret that does not expire.
    let renewed = f.admin.rotate_secret(&old.client_id, 0, None).await.unwrap();
    assert_eq!(renewed.secret_expires_at, None);
    let renewed = ClientCredentials { client_id: old.client_id.clone(), client_secret: renewed.client_secret };
    f.clock.advance(10 * 365 * 86_400);
    assert!(f.grant(&renewed, None).await.is_ok());
}

#[tokio::test]
async fn secret_lifetimes_out_of_range_are_refused() {
    let f = fixture().await;
    let request = |ttl| CreateClient {
        name: "t".into(),
        scopes: Vec::new(),
        refresh_tokens: false,
        secret_ttl_seconds: Some(ttl),
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        public_keys: Vec::new(),
    };
    assert!(matches!(f.admin.create_client(request(0)).await, Err(crate::admin::service::AdminFailure::BadRequest(_))));
    let client = f.client(&[], false).await;
    let too_long = crate::admin::service::MAX_SECRET_TTL_SECONDS + 1;
    assert!(matches!(
        f.admin.rotate_secret(&client.client_id, 0, Some(too_long)).await,
        Err(crate::admin::service::AdminFailure::BadRequest(_))
    ));
}

#[tokio::test]
async fn last_use_is_recorded_coarsely() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    f.grant(&client, None).await.unwrap();
    assert_eq!(f.store.client_last_used(&client.client_id).await.unwrap(), Some(START));
    f.clock.advance(30);
    f.grant(&client, None).await.unwrap();
    assert_eq!(f.store.client_last_used(&client.client_id).await.unwrap(), Some(START), "within the resolution");
    f.clock.advance(30);
    f.grant(&client, None).await.unwrap();
    assert_eq!(f.store.client_last_used(&client.client_id).await.unwrap(), Some(START + 60));
}

#[tokio::test]
async fn jti_is_unique() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let token = f.grant(&client, None).await.unwrap().access_token;
        assert!(seen.insert(f.verify(&token).unwrap().jti));
    }
}

#[tokio::test]
async fn a_token_signed_by_a_foreign_key_does_not_verify() {
    let f = fixture().await;
    let other = fixture().await;
    let client = other.client(&[], false).await;
    let token = other.grant(&client, None).await.unwrap().access_token;
    assert!(matches!(f.verify(&token), Err(VerifyError::UnknownKey(_))));
}

#[tokio::test]
async fn counters_and_security_events_reach_the_activity_handle() {
    use tessera_shared::admin::AuditKind;
    let f = fixture().await;
    let client = f.client(&[], true).await;
    let first = f.grant(&client, None).await.unwrap().refresh_token.unwrap();
    f.refresh(&client, &first, None).await.unwrap();
    // Reuse: one security event naming the client, no token in it.
    f.refresh(&client, &first, None).await.unwrap_err();
    let wrong = ClientCredentials { client_id: client.client_id.clone(), client_secret: "x".repeat(40) };
    for _ in 0..10 {
        assert_eq!(code(f.grant(&wrong, None).await), ErrorCode::InvalidClient);
    }
    let stats = f.issuer.activity().stats();
    assert_eq!((stats.tokens_issued, stats.tokens_refreshed, stats.failed_authentications), (1, 1, 10));
    let events = f.issuer.activity().audit().page(None, 100).await.unwrap();
    let security: Vec<&tessera_shared::admin::AuditEvent> = events.iter().filter(|e| e.kind.is_security()).collect();
    assert_eq!(security.len(), 2, "{events:?}");
    assert_eq!(security[0].kind, AuditKind::RefreshTokenReuse);
    assert_eq!(security[1].kind, AuditKind::AuthFailureBurst, "ten failures, one event");
    assert!(security.iter().all(|e| e.client_id.as_deref() == Some(client.client_id.as_str())));
    assert!(!serde_json::to_string(&events).unwrap().contains(&first), "no refresh token in the trail");
}

// -- revocation and introspection (RFC 7009, RFC 7662) ----------------------

fn status_request(
    credentials: &ClientCredentials,
    token: &str,
) -> crate::grant::revoke_introspect::RevokeIntrospectRequest {
    crate::grant::revoke_introspect::RevokeIntrospectRequest {
        credentials: Presented::Secret(credentials.clone()),
        token: token.into(),
        hint: None,
    }
}

#[tokio::test]
async fn introspection_judges_expiry_by_the_server_clock() {
    let f = fixture().await;
    let client = f.client(&["read"], true).await;
    let response = f.grant(&client, Some(&["read"])).await.unwrap();
    let refresh = response.refresh_token.clone().unwrap();

    let access = f.issuer.introspect(status_request(&client, &response.access_token)).await.unwrap();
    assert!(access.active);
    assert_eq!((access.iat, access.exp), (Some(START), Some(START + 300)));
    assert_eq!(access.scope.as_deref(), Some("read"));

    f.clock.advance(300);
    assert!(f.issuer.introspect(status_request(&client, &response.access_token)).await.unwrap().active, "through exp");
    f.clock.advance(1);
    let expired = f.issuer.introspect(status_request(&client, &response.access_token)).await.unwrap();
    assert_eq!(expired, tessera_shared::introspection::IntrospectionResponse::inactive());

    assert!(f.issuer.introspect(status_request(&client, &refresh)).await.unwrap().active);
    f.clock.advance(3600);
    assert!(!f.issuer.introspect(status_request(&client, &refresh)).await.unwrap().active, "an expired refresh token");
}

#[tokio::test]
async fn a_revoked_access_token_is_denied_until_its_expiry_then_purged() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    let token = f.grant(&client, None).await.unwrap().access_token;
    let jti = f.verify(&token).unwrap().jti;
    f.issuer.revoke(status_request(&client, &token)).await.unwrap();
    assert!(f.store.is_access_token_denied(&jti, START).await.unwrap());
    assert!(!f.issuer.introspect(status_request(&client, &token)).await.unwrap().active);

    let running = tokio_util::sync::CancellationToken::new();
    let purge = || crate::purge::purge_all(f.store.as_ref(), f.clock.as_ref(), &running);
    f.clock.advance(300);
    assert_eq!(purge().await.unwrap().denied, 0, "kept while the token could still be presented");
    assert!(f.store.is_access_token_denied(&jti, START + 300).await.unwrap());
    f.clock.advance(2);
    assert_eq!(purge().await.unwrap().denied, 1, "purged once the token has expired anyway");
}

#[tokio::test]
async fn revocation_by_another_client_changes_nothing() {
    let f = fixture().await;
    let owner = f.client(&[], true).await;
    let stranger = f.client(&[], true).await;
    let response = f.grant(&owner, None).await.unwrap();
    let refresh = response.refresh_token.unwrap();
    f.issuer.revoke(status_request(&stranger, &refresh)).await.unwrap();
    f.issuer.revoke(status_request(&stranger, &response.access_token)).await.unwrap();
    assert!(f.issuer.introspect(status_request(&stranger, &response.access_token)).await.unwrap().active);
    assert!(f.refresh(&owner, &refresh, None).await.is_ok(), "the owner's family lives");
    let wrong = ClientCredentials { client_secret: "x".repeat(40), ..stranger };
    assert_eq!(f.issuer.revoke(status_request(&wrong, &refresh)).await.unwrap_err().code(), ErrorCode::InvalidClient);
}

/// Issue 13, item 7: an unknown client ID and a known one with a wrong
/// secret do the same work: one HMAC each (against a decoy digest for the
/// unknown ID). That neither reads a tree on sled is checked beside the
/// client cache (`a_complete_cache_answers_known_and_unknown_ids_alike`).
#[tokio::test]
async fn unknown_ids_and_wrong_secrets_do_the_same_work() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    let unknown = ClientCredentials {
        client_id: format!("oa2-client-id_{}", "Z".repeat(32)),
        client_secret: client.client_secret.clone(),
    };
    let wrong = ClientCredentials { client_id: client.client_id.clone(), client_secret: "w".repeat(40) };
    let mut work = Vec::new();
    for credentials in [&unknown, &wrong] {
        let before = f.issuer.authenticator.secrets().digests_computed();
        assert!(matches!(
            f.issuer.authenticate(&Presented::Secret(credentials.clone()), START).await,
            Err(TokenError::InvalidClient)
        ));
        work.push(f.issuer.authenticator.secrets().digests_computed() - before);
    }
    assert_eq!(work, [1, 1], "one HMAC for either");
}

// -- per-client policy (issue 16) ---------------------------------------------

impl Fixture {
    /// A client with refresh tokens, its own access-token lifetime and audiences.
    async fn client_with_policy(&self, ttl: Option<u64>, audiences: &[&str]) -> ClientCredentials {
        let created = self
            .admin
            .create_client(CreateClient {
                name: "policy".into(),
                scopes: Vec::new(),
                require_dpop: false,
                refresh_tokens: true,
                secret_ttl_seconds: None,
                access_token_ttl_seconds: ttl,
                audiences: audiences.iter().map(|a| a.to_string()).collect(),
                public_keys: Vec::new(),
            })
            .await
            .unwrap();
        ClientCredentials { client_id: created.client_id, client_secret: created.client_secret }
    }

    async fn grant_for(
        &self,
        credentials: &ClientCredentials,
        resource: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        self.issuer
            .token(TokenRequest {
                credentials: Presented::Secret(credentials.clone()),
                grant: Grant::ClientCredentials { scope: None },
                resource: resource.map(str::to_owned),
            })
            .await
    }

    async fn refresh_for(
        &self,
        credentials: &ClientCredentials,
        token: &str,
        resource: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        self.issuer
            .token(TokenRequest {
                credentials: Presented::Secret(credentials.clone()),
                grant: Grant::RefreshToken { refresh_token: token.into(), scope: None },
                resource: resource.map(str::to_owned),
            })
            .await
    }

    /// The claims of a token for `audience`, verified at the fixture's time.
    fn claims_for(&self, token: &str, audience: &str) -> tessera_shared::claims::AccessTokenClaims {
        Verifier::new(self.keys.handle().current().jwks().clone(), ISSUER, audience)
            .with_leeway(0)
            .verify_at(token, self.clock.now())
            .unwrap()
    }
}

#[tokio::test]
async fn a_clients_own_ttl_sets_expires_in_and_exp_on_every_grant() {
    let f = fixture().await;
    let client = f.client_with_policy(Some(60), &[]).await;
    let first = f.grant_for(&client, None).await.unwrap();
    assert_eq!(first.expires_in, 60);
    let claims = f.verify(&first.access_token).unwrap();
    assert_eq!((claims.iat, claims.exp), (START, START + 60));
    f.clock.advance(10);
    let refreshed = f.refresh_for(&client, first.refresh_token.as_deref().unwrap(), None).await.unwrap();
    assert_eq!(refreshed.expires_in, 60);
    let claims = f.verify(&refreshed.access_token).unwrap();
    assert_eq!(claims.exp - claims.iat, 60);
    // Another client keeps the server's lifetime.
    let other = f.client(&[], false).await;
    assert_eq!(f.grant(&other, None).await.unwrap().expires_in, 300);
}

#[tokio::test]
async fn resource_picks_one_of_the_clients_audiences() {
    let f = fixture().await;
    let client = f.client_with_policy(None, &["https://a.test", "https://b.test"]).await;
    let default = f.grant_for(&client, None).await.unwrap();
    assert_eq!(f.claims_for(&default.access_token, "https://a.test").aud, "https://a.test", "the first by default");
    let picked = f.grant_for(&client, Some("https://b.test")).await.unwrap();
    assert_eq!(f.claims_for(&picked.access_token, "https://b.test").aud, "https://b.test");
    for foreign in ["https://c.test", "https://api.test", "https://a.test/"] {
        assert_eq!(code(f.grant_for(&client, Some(foreign)).await), ErrorCode::InvalidTarget, "{foreign}");
    }
    // On a refresh too, and a refused resource does not use up the token.
    let refresh = picked.refresh_token.unwrap();
    assert_eq!(code(f.refresh_for(&client, &refresh, Some("https://c.test")).await), ErrorCode::InvalidTarget);
    let refreshed = f.refresh_for(&client, &refresh, Some("https://b.test")).await.unwrap();
    assert_eq!(f.claims_for(&refreshed.access_token, "https://b.test").aud, "https://b.test");
}

#[tokio::test]
async fn a_client_without_audiences_may_name_only_the_servers() {
    let f = fixture().await;
    let client = f.client_with_policy(None, &[]).await;
    let named = f.grant_for(&client, Some("https://api.test")).await.unwrap();
    assert_eq!(f.verify(&named.access_token).unwrap().aud, "https://api.test");
    assert_eq!(code(f.grant_for(&client, Some("https://a.test")).await), ErrorCode::InvalidTarget);
}

#[tokio::test]
async fn tokens_for_a_clients_audience_can_be_introspected_and_revoked() {
    let f = fixture().await;
    let client = f.client_with_policy(Some(60), &["https://a.test"]).await;
    let token = f.grant_for(&client, None).await.unwrap().access_token;
    let active = f.issuer.introspect(status_request(&client, &token)).await.unwrap();
    assert!(active.active);
    assert_eq!(active.aud.as_deref(), Some("https://a.test"));
    assert_eq!(active.exp, Some(START + 60));
    f.issuer.revoke(status_request(&client, &token)).await.unwrap();
    assert!(!f.issuer.introspect(status_request(&client, &token)).await.unwrap().active);
}

/// Issue 16: revocation and introspection authenticate through the same
/// path as the token endpoint, so their failures count as failed
/// authentications too (and feed the burst detector).
#[tokio::test]
async fn failed_authentications_at_revocation_and_introspection_are_counted() {
    let f = fixture().await;
    let client = f.client(&[], false).await;
    let wrong = ClientCredentials { client_secret: "w".repeat(40), ..client.clone() };
    assert!(matches!(f.issuer.introspect(status_request(&wrong, "t")).await, Err(TokenError::InvalidClient)));
    assert!(matches!(f.issuer.revoke(status_request(&wrong, "t")).await, Err(TokenError::InvalidClient)));
    assert_eq!(f.issuer.activity().stats().failed_authentications, 2);
}

mod dpop;
