//! The storage conformance suite: every backend must pass the same tests.
//! A backend's test module instantiates them with
//! [`conformance_tests!`](crate::conformance_tests).

use std::sync::Arc;

use tessera_shared::admin::ClientStatus;

use super::records::{ClientRecord, FamilyRecord, NewRefreshToken, RefreshState};
use super::{RefreshTransition, RefreshUse, Store, StoreError};
use crate::grant::refresh::{Presentation, judge};

const NOW: u64 = 1_700_000_000;

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        name: "test".into(),
        secret_digest: [1; 32],
        secret_set_at: NOW,
        previous_secret: None,
        scopes: vec!["read".into()],
        refresh_tokens: true,
        status: ClientStatus::Active,
        created_at: NOW,
        secret_expires_at: None,
        access_token_ttl: None,
        audiences: Vec::new(),
    }
}

fn token(n: u8, issued_at: u64, ttl: u64) -> NewRefreshToken {
    NewRefreshToken { digest: [n; 32], issued_at, expires_at: issued_at + ttl }
}

fn family(id: u8, client_id: &str, first: &NewRefreshToken) -> FamilyRecord {
    FamilyRecord {
        family_id: [id; 16],
        client_id: client_id.into(),
        scope: vec!["read".into()],
        created_at: first.issued_at,
        revoked_at: None,
        current: first.digest,
        expires_at: first.expires_at,
    }
}

fn rotate_always(_: &super::records::RefreshRecord, _: &FamilyRecord) -> RefreshTransition {
    RefreshTransition::Rotate
}

/// The installation value is stored once and then kept, unless replaced.
pub async fn installation_value_is_set_once(store: Arc<dyn Store>) {
    let first = store.installation_value("k", vec![1, 2, 3]).await.unwrap();
    let second = store.installation_value("k", vec![9]).await.unwrap();
    assert_eq!(first, vec![1, 2, 3]);
    assert_eq!(second, vec![1, 2, 3]);
    store.replace_installation_value("k", vec![4, 5]).await.unwrap();
    assert_eq!(store.installation_value("k", vec![9]).await.unwrap(), vec![4, 5]);
}

/// Clients: insert, read, list, update, delete.
pub async fn client_lifecycle(store: Arc<dyn Store>) {
    store.insert_client(&client("b")).await.unwrap();
    store.insert_client(&client("a")).await.unwrap();
    assert!(matches!(store.insert_client(&client("a")).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(store.client("a").await.unwrap(), Some(client("a")));
    assert_eq!(store.client("zz").await.unwrap(), None);
    let ids: Vec<String> = store.clients().await.unwrap().into_iter().map(|c| c.client_id).collect();
    assert_eq!(ids, ["a", "b"]);

    let revoke = |c: &mut ClientRecord| c.status = ClientStatus::Revoked;
    let updated = store.update_client("a", &revoke).await.unwrap().unwrap();
    assert_eq!(updated.status, ClientStatus::Revoked);
    assert_eq!(store.client("a").await.unwrap().unwrap().status, ClientStatus::Revoked);
    assert_eq!(store.update_client("zz", &revoke).await.unwrap(), None);

    assert_eq!(store.delete_client("a", NOW).await.unwrap(), Some(0));
    assert_eq!(store.client("a").await.unwrap(), None);
    assert_eq!(store.delete_client("a", NOW).await.unwrap(), None);
}

/// A client's token policy (issue 16) is kept through insert, update and
/// listing, in order.
pub async fn client_token_policy_round_trips(store: Arc<dyn Store>) {
    let with_policy = ClientRecord {
        access_token_ttl: Some(60),
        audiences: vec!["https://b.test".into(), "https://a.test".into()],
        ..client("p")
    };
    store.insert_client(&with_policy).await.unwrap();
    assert_eq!(store.client("p").await.unwrap(), Some(with_policy.clone()));
    let revoke = |c: &mut ClientRecord| c.status = ClientStatus::Revoked;
    let updated = store.update_client("p", &revoke).await.unwrap().unwrap();
    assert_eq!((updated.access_token_ttl, &updated.audiences), (Some(60), &with_policy.audiences));
    let listed = store.clients().await.unwrap();
    assert_eq!(listed[0].audiences, ["https://b.test", "https://a.test"]);
}

/// Last-used times are kept per client.
pub async fn last_used_is_recorded(store: Arc<dyn Store>) {
    assert_eq!(store.client_last_used("a").await.unwrap(), None);
    store.record_client_use("a", NOW).await.unwrap();
    store.record_client_use("a", NOW + 5).await.unwrap();
    assert_eq!(store.client_last_used("a").await.unwrap(), Some(NOW + 5));
}

/// A rotation makes the successor current and the presented token rotated.
pub async fn rotation_moves_the_family_forward(store: Arc<dyn Store>) {
    let first = token(1, NOW, 100);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    let second = token(2, NOW + 10, 100);
    let outcome = store.use_refresh_token(&first.digest, &second, &rotate_always).await.unwrap();
    let RefreshUse::Applied { transition, token: before, family } = outcome else { panic!("the token exists") };
    assert_eq!(transition, RefreshTransition::Rotate);
    assert_eq!(before.state, RefreshState::Active);
    assert_eq!(family.current, second.digest);
    assert_eq!(family.expires_at, second.expires_at);

    // The presented token is now rotated, pointing at its successor.
    let third = token(3, NOW + 20, 100);
    let refuse = |t: &super::records::RefreshRecord, _: &FamilyRecord| {
        assert_eq!(t.state, RefreshState::Rotated { at: NOW + 10, successor: second.digest });
        RefreshTransition::Refuse
    };
    let outcome = store.use_refresh_token(&first.digest, &third, &refuse).await.unwrap();
    assert!(matches!(outcome, RefreshUse::Applied { transition: RefreshTransition::Refuse, .. }));
    // Refusing changed nothing: the successor still rotates.
    let outcome = store.use_refresh_token(&second.digest, &third, &rotate_always).await.unwrap();
    assert!(matches!(outcome, RefreshUse::Applied { transition: RefreshTransition::Rotate, .. }));
}

/// An unknown digest is reported as such.
pub async fn unknown_tokens_are_unknown(store: Arc<dyn Store>) {
    let outcome = store.use_refresh_token(&[42; 32], &token(2, NOW, 100), &rotate_always).await.unwrap();
    assert_eq!(outcome, RefreshUse::Unknown);
}

/// A family revocation is applied and seen by the next use.
pub async fn revoking_a_family_sticks(store: Arc<dyn Store>) {
    let first = token(1, NOW, 100);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    let revoke = |_: &super::records::RefreshRecord, _: &FamilyRecord| RefreshTransition::RevokeFamily;
    let outcome = store.use_refresh_token(&first.digest, &token(2, NOW + 1, 100), &revoke).await.unwrap();
    let RefreshUse::Applied { family, .. } = outcome else { panic!("the token exists") };
    assert_eq!(family.revoked_at, Some(NOW + 1));
    assert_eq!(store.count_live_families("a", NOW + 1).await.unwrap(), 0);
}

/// Presents `digest` under the real rotation rules at `now`, with a reuse
/// grace of [`GRACE`] seconds; returns what was applied.
async fn present(store: &dyn Store, digest: &[u8; 32], successor: &NewRefreshToken, now: u64) -> RefreshUse {
    let rules = |t: &super::records::RefreshRecord, f: &FamilyRecord| {
        judge(t, f, &Presentation { client_id: "a", now, reuse_grace: GRACE, requested_scope: None }).transition()
    };
    store.use_refresh_token(digest, successor, &rules).await.unwrap()
}

/// The reuse grace of the grace cases, in seconds.
const GRACE: u64 = 60;

fn applied(outcome: &RefreshUse) -> RefreshTransition {
    match outcome {
        RefreshUse::Applied { transition, .. } => *transition,
        RefreshUse::Unknown => panic!("the token exists"),
    }
}

/// A retry within the grace, while the successor is unused, rotates again:
/// the unused successor is superseded (presenting it later is reuse), and
/// the retried token keeps its first rotation time.
pub async fn a_retry_within_the_grace_supersedes_the_unused_successor(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    let lost = token(2, NOW + 10, 1000);
    assert_eq!(applied(&present(store.as_ref(), &first.digest, &lost, NOW + 10).await), RefreshTransition::Rotate);

    let retried = token(3, NOW + 20, 1000);
    let outcome = present(store.as_ref(), &first.digest, &retried, NOW + 20).await;
    let RefreshUse::Applied { transition, family, .. } = outcome else { panic!("the token exists") };
    assert_eq!(transition, RefreshTransition::Rotate);
    assert_eq!(family.current, retried.digest);
    assert_eq!(family.revoked_at, None);
    let (superseded, _) = store.refresh_token(&lost.digest).await.unwrap().unwrap();
    assert_eq!(superseded.state, RefreshState::Superseded { at: NOW + 20 });
    let (presented, _) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert_eq!(presented.state, RefreshState::Rotated { at: NOW + 10, successor: retried.digest });

    // The superseded successor was never handed out for sure: presenting it
    // is reuse, and the whole family dies.
    let outcome = present(store.as_ref(), &lost.digest, &token(4, NOW + 30, 1000), NOW + 30).await;
    assert_eq!(applied(&outcome), RefreshTransition::RevokeFamily);
    let (_, family) = store.refresh_token(&retried.digest).await.unwrap().unwrap();
    assert_eq!(family.revoked_at, Some(NOW + 30));
}

/// The grace runs from the first rotation: retrying again and again does
/// not stretch it, and past it the retry is reuse.
pub async fn a_retry_after_the_grace_is_reuse(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    present(store.as_ref(), &first.digest, &token(2, NOW + 10, 1000), NOW + 10).await;
    let last_second = NOW + 10 + GRACE - 1;
    let within = present(store.as_ref(), &first.digest, &token(3, last_second, 1000), last_second).await;
    assert_eq!(applied(&within), RefreshTransition::Rotate);
    let after = present(store.as_ref(), &first.digest, &token(4, last_second + 1, 1000), last_second + 1).await;
    assert_eq!(applied(&after), RefreshTransition::RevokeFamily);
    assert_eq!(store.count_live_families("a", NOW + 10 + GRACE).await.unwrap(), 0);
    // The unused successor of the last retry dies with its family.
    let dead = present(store.as_ref(), &[3; 32], &token(5, NOW + 100, 1000), NOW + 100).await;
    assert_eq!(applied(&dead), RefreshTransition::Refuse);
}

/// Within the grace but after the successor was used, a retry is reuse.
pub async fn a_retry_after_the_successor_was_used_is_reuse(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    present(store.as_ref(), &first.digest, &token(2, NOW + 10, 1000), NOW + 10).await;
    let used = present(store.as_ref(), &[2; 32], &token(3, NOW + 11, 1000), NOW + 11).await;
    assert_eq!(applied(&used), RefreshTransition::Rotate);
    let retry = present(store.as_ref(), &first.digest, &token(4, NOW + 12, 1000), NOW + 12).await;
    assert_eq!(applied(&retry), RefreshTransition::RevokeFamily);
    assert_eq!(store.count_live_families("a", NOW + 12).await.unwrap(), 0);
}

/// Of many concurrent uses of one token, exactly one rotates it; with the
/// real rules, the others are reuse and revoke the family.
pub async fn concurrent_rotation_has_one_winner(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..32u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let successor = token(100 + n, NOW + 1, 1000);
            let rules = |t: &super::records::RefreshRecord, f: &FamilyRecord| {
                judge(t, f, &Presentation { client_id: "a", now: NOW + 1, reuse_grace: 0, requested_scope: None })
                    .transition()
            };
            match store.use_refresh_token(&first.digest, &successor, &rules).await.unwrap() {
                RefreshUse::Applied { transition, .. } => transition,
                RefreshUse::Unknown => panic!("the token exists"),
            }
        }));
    }
    let mut rotations = 0;
    for task in tasks {
        if task.await.unwrap() == RefreshTransition::Rotate {
            rotations += 1;
        }
    }
    assert_eq!(rotations, 1);
    assert_eq!(store.count_live_families("a", NOW + 1).await.unwrap(), 0, "reuse revoked the family");
}

/// Revoking a client's families counts only live ones.
pub async fn client_families_are_revoked_together(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        let first = token(n, NOW, 100);
        store.create_family(&family(n, "a", &first), &first).await.unwrap();
    }
    let other = token(9, NOW, 100);
    store.create_family(&family(9, "b", &other), &other).await.unwrap();
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 3);
    assert_eq!(store.revoke_client_families("a", NOW).await.unwrap(), 3);
    assert_eq!(store.revoke_client_families("a", NOW).await.unwrap(), 0);
    assert_eq!(store.count_live_families("b", NOW).await.unwrap(), 1);
}

/// Deleting a client revokes its families.
pub async fn deleting_a_client_revokes_its_families(store: Arc<dyn Store>) {
    store.insert_client(&client("a")).await.unwrap();
    let first = token(1, NOW, 100);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    assert_eq!(store.delete_client("a", NOW).await.unwrap(), Some(1));
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 0);
}

/// The purge removes expired tokens in bounded batches, and families with
/// their current token, and nothing live.
pub async fn purge_removes_only_what_expired(store: Arc<dyn Store>) {
    // Family 1: rotated once; both tokens expire by NOW + 200.
    let first = token(1, NOW, 100);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    let second = token(2, NOW + 50, 150);
    store.use_refresh_token(&first.digest, &second, &rotate_always).await.unwrap();
    // Family 2: lives until NOW + 1000.
    let live = token(3, NOW, 1000);
    store.create_family(&family(2, "a", &live), &live).await.unwrap();

    let report = store.purge_expired(NOW + 100, 10).await.unwrap();
    assert_eq!((report.tokens, report.families), (1, 0), "only the first token expired");
    let report = store.purge_expired(NOW + 200, 1).await.unwrap();
    assert_eq!((report.tokens, report.families), (1, 1), "the batch bound holds; the family goes with its token");
    let report = store.purge_expired(NOW + 200, 10).await.unwrap();
    assert_eq!((report.tokens, report.families), (0, 0));
    assert_eq!(store.count_live_families("a", NOW + 200).await.unwrap(), 1);
    assert_eq!(
        store.use_refresh_token(&second.digest, &token(4, NOW + 200, 10), &rotate_always).await.unwrap(),
        RefreshUse::Unknown
    );
}

/// A next key with public part `seed`, for the key tests.
pub fn sample_key(seed: u8) -> super::records::KeyRecord {
    use super::records::KeyRecord;
    use tessera_shared::admin::KeyState;
    use tessera_shared::jwk::{Algorithm, Jwk};
    let jwk = Jwk::ed25519(&[seed; 32]).unwrap();
    KeyRecord {
        kid: jwk.kid.clone().unwrap(),
        alg: Algorithm::EdDSA,
        state: KeyState::Next,
        created_at: NOW,
        private_pkcs8: vec![1, 2, 3],
        public_jwk: jwk,
        sealed_pkcs8: None,
        imported: false,
        activated_at: None,
        deactivated_at: None,
        published_until: None,
        retired_at: None,
    }
}

/// Keys are stored and replaced by kid.
pub async fn keys_round_trip(store: Arc<dyn Store>) {
    use tessera_shared::admin::KeyState;
    let key = sample_key(3);
    store.put_keys(std::slice::from_ref(&key)).await.unwrap();
    let active = super::records::KeyRecord { state: KeyState::Active, activated_at: Some(NOW + 1), ..key.clone() };
    store.put_keys(std::slice::from_ref(&active)).await.unwrap();
    assert_eq!(store.keys().await.unwrap(), vec![active]);
}

/// A key-set change is stored only over the expected set, whatever its
/// order: the loser of two changes made from the same state is refused.
pub async fn keys_change_by_compare_and_swap(store: Arc<dyn Store>) {
    use tessera_shared::admin::KeyState;
    let (a, b, c) = (sample_key(1), sample_key(2), sample_key(3));
    assert!(store.replace_keys(&[], &[a.clone(), b.clone()]).await.unwrap());
    assert!(!store.replace_keys(&[], std::slice::from_ref(&c)).await.unwrap(), "the store is no longer empty");
    assert!(!store.replace_keys(std::slice::from_ref(&a), std::slice::from_ref(&c)).await.unwrap(), "b is missing");
    let a_active = super::records::KeyRecord { state: KeyState::Active, activated_at: Some(NOW), ..a.clone() };
    assert!(store.replace_keys(&[b.clone(), a.clone()], &[a_active.clone(), c.clone()]).await.unwrap());
    // A second change from the old state loses, and changes nothing.
    assert!(!store.replace_keys(&[a.clone(), b.clone()], std::slice::from_ref(&c)).await.unwrap());
    let mut stored = store.keys().await.unwrap();
    stored.sort_by(|x, y| x.kid.cmp(&y.kid));
    let mut expected = vec![a_active, b, c];
    expected.sort_by(|x, y| x.kid.cmp(&y.kid));
    assert_eq!(stored, expected);
}

fn audit_event(at: u64, detail: &str) -> tessera_shared::admin::AuditEvent {
    tessera_shared::admin::AuditEvent {
        seq: 999,
        at,
        kind: tessera_shared::admin::AuditKind::ClientCreated,
        client_id: Some("a".into()),
        detail: detail.into(),
    }
}

/// Audit appends get increasing sequence numbers; reads page by cursor.
pub async fn audit_trail_pages_by_sequence(store: Arc<dyn Store>) {
    assert!(store.audit_latest(10).await.unwrap().is_empty());
    assert!(store.audit_after(0, 10).await.unwrap().is_empty());
    let mut seqs = Vec::new();
    for n in 0..5u64 {
        let stored = store.append_audit(&audit_event(NOW + n, &format!("e{n}"))).await.unwrap();
        assert_eq!(stored.detail, format!("e{n}"));
        seqs.push(stored.seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {seqs:?}");
    let details = |events: Vec<tessera_shared::admin::AuditEvent>| -> Vec<String> {
        events.into_iter().map(|e| e.detail).collect()
    };
    assert_eq!(details(store.audit_after(0, 2).await.unwrap()), ["e0", "e1"]);
    assert_eq!(details(store.audit_after(seqs[1], 100).await.unwrap()), ["e2", "e3", "e4"]);
    assert!(store.audit_after(seqs[4], 100).await.unwrap().is_empty());
    assert_eq!(details(store.audit_latest(2).await.unwrap()), ["e3", "e4"]);
    assert_eq!(store.audit_latest(100).await.unwrap().len(), 5);
}

/// The audit purge keeps the newest events by count and by age, and
/// numbering continues after it.
pub async fn audit_purge_is_bounded_and_keeps_numbering(store: Arc<dyn Store>) {
    for n in 0..10u64 {
        store.append_audit(&audit_event(NOW + n, &format!("e{n}"))).await.unwrap();
    }
    // By count: keep 6, in batches of 3.
    assert_eq!(store.purge_audit(6, 0, 3).await.unwrap(), 3);
    assert_eq!(store.purge_audit(6, 0, 3).await.unwrap(), 1);
    assert_eq!(store.purge_audit(6, 0, 3).await.unwrap(), 0);
    assert_eq!(store.audit_latest(100).await.unwrap().first().unwrap().detail, "e4");
    // By age: everything before NOW + 8 goes.
    assert_eq!(store.purge_audit(100, NOW + 8, 100).await.unwrap(), 4);
    let left: Vec<String> = store.audit_latest(100).await.unwrap().into_iter().map(|e| e.detail).collect();
    assert_eq!(left, ["e8", "e9"]);
    // The newest event always stays, so numbering never restarts.
    let last = store.audit_latest(1).await.unwrap()[0].seq;
    assert_eq!(store.purge_audit(0, NOW + 1000, 100).await.unwrap(), 1);
    assert_eq!(store.audit_latest(100).await.unwrap().len(), 1);
    let next = store.append_audit(&audit_event(NOW + 20, "later")).await.unwrap();
    assert!(next.seq > last);

    // Two budgets: security events never push out operators' actions.
    for n in 0..5u64 {
        store.append_audit(&audit_event(NOW + 30 + n, &format!("op{n}"))).await.unwrap();
    }
    for n in 0..20u64 {
        let mut event = audit_event(NOW + 40 + n, &format!("sec{n}"));
        event.kind = tessera_shared::admin::AuditKind::AuthFailureBurst;
        store.append_audit(&event).await.unwrap();
    }
    assert_eq!(store.purge_audit(5, 0, 100).await.unwrap(), 17, "e9, \"later\" and the 15 oldest security events");
    let left: Vec<String> = store.audit_latest(100).await.unwrap().into_iter().map(|e| e.detail).collect();
    assert_eq!(left, ["op0", "op1", "op2", "op3", "op4", "sec15", "sec16", "sec17", "sec18", "sec19"]);
}

/// The deny list holds a `jti` until its expiry, keeps the later of two
/// expiries, and the purge removes only what expired, in bounded batches.
pub async fn deny_list_lifecycle(store: Arc<dyn Store>) {
    assert!(!store.is_access_token_denied("j1", NOW).await.unwrap());
    store.deny_access_token("j1", NOW + 100).await.unwrap();
    store.deny_access_token("j2", NOW + 10).await.unwrap();
    store.deny_access_token("j3", NOW + 20).await.unwrap();
    assert!(store.is_access_token_denied("j1", NOW).await.unwrap());
    assert!(store.is_access_token_denied("j1", NOW + 99).await.unwrap());
    assert!(!store.is_access_token_denied("j1", NOW + 100).await.unwrap(), "past its expiry it no longer matters");
    assert!(!store.is_access_token_denied("other", NOW).await.unwrap());
    // A second denial with an earlier expiry does not shorten the first.
    store.deny_access_token("j1", NOW + 5).await.unwrap();
    assert!(store.is_access_token_denied("j1", NOW + 50).await.unwrap());

    assert_eq!(store.purge_denied(NOW + 30, 1).await.unwrap(), 1, "the batch bound holds");
    assert_eq!(store.purge_denied(NOW + 30, 10).await.unwrap(), 1);
    assert_eq!(store.purge_denied(NOW + 30, 10).await.unwrap(), 0);
    assert!(store.is_access_token_denied("j1", NOW + 30).await.unwrap(), "j1 is not purged early");
    assert_eq!(store.purge_denied(NOW + 101, 10).await.unwrap(), 1);
    assert!(!store.is_access_token_denied("j1", NOW).await.unwrap(), "purged for good");
}

/// A refresh token and its family can be read by digest without changing them.
pub async fn refresh_tokens_are_looked_up_by_digest(store: Arc<dyn Store>) {
    let first = token(1, NOW, 100);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    let (record, fam) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert_eq!(record.state, RefreshState::Active);
    assert_eq!(record.client_id, "a");
    assert_eq!(fam, family(1, "a", &first));
    assert_eq!(store.refresh_token(&[42; 32]).await.unwrap(), None);
    // Reading changed nothing: the token still rotates.
    let outcome = store.use_refresh_token(&first.digest, &token(2, NOW + 1, 100), &rotate_always).await.unwrap();
    assert!(matches!(outcome, RefreshUse::Applied { transition: RefreshTransition::Rotate, .. }));
    let (record, fam) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert!(matches!(record.state, RefreshState::Rotated { .. }));
    assert_eq!(fam.current, [2; 32]);
}

/// Revoking by any token of a family revokes the whole family, once.
pub async fn revoking_by_token_revokes_the_family(store: Arc<dyn Store>) {
    let first = token(1, NOW, 100);
    store.create_family(&family(1, "a", &first), &first).await.unwrap();
    let other = token(9, NOW, 100);
    store.create_family(&family(9, "a", &other), &other).await.unwrap();
    store.use_refresh_token(&first.digest, &token(2, NOW + 1, 100), &rotate_always).await.unwrap();
    // The rotated token names the family as well as the current one.
    assert!(store.revoke_family_of_token(&first.digest, NOW + 2).await.unwrap());
    assert!(!store.revoke_family_of_token(&[2; 32], NOW + 2).await.unwrap(), "already revoked");
    assert!(!store.revoke_family_of_token(&[42; 32], NOW + 2).await.unwrap(), "unknown");
    let (_, fam) = store.refresh_token(&[2; 32]).await.unwrap().unwrap();
    assert_eq!(fam.revoked_at, Some(NOW + 2));
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 1, "the other family lives");
}

/// Instantiates the suite for a backend: `$make` is an expression giving
/// an `Arc<dyn Store>` that is empty.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            installation_value_is_set_once, client_lifecycle, client_token_policy_round_trips, last_used_is_recorded,
            rotation_moves_the_family_forward, unknown_tokens_are_unknown, revoking_a_family_sticks,
            client_families_are_revoked_together, deleting_a_client_revokes_its_families,
            purge_removes_only_what_expired, keys_round_trip, keys_change_by_compare_and_swap,
            audit_trail_pages_by_sequence, audit_purge_is_bounded_and_keeps_numbering,
            deny_list_lifecycle, refresh_tokens_are_looked_up_by_digest, revoking_by_token_revokes_the_family,
            a_retry_within_the_grace_supersedes_the_unused_successor, a_retry_after_the_grace_is_reuse,
            a_retry_after_the_successor_was_used_is_reuse);

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_rotation_has_one_winner() {
            $crate::store::conformance::concurrent_rotation_has_one_winner($make).await;
        }
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::store::conformance::$name($make).await;
            }
        )*
    };
}

/// Every `pub async fn` of this suite must be instantiated by the macro
/// above; a test added here but not listed there would never run.
#[cfg(test)]
mod completeness {
    #[test]
    fn the_macro_lists_every_test_of_the_suite() {
        let source = include_str!("conformance.rs");
        let (suite, instantiation) = source.split_once("macro_rules! conformance_tests").unwrap();
        let defined: std::collections::BTreeSet<&str> = suite
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        let listed: std::collections::BTreeSet<&str> = instantiation
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|word| defined.contains(word))
            .collect();
        assert!(defined.len() >= 20, "the suite was not found: {defined:?}");
        let missing: Vec<_> = defined.difference(&listed).collect();
        assert!(missing.is_empty(), "conformance tests never instantiated by conformance_tests!: {missing:?}");
    }
}
