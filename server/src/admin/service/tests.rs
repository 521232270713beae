use std::sync::Arc;

use tessera_shared::admin::{ClientStatus, CreateClient, RotateKeys, RotationOutcome};
use tessera_shared::ids::is_client_id;
use tessera_shared::jwk::Algorithm;

use super::*;
use crate::activity::burst::BurstPolicy;
use crate::clock::testing::ManualClock;
use crate::store::sled::SledStore;

const START: u64 = 1_800_000_000;

async fn service() -> (AdminService, Arc<ManualClock>) {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(START));
    let keys = crate::keys::testing::manager(store.clone(), clock.clone(), Algorithm::ES256).await;
    let activity = Activity::new(Audit::new(store.clone(), clock.clone()), clock.clone(), BurstPolicy::default());
    (AdminService::new(store, keys, SecretHasher::new(&[1; 32]), clock.clone(), activity), clock)
}

fn create(name: &str, scopes: &[&str]) -> CreateClient {
    CreateClient {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        refresh_tokens: true,
        secret_ttl_seconds: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        public_keys: Vec::new(),
    }
}

#[tokio::test]
async fn created_clients_are_listed_without_secrets() {
    let (admin, _) = service().await;
    let created = admin.create_client(create("  billing  ", &["read", "read", "write"])).await.unwrap();
    assert!(is_client_id(&created.client_id));
    assert_eq!(created.client_secret.len(), 40);
    assert_eq!(created.name, "billing");
    assert_eq!(created.scopes, ["read", "write"]);
    let listed = admin.list_clients().await.unwrap();
    assert_eq!(listed.len(), 1);
    let json = serde_json::to_string(&listed).unwrap();
    assert!(!json.contains(&created.client_secret));
    let info = admin.client(&created.client_id).await.unwrap();
    assert_eq!((info.status, info.created_at, info.active_refresh_families), (ClientStatus::Active, START, 0));
}

#[tokio::test]
async fn invalid_names_and_scopes_are_refused() {
    let (admin, _) = service().await;
    for bad in [create("", &[]), create("a\u{7}b", &[]), create(&"n".repeat(201), &[]), create("ok", &["a b"])] {
        assert!(matches!(admin.create_client(bad).await, Err(AdminFailure::BadRequest(_))));
    }
    let too_many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let request = CreateClient { name: "ok".into(), scopes: too_many, refresh_tokens: false, ..create("ok", &[]) };
    assert!(matches!(admin.create_client(request).await, Err(AdminFailure::BadRequest(_))));
}

#[tokio::test]
async fn unknown_clients_are_not_found() {
    let (admin, _) = service().await;
    let missing = "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert!(matches!(admin.client(missing).await, Err(AdminFailure::NotFound(_))));
    assert!(matches!(admin.client("../etc").await, Err(AdminFailure::NotFound(_))));
    assert!(matches!(admin.rotate_secret(missing, 0, None).await, Err(AdminFailure::NotFound(_))));
    assert!(matches!(admin.revoke_client(missing).await, Err(AdminFailure::NotFound(_))));
    assert!(matches!(admin.delete_client(missing).await, Err(AdminFailure::NotFound(_))));
    assert!(matches!(admin.revoke_families(missing).await, Err(AdminFailure::NotFound(_))));
}

#[tokio::test]
async fn rotation_reports_the_grace_and_shows_it_until_it_ends() {
    let (admin, clock) = service().await;
    let created = admin.create_client(create("a", &[])).await.unwrap();
    assert!(matches!(
        admin.rotate_secret(&created.client_id, MAX_GRACE_SECONDS + 1, None).await,
        Err(AdminFailure::BadRequest(_))
    ));
    let rotated = admin.rotate_secret(&created.client_id, 100, None).await.unwrap();
    assert_ne!(rotated.client_secret, created.client_secret);
    assert_eq!(admin.client(&created.client_id).await.unwrap().previous_secret_valid_until, Some(START + 100));
    clock.advance(100);
    assert_eq!(admin.client(&created.client_id).await.unwrap().previous_secret_valid_until, None);
}

#[tokio::test]
async fn revoke_and_delete() {
    let (admin, _) = service().await;
    let created = admin.create_client(create("a", &[])).await.unwrap();
    assert_eq!(admin.revoke_client(&created.client_id).await.unwrap().status, ClientStatus::Revoked);
    assert_eq!(admin.revoke_families(&created.client_id).await.unwrap().revoked_families, 0);
    assert_eq!(admin.delete_client(&created.client_id).await.unwrap().client_id, created.client_id);
    assert!(admin.list_clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn keys_are_listed_without_private_parts() {
    let (admin, _) = service().await;
    let keys = admin.keys();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.alg == "ES256"));
}

#[tokio::test]
async fn a_revoked_client_can_be_reactivated() {
    let (admin, _) = service().await;
    let created = admin.create_client(create("job", &[])).await.unwrap();
    assert_eq!(admin.revoke_client(&created.client_id).await.unwrap().status, ClientStatus::Revoked);
    let info = admin.reactivate_client(&created.client_id).await.unwrap();
    assert_eq!(info.status, ClientStatus::Active);
    assert!(matches!(
        admin.reactivate_client("oa2-client-id_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").await,
        Err(AdminFailure::NotFound(_))
    ));
}

#[tokio::test]
async fn every_admin_action_is_in_the_audit_trail() {
    use tessera_shared::admin::AuditKind;
    let (admin, clock) = service().await;
    let created = admin.create_client(create("job", &[])).await.unwrap();
    let id = created.client_id.as_str();
    clock.advance(1);
    admin.rotate_secret(id, 60, None).await.unwrap();
    admin.revoke_families(id).await.unwrap();
    admin.revoke_client(id).await.unwrap();
    admin.reactivate_client(id).await.unwrap();
    admin.delete_client(id).await.unwrap();
    let events = admin.audit_events(None, 100).await.unwrap();
    let kinds: Vec<AuditKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::ClientCreated,
            AuditKind::SecretRotated,
            AuditKind::FamiliesRevoked,
            AuditKind::ClientRevoked,
            AuditKind::ClientReactivated,
            AuditKind::ClientDeleted
        ]
    );
    assert!(events.iter().all(|e| e.client_id.as_deref() == Some(id)));
    assert_eq!((events[0].at, events[1].at), (START, START + 1));
    assert!(events[1].detail.contains("60 s"), "{}", events[1].detail);
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains(&created.client_secret), "no secret in the trail");
    // Cursor paging and the page cap.
    let after = admin.audit_events(Some(events[3].seq), 100).await.unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(admin.audit_events(None, 2).await.unwrap(), events[4..].to_vec());
}

/// `POST /v1/keys/rotate` never refuses: scheduled on a fresh server, at
/// once with `now`; revoking an unknown kid is `not_found` (404), a
/// retired one `conflict` (409), each answered as one admin error.
#[tokio::test]
async fn key_rotation_and_revocation_outcomes_and_errors() {
    let (admin, clock) = service().await;
    let fresh = admin.rotate_keys(RotateKeys { now: false }).await.unwrap();
    assert_eq!(fresh.outcome, RotationOutcome::Scheduled);
    assert_eq!(fresh.rotates_at, START + fresh.jwks_max_age + 1);
    let next = fresh.keys.iter().find(|k| k.state == tessera_shared::admin::KeyState::Next).unwrap();
    assert_eq!(next.rotation_scheduled_at, Some(fresh.rotates_at));
    let old_active = fresh.keys[0].kid.clone();

    clock.advance(1);
    let now = admin.rotate_keys(RotateKeys { now: true }).await.unwrap();
    assert_eq!((now.outcome, now.rotates_at), (RotationOutcome::Rotated, START + 1));
    assert!(now.keys.iter().all(|k| k.rotation_scheduled_at.is_none()), "the schedule went with the rotation");

    admin.revoke_key(&old_active).await.unwrap();
    let retired = admin.revoke_key(&old_active).await.unwrap_err();
    assert!(matches!(retired, AdminFailure::Conflict(_)), "{retired:?}");
    let unknown = admin.revoke_key("no-such-kid").await.unwrap_err();
    assert!(matches!(unknown, AdminFailure::KeyNotFound(_)), "{unknown:?}");
    assert_eq!(unknown.to_string(), "no signing key has the kid no-such-kid");

    for (failure, status, code) in [(retired, 409, "conflict"), (unknown, 404, "not_found")] {
        let response = crate::admin::failure_response(&failure);
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let error: tessera_shared::admin::AdminError = serde_json::from_slice(&body).unwrap();
        assert_eq!((error.error.as_str(), error.message), (code, failure.to_string()));
    }
}

/// Issue 16: `--require-dpop` is kept and shown; the default is optional.
#[tokio::test]
async fn require_dpop_is_kept_and_shown() {
    let (admin, _) = service().await;
    let strict = admin.create_client(CreateClient { require_dpop: true, ..create("strict", &[]) }).await.unwrap();
    assert!(strict.require_dpop);
    assert!(admin.client(&strict.client_id).await.unwrap().require_dpop);
    let lenient = admin.create_client(create("lenient", &[])).await.unwrap();
    assert!(!admin.client(&lenient.client_id).await.unwrap().require_dpop);
}

/// Issue 16: a client's own access-token lifetime and audiences are kept
/// and shown; out-of-range or malformed ones are refused.
#[tokio::test]
async fn token_policy_is_kept_shown_and_checked() {
    let (admin, _) = service().await;
    let with = |ttl: Option<u64>, audiences: &[&str]| CreateClient {
        access_token_ttl_seconds: ttl,
        audiences: audiences.iter().map(|a| a.to_string()).collect(),
        public_keys: Vec::new(),
        ..create("policy", &[])
    };
    let created =
        admin.create_client(with(Some(120), &["https://b.test", "urn:example:api", "https://b.test"])).await.unwrap();
    assert_eq!(created.access_token_ttl_seconds, Some(120));
    assert_eq!(created.audiences, ["https://b.test", "urn:example:api"], "duplicates dropped, order kept");
    let info = admin.client(&created.client_id).await.unwrap();
    assert_eq!(info.access_token_ttl_seconds, Some(120));
    assert_eq!(info.audiences, ["https://b.test", "urn:example:api"]);
    // The test key manager's server lifetime is 300 s.
    assert!(admin.create_client(with(Some(300), &[])).await.is_ok());
    let too_many: Vec<String> = (0..17).map(|i| format!("https://{i}.test")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let long = format!("https://{}", "a".repeat(600));
    let bad = [
        with(Some(0), &[]),
        with(Some(301), &[]),
        with(None, &["not a uri"]),
        with(None, &["relative/path"]),
        with(None, &[":no-scheme"]),
        with(None, &["1http://digit.first"]),
        with(None, &["https://a.test#fragment"]),
        with(None, &["https://a.test/\"quote"]),
        with(None, &["https:"]),
        with(None, &[&long]),
        with(None, &too_many),
    ];
    for request in bad {
        let shown = format!("{:?} {:?}", request.access_token_ttl_seconds, request.audiences.first());
        assert!(matches!(admin.create_client(request).await, Err(AdminFailure::BadRequest(_))), "{shown}");
    }
}

/// Issue 16: a client with public keys has no secret, shows its method and
/// thumbprints, rotates keys with set-keys (audited) and never a secret.
#[tokio::test]
async fn key_clients_have_keys_and_never_a_secret() {
    use crate::client_auth::assertion::tests::TestKey;
    use tessera_shared::admin::AuthMethod;
    let (admin, _) = service().await;
    let (first, second) = (TestKey::es256().jwk(), TestKey::eddsa().jwk());
    let document = |jwk: &Jwk| serde_json::to_string(jwk).unwrap();
    let request = CreateClient { public_keys: vec![document(&first)], ..create("machine", &[]) };
    let created = admin.create_client(request).await.unwrap();
    assert_eq!((created.client_secret.as_str(), created.auth_method), ("", AuthMethod::PrivateKeyJwt));
    assert_eq!(created.key_thumbprints, [first.thumbprint().unwrap()]);
    let json = serde_json::to_value(&created).unwrap();
    assert!(json.get("client_secret").is_none(), "{json}");

    let info = admin.set_keys(&created.client_id, &[document(&second)]).await.unwrap();
    assert_eq!(info.key_thumbprints, [second.thumbprint().unwrap()]);
    let events = admin.audit_events(None, 10).await.unwrap();
    let set = events.iter().find(|e| e.kind == AuditKind::ClientKeysSet).expect("audited");
    assert!(set.detail.contains(&info.key_thumbprints[0]) && set.detail.contains(&created.key_thumbprints[0]));

    fn refused<T>(result: Result<T, AdminFailure>) -> bool {
        matches!(result, Err(AdminFailure::BadRequest(_)))
    }
    assert!(refused(admin.rotate_secret(&created.client_id, 0, None).await), "no secret to rotate");
    assert!(refused(admin.set_keys(&created.client_id, &["not a key".into()]).await));
    assert!(refused(admin.set_keys(&created.client_id, &[]).await), "at least one key");
    let secret_client = admin.create_client(create("secretive", &[])).await.unwrap();
    assert!(refused(admin.set_keys(&secret_client.client_id, &[document(&first)]).await), "a secret client");
    let with_ttl =
        CreateClient { public_keys: vec![document(&first)], secret_ttl_seconds: Some(60), ..create("x", &[]) };
    assert!(refused(admin.create_client(with_ttl).await), "a secret lifetime for a key client");
    assert!(matches!(
        admin.set_keys("oa2-client-id_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", &[document(&first)]).await,
        Err(AdminFailure::NotFound(_))
    ));
}
