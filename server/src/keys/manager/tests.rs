//! The key manager with a hand-moved clock: the rotation timeline that no
//! resource server may notice, algorithm switches, import, encryption at rest.

use std::sync::Arc;

use ring::rand::SystemRandom;
use tessera_shared::admin::{AuditKind, CreateClient, KeyState};
use tessera_shared::jwk::{Algorithm, JwkSet};
use tessera_shared::verify::Verifier;

use super::*;
use crate::admin::service::AdminService;
use crate::client_auth::ClientCredentials;
use crate::clock::testing::ManualClock;
use crate::crypto::secret::SecretHasher;
use crate::grant::request::{Grant, TokenRequest};
use crate::issuer::{Issuer, IssuerPolicy};
use crate::keys::KeyError;
use crate::store::sled::SledStore;

const ISSUER: &str = "https://tessera.test";
const TIMING: Timing = Timing { rotate_every: 1800, access_token_ttl: 300, jwks_max_age: 300 };
/// Seconds between two steps of the timeline: prime, so steps fall on
/// every offset of a rotation and a cache interval.
const STEP: u64 = 7;

fn settings(alg: Algorithm) -> KeySettings {
    KeySettings { alg, timing: TIMING }
}

/// One step of the timeline: what the JWKS endpoint served at `at`, or a
/// token issued at `at`.
struct Served {
    at: u64,
    jwks: JwkSet,
}

struct Issued {
    at: u64,
    kid: String,
    token: String,
}

fn audit(store: &Arc<dyn Store>, clock: &Arc<ManualClock>) -> Audit {
    Audit::new(store.clone(), clock.clone())
}

fn activity(store: &Arc<dyn Store>, clock: &Arc<ManualClock>) -> crate::activity::Activity {
    crate::activity::Activity::new(audit(store, clock), clock.clone(), crate::activity::burst::BurstPolicy::default())
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

/// In one instance, across scheduled rotations, on-demand rotations and
/// two algorithm switches by restart (ES256 → EdDSA → RS256): every token
/// verifies against every JWKS served from one cache interval before it was
/// issued until it expired. So a resource server that refreshes its cached
/// JWKS at the advertised max-age never sees an unknown kid.
#[tokio::test]
async fn no_token_is_signed_by_a_key_missing_from_a_jwks_served_one_cache_interval_earlier() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    // Any start works: every check below runs at the test's own time.
    let start = 1_800_000_000;
    let clock = Arc::new(ManualClock::at(start));
    let policy = IssuerPolicy {
        issuer_url: ISSUER.into(),
        audience: ISSUER.into(),
        access_token_ttl: TIMING.access_token_ttl,
        refresh_token_ttl: 3600,
        refresh_reuse_grace: 0,
        max_families_per_client: 1000,
    };
    let secrets = SecretHasher::new(&[5; 32]);
    let mut served = Vec::new();
    let mut issued = Vec::new();
    let (mut rotations, mut scheduled, mut client) = (0, 0, None);
    for (phase, alg) in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256].into_iter().enumerate() {
        // A (re)start with a new signing.alg: the algorithm switch.
        let manager =
            KeyManager::start(store.clone(), clock.clone(), settings(alg), None, audit(&store, &clock)).await.unwrap();
        let issuer = Issuer::new(
            store.clone(),
            manager.handle(),
            secrets.clone(),
            clock.clone(),
            policy.clone(),
            activity(&store, &clock),
            crate::metrics::Metrics::new(),
        );
        let admin =
            AdminService::new(store.clone(), manager.clone(), secrets.clone(), clock.clone(), activity(&store, &clock));
        if client.is_none() {
            let created = admin
                .create_client(CreateClient {
                    name: "rs".into(),
                    scopes: Vec::new(),
                    refresh_tokens: false,
                    secret_ttl_seconds: None,
                    access_token_ttl_seconds: None,
                    audiences: Vec::new(),
                    require_dpop: false,
                    public_keys: Vec::new(),
                })
                .await
                .unwrap();
            client = Some(ClientCredentials { client_id: created.client_id, client_secret: created.client_secret });
        }
        let credentials = client.clone().unwrap();
        // Two hours a phase: several scheduled rotations each.
        for step in 0..(7200 / STEP) {
            let now = clock.now();
            manager.tick().await.unwrap();
            // Operators rotating by hand now and then, too early or not.
            if step % 97 == 50 {
                match manager.rotate("test").await.unwrap() {
                    Rotation::Rotated { at } => {
                        assert_eq!(at, now);
                        rotations += 1;
                        // At once again: the new next key is too fresh to
                        // sign, so the rotation is scheduled for later.
                        let again = manager.rotate("test").await.unwrap();
                        assert!(matches!(again, Rotation::Scheduled { at } if at > now), "{again:?}");
                        scheduled += 1;
                    }
                    Rotation::Scheduled { at } => {
                        assert!(now < at);
                        scheduled += 1;
                    }
                }
            }
            served.push(Served { at: now, jwks: manager.handle().current().jwks().clone() });
            let request = TokenRequest {
                credentials: crate::client_auth::Presented::Secret(credentials.clone()),
                grant: Grant::ClientCredentials { scope: None },
                resource: None,
            };
            let token = issuer.token(request).await.unwrap().access_token;
            issued.push(Issued { at: now, kid: kid_of(&token), token });
            clock.advance(STEP);
        }
        let signing: Vec<&str> = issued.iter().rev().take(1).map(|t| t.kid.as_str()).collect();
        let ring = manager.handle().current();
        assert_eq!(ring.signer().kid(), signing[0]);
        assert_eq!(
            ring.signer().public_jwk().alg.as_deref(),
            Some(alg.as_str()),
            "phase {phase} ends signing with {alg}"
        );
    }

    let kids: std::collections::BTreeSet<&str> = issued.iter().map(|t| t.kid.as_str()).collect();
    assert!(kids.len() >= 9, "the timeline went through many keys: {}", kids.len());
    assert!(
        scheduled > 0 && rotations > 0,
        "on-demand rotations were both scheduled and done ({scheduled}, {rotations})"
    );
    let mut checked = 0;
    for token in &issued {
        let window = served
            .iter()
            .filter(|s| s.at + TIMING.jwks_max_age >= token.at && s.at <= token.at + TIMING.access_token_ttl);
        let window: Vec<&Served> = window.filter(|s| s.at >= start).collect();
        for jwks in &window {
            assert!(
                jwks.jwks.find(&token.kid).is_some(),
                "a token issued at +{} (kid {}) is unknown to the JWKS served at +{}",
                token.at - start,
                token.kid,
                jwks.at - start
            );
        }
        // Full verification against the oldest and the newest JWKS of the window.
        for jwks in [window.first(), window.last()].into_iter().flatten() {
            Verifier::new(jwks.jwks.clone(), ISSUER, ISSUER).verify_at(&token.token, token.at).unwrap();
            checked += 1;
        }
    }
    assert!(checked >= issued.len());

    // Retired keys are gone from the JWKS, and their private parts wiped.
    let records = store.keys().await.unwrap();
    let retired: Vec<&KeyRecord> = records.iter().filter(|k| k.state == KeyState::Retired).collect();
    assert!(retired.len() >= 6, "retired keys: {}", retired.len());
    let last = &served.last().unwrap().jwks;
    for key in &retired {
        assert!(last.find(&key.kid).is_none(), "retired {} is still published", key.kid);
        assert!(key.private_pkcs8.is_empty() && key.sealed_pkcs8.is_none());
    }
    // The JWKS never grew beyond active + next + the retiring keys of one period.
    assert!(served.iter().all(|s| s.jwks.keys.len() <= 4));
}

#[tokio::test]
async fn an_algorithm_switch_publishes_a_new_next_key_that_signs_from_the_next_rotation() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(10_000));
    let es = KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), None, audit(&store, &clock))
        .await
        .unwrap();
    let es_active = es.handle().current().signer().kid().to_owned();
    clock.advance(1000);
    let ed = KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::EdDSA), None, audit(&store, &clock))
        .await
        .unwrap();
    let infos = ed.infos();
    let state = |s: KeyState| infos.iter().filter(move |k| k.state == s);
    assert_eq!(state(KeyState::Active).next().unwrap().kid, es_active, "the active key keeps signing");
    assert_eq!(state(KeyState::Next).next().unwrap().alg, "EdDSA");
    assert_eq!(state(KeyState::Retired).count(), 1, "the ES256 next key, which never signed, left at once");
    let trail = kinds_and_details(&audit(&store, &clock).page(None, 10).await.unwrap());
    assert_eq!(trail.len(), 1, "the switch, not the first keys: {trail:?}");
    let replaced = &state(KeyState::Retired).next().unwrap().kid;
    let new_next = &state(KeyState::Next).next().unwrap().kid;
    assert_eq!(trail[0].0, AuditKind::KeyRetired);
    assert!(trail[0].1.contains(replaced.as_str()) && trail[0].1.contains(new_next.as_str()), "{trail:?}");
    assert!(trail[0].1.contains("signing.alg changed"), "{trail:?}");
    let ready = clock.now() + TIMING.jwks_max_age + 1;
    let scheduled = ed.rotate("test").await.unwrap();
    assert_eq!(scheduled, Rotation::Scheduled { at: ready }, "the EdDSA key was just published");
    assert_eq!(ed.scheduled_rotation(), Some(ready));
    clock.advance(TIMING.jwks_max_age);
    ed.tick().await.unwrap();
    assert_eq!(ed.handle().current().signer().kid(), es_active, "not a second early");
    clock.advance(1);
    ed.tick().await.unwrap();
    assert_eq!(ed.handle().current().signer().public_jwk().alg.as_deref(), Some("EdDSA"), "the schedule ran");
    assert_eq!(ed.scheduled_rotation(), None);
}

fn kinds_and_details(events: &[tessera_shared::admin::AuditEvent]) -> Vec<(AuditKind, String)> {
    events.iter().map(|e| (e.kind, e.detail.clone())).collect()
}

/// A scheduled rotation survives a restart (it is stored with the keys),
/// `rotate_now` and `revoke` change the keys at once, and every change is
/// in the audit trail with its kid.
#[tokio::test]
async fn scheduled_rotations_persist_and_immediate_changes_are_audited_with_the_kid() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(50_000));
    let trail = audit(&store, &clock);
    let manager =
        KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), None, trail.clone()).await.unwrap();
    let first = manager.infos();
    let (active, next) = (first[0].kid.clone(), first[1].kid.clone());
    let ready = 50_000 + TIMING.jwks_max_age + 1;
    assert_eq!(manager.rotate("admin").await.unwrap(), Rotation::Scheduled { at: ready });
    assert_eq!(manager.rotate("admin").await.unwrap(), Rotation::Scheduled { at: ready }, "asking twice is fine");
    let listed = manager.infos();
    assert_eq!(listed.iter().find(|k| k.kid == next).unwrap().rotation_scheduled_at, Some(ready));

    // A restart keeps the schedule; the new manager performs it.
    let restarted =
        KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), None, trail.clone()).await.unwrap();
    assert_eq!(restarted.scheduled_rotation(), Some(ready));
    clock.advance(TIMING.jwks_max_age + 1);
    restarted.tick().await.unwrap();
    assert_eq!(restarted.handle().current().signer().kid(), next);

    // At once: the next key signs though it was published this second.
    let fresh_next = restarted.infos().into_iter().find(|k| k.state == KeyState::Next).unwrap().kid;
    restarted.rotate_now("admin").await.unwrap();
    assert_eq!(restarted.handle().current().signer().kid(), fresh_next);
    let jwks = restarted.handle().current().jwks().clone();
    assert!(jwks.find(&next).is_some() && jwks.find(&active).is_some(), "retiring keys stay published");

    // Revoke a retiring key, then the active one.
    restarted.revoke(&active).await.unwrap();
    assert!(restarted.handle().current().jwks().find(&active).is_none());
    let before = restarted.infos().into_iter().find(|k| k.state == KeyState::Next).unwrap().kid;
    restarted.revoke(&fresh_next).await.unwrap();
    let ring = restarted.handle().current();
    assert!(ring.jwks().find(&fresh_next).is_none(), "the revoked active key left the JWKS");
    assert_eq!(ring.signer().kid(), before, "the next key signs from now");
    assert_eq!(ring.jwks().keys.len(), 3, "new active, a new next key, and the retiring {next}");
    assert!(matches!(restarted.revoke(&active).await, Err(KeyError::Revoke(_))), "already retired");
    assert!(matches!(restarted.revoke("unknown").await, Err(KeyError::Revoke(_))));
    drop(ring);

    let events = kinds_and_details(&trail.page(None, 100).await.unwrap());
    let of = |kind: AuditKind| events.iter().filter(move |(k, _)| *k == kind).map(|(_, d)| d.as_str());
    let scheduled: Vec<&str> = of(AuditKind::KeyRotationScheduled).collect();
    assert_eq!(scheduled.len(), 1, "one schedule for two requests: {events:?}");
    assert!(scheduled[0].contains(&next) && scheduled[0].contains(&tessera_shared::utc::rfc3339(ready)));
    assert!(!scheduled[0].contains(&ready.to_string()), "no raw Unix seconds: {}", scheduled[0]);
    let rotated: Vec<&str> = of(AuditKind::KeyRotated).collect();
    assert_eq!(rotated.len(), 2, "{events:?}");
    assert!(rotated[0].contains("scheduled by an operator") && rotated[0].contains(&next));
    assert!(rotated[1].contains("at once") && rotated[1].contains(&fresh_next));
    let revoked: Vec<&str> = of(AuditKind::KeyRevoked).collect();
    assert_eq!(revoked.len(), 2, "{events:?}");
    assert!(revoked[0].contains(&active) && revoked[0].contains("retiring"));
    assert!(revoked[1].contains(&fresh_next) && revoked[1].contains("(active)") && revoked[1].contains(&before));
}

fn pem_with(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn pem(pkcs8: &[u8]) -> String {
    pem_with("PRIVATE KEY", pkcs8)
}

#[test]
fn pem_documents_are_read_leniently_but_completely() {
    use base64::Engine as _;
    let der = vec![7u8; 100];
    assert_eq!(parse_pem(&pem(&der)), Ok(("PRIVATE KEY".to_owned(), der.clone())));
    let one_line = format!(
        "comment\n-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    assert_eq!(parse_pem(&one_line), Ok(("PRIVATE KEY".to_owned(), der)));
    assert!(parse_pem("nothing").is_err());
    assert!(parse_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n").is_err(), "no END line");
    assert!(parse_pem("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----").is_err());
    assert!(parse_pem("-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END X-----").is_err());
}

#[tokio::test]
async fn imported_keys_of_each_algorithm_become_the_next_key_and_survive_restarts() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(10_000));
    let manager =
        KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), None, audit(&store, &clock))
            .await
            .unwrap();
    let rng = SystemRandom::new();
    for alg in [Algorithm::RS256, Algorithm::EdDSA, Algorithm::ES256] {
        let pkcs8 = generate_pkcs8(alg, &rng).unwrap();
        let kid = JwtSigner::from_pkcs8(alg, &pkcs8, rng.clone()).unwrap().kid().to_owned();
        let infos = manager.import(&pem(&pkcs8)).await.unwrap();
        let next = infos.iter().find(|k| k.state == KeyState::Next).unwrap();
        assert_eq!((next.kid.as_str(), next.alg.as_str(), next.imported), (kid.as_str(), alg.as_str(), true));
        assert!(manager.handle().current().jwks().find(&kid).is_some(), "published at once");
        assert!(matches!(manager.import(&pem(&pkcs8)).await, Err(KeyError::Import(_))), "a known key");
    }
    // A restart with another configured algorithm keeps an imported next key.
    let next_kid = manager.infos().into_iter().find(|k| k.state == KeyState::Next).unwrap().kid;
    drop(manager);
    let restarted =
        KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::EdDSA), None, audit(&store, &clock))
            .await
            .unwrap();
    clock.advance(TIMING.jwks_max_age + 1);
    restarted.rotate("test").await.unwrap();
    assert_eq!(restarted.handle().current().signer().kid(), next_kid, "the imported key signs");

    for bad in ["not pem".to_owned(), pem_with("RSA PRIVATE KEY", b"x"), pem(b"garbage")] {
        assert!(matches!(restarted.import(&bad).await, Err(KeyError::Import(_))), "{bad}");
    }
}

#[tokio::test]
async fn sealed_keys_need_the_right_kek_and_plain_keys_are_sealed_when_one_is_given() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(10_000));
    let kek = || Some(Kek::from_bytes(&[7; 32]).unwrap());
    // Plain first, then a KEK is given: every key gets sealed.
    let plain =
        KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), None, audit(&store, &clock))
            .await
            .unwrap();
    let kid = plain.handle().current().signer().kid().to_owned();
    drop(plain);
    let sealed =
        KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), kek(), audit(&store, &clock))
            .await
            .unwrap();
    assert_eq!(sealed.handle().current().signer().kid(), kid);
    for record in store.keys().await.unwrap() {
        assert!(record.private_pkcs8.is_empty() && record.sealed_pkcs8.is_some(), "{} sealed", record.kid);
    }
    // New keys are sealed as they are made.
    clock.advance(TIMING.jwks_max_age + 1);
    sealed.rotate("test").await.unwrap();
    assert!(store.keys().await.unwrap().iter().all(|k| k.private_pkcs8.is_empty()));
    drop(sealed);

    let again =
        KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), kek(), audit(&store, &clock))
            .await
            .unwrap();
    assert_ne!(again.handle().current().signer().kid(), kid, "the rotated key signs after restart");
    drop(again);
    let wrong = Some(Kek::from_bytes(&[8; 32]).unwrap());
    let err = KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), wrong, audit(&store, &clock))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    let err = KeyManager::start(store.clone(), clock.clone(), settings(Algorithm::ES256), None, audit(&store, &clock))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::MissingKek), "{err}");
    assert!(err.to_string().contains("TESSERA_KEY_ENCRYPTION_KEY"), "{err}");
}
