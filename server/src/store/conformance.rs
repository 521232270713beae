//! The storage conformance suite: every backend must pass the same tests.
//! A backend's test module instantiates them with
//! [`conformance_tests!`](crate::conformance_tests).

use std::sync::Arc;

use tessera_shared::admin::ClientStatus;

use super::records::{ClientRecord, Digest32, FamilyRecord, NewRefreshToken, RefreshState};
use super::{FamilyStart, JtiClaim, RefreshUse, Store, StoreError};
use crate::grant::refresh::{Presentation, Refusal, Verdict};

const NOW: u64 = 1_700_000_000;

/// An active client with this ID.
pub fn client(id: &str) -> ClientRecord {
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
        require_dpop: false,
        public_keys: Vec::new(),
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

/// Starts `family` with its first token, storing its client first if needed.
async fn start(store: &dyn Store, family: &FamilyRecord, first: &NewRefreshToken) {
    match store.insert_client(&client(&family.client_id)).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(e) => panic!("cannot store the client: {e}"),
    }
    assert_eq!(store.create_family(family, first, 1000).await.unwrap(), FamilyStart::Started { retired: 0 });
}

/// A refresh request by client `a` at `now`, without reuse grace.
fn by_a(now: u64) -> Presentation<'static> {
    Presentation { client_id: "a", now, reuse_grace: 0, requested_scope: None }
}

/// Presents `presented` with the real rules; the verdict and the family
/// after it, or `None` for an unknown token.
async fn present(
    store: &dyn Store,
    presented: &Digest32,
    successor: &NewRefreshToken,
    request: &Presentation<'_>,
) -> Option<(Verdict, FamilyRecord)> {
    match store.use_refresh_token(presented, successor, request).await.unwrap() {
        RefreshUse::Decided { verdict, family } => Some((verdict, family)),
        RefreshUse::Unknown => None,
    }
}

/// The verdict on presenting `presented` as client `a` at `successor.issued_at`.
async fn verdict(store: &dyn Store, presented: &Digest32, successor: &NewRefreshToken) -> Verdict {
    present(store, presented, successor, &by_a(successor.issued_at)).await.expect("the token is known").0
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
        require_dpop: true,
        ..client("p")
    };
    store.insert_client(&with_policy).await.unwrap();
    assert_eq!(store.client("p").await.unwrap(), Some(with_policy.clone()));
    let revoke = |c: &mut ClientRecord| c.status = ClientStatus::Revoked;
    let updated = store.update_client("p", &revoke).await.unwrap().unwrap();
    assert_eq!((updated.access_token_ttl, &updated.audiences), (Some(60), &with_policy.audiences));
    assert!(updated.require_dpop, "--require-dpop is kept");
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
    start(&*store, &family(1, "a", &first), &first).await;
    let second = token(2, NOW + 10, 100);
    let (verdict, after) = present(&*store, &first.digest, &second, &by_a(NOW + 10)).await.unwrap();
    assert_eq!(verdict, Verdict::Rotate);
    assert_eq!((after.current, after.expires_at), (second.digest, second.expires_at));
    let (used, _) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert_eq!(used.state, RefreshState::Rotated { at: NOW + 10, successor: second.digest });

    // A refusal changes nothing: the successor still rotates.
    let third = token(3, NOW + 20, 100);
    let other = Presentation { client_id: "b", ..by_a(NOW + 20) };
    let (verdict, _) = present(&*store, &second.digest, &third, &other).await.unwrap();
    assert_eq!(verdict, Verdict::Refuse(Refusal::OtherClient));
    assert_eq!(store.refresh_token(&third.digest).await.unwrap(), None, "no successor was stored");
    assert_eq!(self::verdict(&*store, &second.digest, &third).await, Verdict::Rotate);
}

/// An unknown digest is reported as such.
pub async fn unknown_tokens_are_unknown(store: Arc<dyn Store>) {
    assert_eq!(present(&*store, &[42; 32], &token(2, NOW, 100), &by_a(NOW)).await, None);
}

/// Reuse revokes the family, and the revocation sticks.
pub async fn revoking_a_family_sticks(store: Arc<dyn Store>) {
    let first = token(1, NOW, 100);
    start(&*store, &family(1, "a", &first), &first).await;
    let second = token(2, NOW + 1, 100);
    assert_eq!(verdict(&*store, &first.digest, &second).await, Verdict::Rotate);
    let (verdict, after) = present(&*store, &first.digest, &token(3, NOW + 2, 100), &by_a(NOW + 2)).await.unwrap();
    assert_eq!(verdict, Verdict::RevokeFamily);
    assert_eq!(after.revoked_at, Some(NOW + 2));
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 0);
    assert_eq!(
        self::verdict(&*store, &second.digest, &token(4, NOW + 3, 100)).await,
        Verdict::Refuse(Refusal::FamilyRevoked),
        "the current token died with its family"
    );
}

/// Every generation older than the current one is reuse, however far back.
pub async fn every_older_generation_is_reuse(store: Arc<dyn Store>) {
    for back in 1..=4u8 {
        // A family of its own per case, rotated `back` times past token `first`.
        let id = back * 10;
        let first = token(id, NOW, 1000);
        start(&*store, &family(id, "a", &first), &first).await;
        let mut current = first;
        for step in 1..=back {
            let next = token(id + step, NOW + u64::from(step), 1000);
            assert_eq!(verdict(&*store, &current.digest, &next).await, Verdict::Rotate);
            current = next;
        }
        let (verdict, after) =
            present(&*store, &first.digest, &token(id + 9, NOW + 20, 1000), &by_a(NOW + 20)).await.unwrap();
        assert_eq!(verdict, Verdict::RevokeFamily, "{back} generations back");
        assert_eq!(after.revoked_at, Some(NOW + 20));
        assert_eq!(
            self::verdict(&*store, &current.digest, &token(id + 8, NOW + 21, 1000)).await,
            Verdict::Refuse(Refusal::FamilyRevoked),
            "{back} generations back: the current token died with its family"
        );
    }
    assert_eq!(store.count_live_families("a", NOW + 30).await.unwrap(), 0);
}

/// Within the reuse grace a retry of the predecessor rotates again while
/// its successor is unused; that successor is then superseded, and
/// presenting it (or the predecessor after the grace) is reuse.
pub async fn grace_retry_supersedes_the_unused_successor(store: Arc<dyn Store>) {
    let graced = |now| Presentation { reuse_grace: 10, ..by_a(now) };
    let first = token(1, NOW, 1000);
    start(&*store, &family(1, "a", &first), &first).await;
    let lost = token(2, NOW + 1, 1000);
    assert_eq!(present(&*store, &first.digest, &lost, &graced(NOW + 1)).await.unwrap().0, Verdict::Rotate);
    let retried = token(3, NOW + 5, 1000);
    let (verdict, after) = present(&*store, &first.digest, &retried, &graced(NOW + 5)).await.unwrap();
    assert_eq!(verdict, Verdict::Rotate, "a retry within the grace");
    assert_eq!(after.current, retried.digest);
    let (used, _) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert_eq!(used.state, RefreshState::Rotated { at: NOW + 1, successor: retried.digest }, "the first time kept");
    // The superseded successor is reuse.
    let (verdict, after) = present(&*store, &lost.digest, &token(4, NOW + 6, 1000), &graced(NOW + 6)).await.unwrap();
    assert_eq!(verdict, Verdict::RevokeFamily);
    assert_eq!(after.revoked_at, Some(NOW + 6));

    // Another family: the predecessor after the grace is reuse.
    let first = token(11, NOW, 1000);
    start(&*store, &family(11, "a", &first), &first).await;
    let next = token(12, NOW + 1, 1000);
    assert_eq!(present(&*store, &first.digest, &next, &graced(NOW + 1)).await.unwrap().0, Verdict::Rotate);
    let late = token(13, NOW + 11, 1000);
    assert_eq!(present(&*store, &first.digest, &late, &graced(NOW + 11)).await.unwrap().0, Verdict::RevokeFamily);
    assert_eq!(store.count_live_families("a", NOW + 11).await.unwrap(), 0);
}

/// The reuse grace of the grace cases, in seconds.
const GRACE: u64 = 60;

/// Presents `digest` as client `a` at `successor.issued_at` with a reuse
/// grace of [`GRACE`] seconds; the verdict and the family after it.
async fn present_graced(store: &dyn Store, digest: &Digest32, successor: &NewRefreshToken) -> (Verdict, FamilyRecord) {
    let request = Presentation { reuse_grace: GRACE, ..by_a(successor.issued_at) };
    present(store, digest, successor, &request).await.expect("the token exists")
}

/// A retry within the grace, while the successor is unused, rotates again:
/// the unused successor is superseded (presenting it later is reuse), and
/// the retried token keeps its first rotation time.
pub async fn a_retry_within_the_grace_supersedes_the_unused_successor(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    start(&*store, &family(1, "a", &first), &first).await;
    let lost = token(2, NOW + 10, 1000);
    assert_eq!(present_graced(&*store, &first.digest, &lost).await.0, Verdict::Rotate);

    let retried = token(3, NOW + 20, 1000);
    let (verdict, family) = present_graced(&*store, &first.digest, &retried).await;
    assert_eq!(verdict, Verdict::Rotate);
    assert_eq!(family.current, retried.digest);
    assert_eq!(family.revoked_at, None);
    // Superseded: never used, and no longer its family's current token.
    let (superseded, _) = store.refresh_token(&lost.digest).await.unwrap().unwrap();
    assert_eq!(superseded.state, RefreshState::Active);
    let (presented, _) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert_eq!(presented.state, RefreshState::Rotated { at: NOW + 10, successor: retried.digest });

    // The superseded successor was never handed out for sure: presenting it
    // is reuse, and the whole family dies.
    let (verdict, _) = present_graced(&*store, &lost.digest, &token(4, NOW + 30, 1000)).await;
    assert_eq!(verdict, Verdict::RevokeFamily);
    let (_, family) = store.refresh_token(&retried.digest).await.unwrap().unwrap();
    assert_eq!(family.revoked_at, Some(NOW + 30));
}

/// The grace runs from the first rotation: retrying again and again does
/// not stretch it, and past it the retry is reuse.
pub async fn a_retry_after_the_grace_is_reuse(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    start(&*store, &family(1, "a", &first), &first).await;
    present_graced(&*store, &first.digest, &token(2, NOW + 10, 1000)).await;
    let last_second = NOW + 10 + GRACE - 1;
    let within = present_graced(&*store, &first.digest, &token(3, last_second, 1000)).await;
    assert_eq!(within.0, Verdict::Rotate);
    let after = present_graced(&*store, &first.digest, &token(4, last_second + 1, 1000)).await;
    assert_eq!(after.0, Verdict::RevokeFamily);
    assert_eq!(store.count_live_families("a", NOW + 10 + GRACE).await.unwrap(), 0);
    // The unused successor of the last retry dies with its family.
    let dead = present_graced(&*store, &[3; 32], &token(5, NOW + 100, 1000)).await;
    assert_eq!(dead.0, Verdict::Refuse(Refusal::FamilyRevoked));
}

/// Within the grace but after the successor was used, a retry is reuse.
pub async fn a_retry_after_the_successor_was_used_is_reuse(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    start(&*store, &family(1, "a", &first), &first).await;
    present_graced(&*store, &first.digest, &token(2, NOW + 10, 1000)).await;
    let used = present_graced(&*store, &[2; 32], &token(3, NOW + 11, 1000)).await;
    assert_eq!(used.0, Verdict::Rotate);
    let retry = present_graced(&*store, &first.digest, &token(4, NOW + 12, 1000)).await;
    assert_eq!(retry.0, Verdict::RevokeFamily);
    assert_eq!(store.count_live_families("a", NOW + 12).await.unwrap(), 0);
}

/// Of 32 concurrent uses of one token, exactly one rotates it; with the
/// real rules the others are reuse and revoke the family.
pub async fn concurrent_rotation_has_one_winner(store: Arc<dyn Store>) {
    let first = token(1, NOW, 1000);
    start(&*store, &family(1, "a", &first), &first).await;
    let mut tasks = Vec::new();
    for n in 0..32u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let successor = token(100 + n, NOW + 1, 1000);
            verdict(&*store, &first.digest, &successor).await
        }));
    }
    let mut rotations = 0;
    for task in tasks {
        match task.await.unwrap() {
            Verdict::Rotate => rotations += 1,
            Verdict::RevokeFamily | Verdict::Refuse(Refusal::FamilyRevoked) => {}
            other => panic!("unexpected verdict {other:?}"),
        }
    }
    assert_eq!(rotations, 1);
    assert_eq!(store.count_live_families("a", NOW + 1).await.unwrap(), 0, "reuse revoked the family");
}

/// A family starts only for a stored, active client; otherwise nothing
/// is stored.
pub async fn families_start_only_for_active_clients(store: Arc<dyn Store>) {
    let first = token(1, NOW, 100);
    let started = store.create_family(&family(1, "a", &first), &first, 1000).await.unwrap();
    assert_eq!(started, FamilyStart::ClientNotActive, "no such client");
    store.insert_client(&ClientRecord { status: ClientStatus::Revoked, ..client("a") }).await.unwrap();
    let started = store.create_family(&family(1, "a", &first), &first, 1000).await.unwrap();
    assert_eq!(started, FamilyStart::ClientNotActive, "a revoked client");
    assert_eq!(store.refresh_token(&first.digest).await.unwrap(), None, "nothing was stored");
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 0);
}

/// At the cap, starting a family removes the client's oldest one: a live
/// one is retired (its tokens stop working), a dead one just goes.
pub async fn the_family_cap_retires_the_oldest(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        start(&*store, &family(n, "a", &token(n, NOW, 100)), &token(n, NOW, 100)).await;
    }
    let other = token(9, NOW, 100);
    start(&*store, &family(9, "b", &other), &other).await;
    let fourth = token(4, NOW, 100);
    let started = store.create_family(&family(4, "a", &fourth), &fourth, 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 1 });
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 3);
    assert_eq!(present(&*store, &[1; 32], &token(20, NOW + 1, 100), &by_a(NOW + 1)).await, None, "retired");
    assert_eq!(verdict(&*store, &[2; 32], &token(21, NOW + 1, 100)).await, Verdict::Rotate, "the next oldest lives");

    // The oldest is now family 2; revoked, it goes without retiring a live one.
    assert!(store.revoke_family_of_token(&[21; 32], NOW + 2).await.unwrap());
    let fifth = token(5, NOW + 2, 100);
    let started = store.create_family(&family(5, "a", &fifth), &fifth, 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 0 });
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 3);
    for live in [3u8, 4, 5] {
        assert_eq!(
            verdict(&*store, &[live; 32], &token(30 + live, NOW + 3, 100)).await,
            Verdict::Rotate,
            "family {live}"
        );
    }
    assert_eq!(store.count_live_families("b", NOW + 3).await.unwrap(), 1, "another client's families are not counted");
}

/// Purged families give their places under the cap back: the next starts
/// retire no live family.
pub async fn purged_families_leave_room_under_the_cap(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        start(&*store, &family(n, "a", &token(n, NOW, 10)), &token(n, NOW, 10)).await;
    }
    // Counted at the cap once, so a store that keeps a count has one.
    let at_cap = token(4, NOW, 10);
    let started = store.create_family(&family(4, "a", &at_cap), &at_cap, 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 1 });
    assert_eq!(store.purge_expired(NOW + 20, 100).await.unwrap().families, 3);
    for n in 5..=7u8 {
        let first = token(n, NOW + 20, 100);
        let started = store.create_family(&family(n, "a", &first), &first, 3).await.unwrap();
        assert_eq!(started, FamilyStart::Started { retired: 0 }, "family {n}");
    }
    assert_eq!(store.count_live_families("a", NOW + 20).await.unwrap(), 3);
}

/// Revoking a client while 16 tasks start families for it, then
/// re-activating it: no family started before the revocation works, and
/// each start either failed or was revoked.
pub async fn no_family_survives_a_racing_client_revocation(store: Arc<dyn Store>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    store.insert_client(&client("a")).await.unwrap();
    let started_count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for task in 0..16u8 {
        let (store, started_count, enough) = (store.clone(), started_count.clone(), enough.clone());
        tasks.push(tokio::spawn(async move {
            let mut started = Vec::new();
            // Bounded: each task stops at its first refusal, or after 500 starts.
            for i in 0..500u16 {
                let mut digest = [0u8; 32];
                digest[0] = task;
                digest[1..3].copy_from_slice(&i.to_be_bytes());
                digest[3] = 0xee;
                let first = NewRefreshToken { digest, issued_at: NOW, expires_at: NOW + 1000 };
                let mut family = family(0, "a", &first);
                family.family_id[..3].copy_from_slice(&digest[..3]);
                match store.create_family(&family, &first, 100_000).await.unwrap() {
                    FamilyStart::Started { .. } => {
                        started.push(digest);
                        if started_count.fetch_add(1, Ordering::SeqCst) + 1 == 16 {
                            enough.notify_one();
                        }
                    }
                    FamilyStart::ClientNotActive => return (started, Some(digest)),
                }
            }
            (started, None)
        }));
    }
    enough.notified().await;
    let revoke = |c: &mut ClientRecord| c.status = ClientStatus::Revoked;
    store.update_client("a", &revoke).await.unwrap().unwrap();
    store.revoke_client_families("a", NOW + 1).await.unwrap();
    let mut all_started = Vec::new();
    let mut refused = Vec::new();
    for task in tasks {
        let (started, refusal) = task.await.unwrap();
        all_started.extend(started);
        refused.push(refusal.expect("every task met the revocation within its bound"));
    }
    let reactivate = |c: &mut ClientRecord| c.status = ClientStatus::Active;
    store.update_client("a", &reactivate).await.unwrap().unwrap();
    assert!(all_started.len() >= 16);
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 0, "no family lives on");
    for (n, digest) in all_started.iter().enumerate() {
        let successor = NewRefreshToken { digest: [0xab; 32], issued_at: NOW + 2, expires_at: NOW + 100 };
        let (verdict, _) =
            present(&*store, digest, &successor, &by_a(NOW + 2)).await.expect("a started family is known");
        assert_eq!(verdict, Verdict::Refuse(Refusal::FamilyRevoked), "family #{n} of {}", all_started.len());
    }
    for digest in refused {
        assert_eq!(store.refresh_token(&digest).await.unwrap(), None, "a refused start stored nothing");
    }
    // The re-activated client starts families that work.
    let fresh = token(0xfe, NOW + 3, 100);
    start(&*store, &family(0xfe, "a", &fresh), &fresh).await;
    assert_eq!(verdict(&*store, &fresh.digest, &token(0xfd, NOW + 4, 100)).await, Verdict::Rotate);
}

/// Revoking a client's families counts only live ones.
pub async fn client_families_are_revoked_together(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        let first = token(n, NOW, 100);
        start(&*store, &family(n, "a", &first), &first).await;
    }
    let other = token(9, NOW, 100);
    start(&*store, &family(9, "b", &other), &other).await;
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 3);
    assert_eq!(store.revoke_client_families("a", NOW).await.unwrap(), 3);
    assert_eq!(store.revoke_client_families("a", NOW).await.unwrap(), 0);
    assert_eq!(store.count_live_families("b", NOW).await.unwrap(), 1);
}

/// Deleting a client revokes its families.
pub async fn deleting_a_client_revokes_its_families(store: Arc<dyn Store>) {
    store.insert_client(&client("a")).await.unwrap();
    let first = token(1, NOW, 100);
    start(&*store, &family(1, "a", &first), &first).await;
    assert_eq!(store.delete_client("a", NOW).await.unwrap(), Some(1));
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 0);
}

/// The purge removes expired tokens in bounded batches, and families with
/// their current token, and nothing live.
pub async fn purge_removes_only_what_expired(store: Arc<dyn Store>) {
    // Family 1: rotated once; both tokens expire by NOW + 200.
    let first = token(1, NOW, 100);
    start(&*store, &family(1, "a", &first), &first).await;
    let second = token(2, NOW + 50, 150);
    assert_eq!(verdict(&*store, &first.digest, &second).await, Verdict::Rotate);
    // Family 2: lives until NOW + 1000.
    let live = token(3, NOW, 1000);
    start(&*store, &family(2, "a", &live), &live).await;

    let report = store.purge_expired(NOW + 100, 10).await.unwrap();
    assert_eq!((report.tokens, report.families), (1, 0), "only the first token expired");
    let report = store.purge_expired(NOW + 200, 1).await.unwrap();
    assert_eq!((report.tokens, report.families), (1, 1), "the batch bound holds; the family goes with its token");
    let report = store.purge_expired(NOW + 200, 10).await.unwrap();
    assert_eq!((report.tokens, report.families), (0, 0));
    assert_eq!(store.count_live_families("a", NOW + 200).await.unwrap(), 1);
    assert_eq!(present(&*store, &second.digest, &token(4, NOW + 200, 10), &by_a(NOW + 200)).await, None);
}

/// A revoked family goes at the next purge, with its current token (by
/// reuse, by a token's revocation, or with all of its client's); its
/// rotated tokens go at their own expiry; a live family stays.
pub async fn dead_families_are_purged(store: Arc<dyn Store>) {
    let (t1, t2) = (token(1, NOW, 100), token(2, NOW + 1, 1000));
    start(&*store, &family(1, "a", &t1), &t1).await;
    assert_eq!(verdict(&*store, &t1.digest, &t2).await, Verdict::Rotate);
    assert_eq!(verdict(&*store, &t1.digest, &token(9, NOW + 2, 1000)).await, Verdict::RevokeFamily);
    let t3 = token(3, NOW, 1000);
    start(&*store, &family(3, "a", &t3), &t3).await;
    assert!(store.revoke_family_of_token(&t3.digest, NOW + 2).await.unwrap());
    let t4 = token(4, NOW, 1000);
    start(&*store, &family(4, "b", &t4), &t4).await;
    assert_eq!(store.revoke_client_families("b", NOW + 2).await.unwrap(), 1);
    let t5 = token(5, NOW, 1000);
    start(&*store, &family(5, "a", &t5), &t5).await;

    let report = store.purge_expired(NOW + 2, 100).await.unwrap();
    assert_eq!((report.tokens, report.families), (3, 3), "the three dead families and their current tokens");
    for gone in [t1.digest, t2.digest, t3.digest, t4.digest] {
        assert_eq!(store.refresh_token(&gone).await.unwrap(), None);
    }
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 1);
    assert_eq!(verdict(&*store, &t5.digest, &token(6, NOW + 3, 1000)).await, Verdict::Rotate, "the live one stays");
    // The rotated token of the first family goes at its own expiry; the
    // index entries of the tokens already gone find nothing.
    let report = store.purge_expired(NOW + 1001, 100).await.unwrap();
    assert_eq!((report.tokens, report.families), (2, 0), "the rotated t1 and t5, whose family moved on to t6");
    let report = store.purge_expired(NOW + 1001, 100).await.unwrap();
    assert_eq!((report.tokens, report.families), (0, 0));
    assert_eq!(verdict(&*store, &[6; 32], &token(7, NOW + 1001, 1000)).await, Verdict::Rotate);
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
        rotation_requested_at: None,
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
    start(&*store, &family(1, "a", &first), &first).await;
    let (record, fam) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert_eq!(record.state, RefreshState::Active);
    assert_eq!(record.client_id, "a");
    assert_eq!(fam, family(1, "a", &first));
    assert_eq!(store.refresh_token(&[42; 32]).await.unwrap(), None);
    // Reading changed nothing: the token still rotates.
    assert_eq!(verdict(&*store, &first.digest, &token(2, NOW + 1, 100)).await, Verdict::Rotate);
    let (record, fam) = store.refresh_token(&first.digest).await.unwrap().unwrap();
    assert!(matches!(record.state, RefreshState::Rotated { .. }));
    assert_eq!(fam.current, [2; 32]);
}

/// Revoking by any token of a family revokes the whole family, once.
pub async fn revoking_by_token_revokes_the_family(store: Arc<dyn Store>) {
    let first = token(1, NOW, 100);
    start(&*store, &family(1, "a", &first), &first).await;
    let other = token(9, NOW, 100);
    start(&*store, &family(9, "a", &other), &other).await;
    assert_eq!(verdict(&*store, &first.digest, &token(2, NOW + 1, 100)).await, Verdict::Rotate);
    // The rotated token names the family as well as the current one.
    assert!(store.revoke_family_of_token(&first.digest, NOW + 2).await.unwrap());
    assert!(!store.revoke_family_of_token(&[2; 32], NOW + 2).await.unwrap(), "already revoked");
    assert!(!store.revoke_family_of_token(&[42; 32], NOW + 2).await.unwrap(), "unknown");
    let (_, fam) = store.refresh_token(&[2; 32]).await.unwrap().unwrap();
    assert_eq!(fam.revoked_at, Some(NOW + 2));
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 1, "the other family lives");
}

/// Issue 16: a client assertion's `jti` is accepted once while it is
/// remembered, per client, and again once it no longer is.
pub async fn assertion_jtis_are_claimed_once(store: Arc<dyn Store>) {
    let claim = |client: &'static str, jti: u8, until: u64, now: u64| {
        let store = store.clone();
        async move { store.claim_assertion_jti(client, &[jti; 32], until, now, 10).await.unwrap() }
    };
    assert_eq!(claim("a", 1, NOW + 60, NOW).await, JtiClaim::First);
    assert_eq!(claim("a", 1, NOW + 60, NOW + 1).await, JtiClaim::Replayed);
    assert_eq!(claim("a", 1, NOW + 90, NOW + 59).await, JtiClaim::Replayed, "remembered to the last second");
    assert_eq!(claim("b", 1, NOW + 60, NOW + 1).await, JtiClaim::First, "another client's jti is its own");
    assert_eq!(claim("a", 2, NOW + 60, NOW + 1).await, JtiClaim::First);
    assert_eq!(claim("a", 1, NOW + 120, NOW + 60).await, JtiClaim::First, "forgotten once its time is up");
    assert_eq!(claim("a", 1, NOW + 180, NOW + 61).await, JtiClaim::Replayed, "and remembered again");
}

/// Issue 16: the replay set is bounded per client and fails closed; the
/// purge removes what need not be remembered, in batches, and makes room.
pub async fn the_assertion_jti_cap_fails_closed_until_the_purge(store: Arc<dyn Store>) {
    let claim = |client: &'static str, jti: u8, until: u64, now: u64| {
        let store = store.clone();
        async move { store.claim_assertion_jti(client, &[jti; 32], until, now, 3).await.unwrap() }
    };
    for n in 0..3u8 {
        assert_eq!(claim("a", n, NOW + 10 + u64::from(n), NOW).await, JtiClaim::First);
    }
    assert_eq!(claim("a", 9, NOW + 100, NOW).await, JtiClaim::Full);
    assert_eq!(claim("a", 0, NOW + 100, NOW).await, JtiClaim::Replayed, "a replay is still told apart");
    assert_eq!(claim("b", 9, NOW + 100, NOW).await, JtiClaim::First, "another client has room");
    assert_eq!(store.purge_assertion_jtis(NOW + 9, 100).await.unwrap(), 0, "nothing is due yet");
    assert_eq!(store.purge_assertion_jtis(NOW + 10, 100).await.unwrap(), 1);
    assert_eq!(claim("a", 9, NOW + 100, NOW + 10).await, JtiClaim::First, "the purge made room");
    assert_eq!(claim("a", 8, NOW + 100, NOW + 10).await, JtiClaim::Full);
    assert_eq!(store.purge_assertion_jtis(NOW + 1000, 1).await.unwrap(), 1, "in batches");
    assert_eq!(store.purge_assertion_jtis(NOW + 1000, 100).await.unwrap(), 3);
    assert_eq!(store.purge_assertion_jtis(NOW + 1000, 100).await.unwrap(), 0);
    assert_eq!(claim("a", 0, NOW + 1100, NOW + 1000).await, JtiClaim::First, "purged entries are forgotten");
}

/// Issue 16: of concurrent claims of one `jti`, exactly one is the first.
pub async fn concurrent_assertion_claims_have_one_winner(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_assertion_jti("a", &[7; 32], NOW + 60, NOW, 100).await.unwrap() })
        })
        .collect();
    let mut first = 0;
    for task in tasks {
        match task.await.unwrap() {
            JtiClaim::First => first += 1,
            JtiClaim::Replayed => {}
            JtiClaim::Full => panic!("the cap is not reached"),
        }
    }
    assert_eq!(first, 1);
}

/// Instantiates the suite for a backend: `$make` is an expression giving
/// an `Arc<dyn Store>` that is empty.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            installation_value_is_set_once, client_lifecycle, client_token_policy_round_trips, last_used_is_recorded,
            rotation_moves_the_family_forward, unknown_tokens_are_unknown, revoking_a_family_sticks,
            every_older_generation_is_reuse, grace_retry_supersedes_the_unused_successor,
            families_start_only_for_active_clients, the_family_cap_retires_the_oldest, purged_families_leave_room_under_the_cap, dead_families_are_purged,
            client_families_are_revoked_together, deleting_a_client_revokes_its_families,
            purge_removes_only_what_expired, keys_round_trip, keys_change_by_compare_and_swap,
            audit_trail_pages_by_sequence, audit_purge_is_bounded_and_keeps_numbering,
            deny_list_lifecycle, refresh_tokens_are_looked_up_by_digest, revoking_by_token_revokes_the_family,
            a_retry_within_the_grace_supersedes_the_unused_successor, a_retry_after_the_grace_is_reuse,
            a_retry_after_the_successor_was_used_is_reuse, assertion_jtis_are_claimed_once,
            the_assertion_jti_cap_fails_closed_until_the_purge);

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_assertion_claims_have_one_winner() {
            $crate::store::conformance::concurrent_assertion_claims_have_one_winner($make).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_rotation_has_one_winner() {
            $crate::store::conformance::concurrent_rotation_has_one_winner($make).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn no_family_survives_a_racing_client_revocation() {
            $crate::store::conformance::no_family_survives_a_racing_client_revocation($make).await;
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
