//! The storage conformance suite: every backend must pass the same tests.
//! A backend's test module instantiates them with
//! [`conformance_tests!`](crate::conformance_tests).

use std::sync::Arc;

use tessera_shared::admin::ClientStatus;

use super::records::{ClientRecord, FamilyRecord, NewRefreshToken};
use super::{FamilyStart, JtiClaim, RefreshUse, Store, StoreError};
use crate::grant::refresh::token::RefreshToken;
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
        family_epoch: 0,
    }
}

/// The first token of family `id`: its ID is ten bytes of `id` (so IDs
/// sort as their numbers), its random part sixteen.
pub fn first_token(id: u8) -> RefreshToken {
    RefreshToken { family_id: [id; 10], generation: 0, secret: [id; 16] }
}

/// Family `id` of `client_id`, created at `created_at` with its first token
/// ([`first_token`]) valid for `ttl` seconds.
pub fn family(id: u8, client_id: &str, created_at: u64, ttl: u64) -> FamilyRecord {
    FamilyRecord {
        family_id: [id; 10],
        client_id: client_id.into(),
        scope: vec!["read".into()],
        created_at,
        revoked_at: None,
        generation: 0,
        current: first_token(id).digest(),
        issued_at: created_at,
        expires_at: created_at + ttl,
        previous: None,
        client_epoch: 0,
        dpop_jkt: None,
    }
}

/// A successor with random part `fill`, issued at `issued_at` for `ttl` seconds.
pub fn successor(fill: u8, issued_at: u64, ttl: u64) -> NewRefreshToken {
    NewRefreshToken { secret: [fill; 16], issued_at, expires_at: issued_at + ttl }
}

/// The token a rotation to `successor` handed out, as `after` records it.
fn handed_out(after: &FamilyRecord, successor: &NewRefreshToken) -> RefreshToken {
    RefreshToken { family_id: after.family_id, generation: after.generation, secret: successor.secret }
}

/// Starts `family`, storing its client first if needed.
async fn start(store: &dyn Store, family: &FamilyRecord) {
    match store.insert_client(&client(&family.client_id)).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(e) => panic!("cannot store the client: {e}"),
    }
    assert_eq!(store.create_family(family, 1000).await.unwrap(), FamilyStart::Started { retired: 0 });
}

/// A refresh request by client `a` (epoch 0) at `now`, without reuse grace.
pub fn by_a(now: u64) -> Presentation<'static> {
    Presentation { client_id: "a", client_epoch: 0, now, reuse_grace: 0, requested_scope: None, dpop_jkt: None }
}

/// Presents `presented` with the real rules; the verdict and the family
/// after it, or `None` for an unknown family.
async fn present(
    store: &dyn Store,
    presented: &RefreshToken,
    successor: &NewRefreshToken,
    request: &Presentation<'_>,
) -> Option<(Verdict, FamilyRecord)> {
    match store.use_refresh_token(presented, successor, request).await.unwrap() {
        RefreshUse::Decided { verdict, family } => Some((verdict, family)),
        RefreshUse::Unknown => None,
    }
}

/// The verdict on presenting `presented` as client `a` at `successor.issued_at`.
async fn verdict(store: &dyn Store, presented: &RefreshToken, successor: &NewRefreshToken) -> Verdict {
    present(store, presented, successor, &by_a(successor.issued_at)).await.expect("the family is known").0
}

/// Rotates `presented` as client `a` to `successor`; the token handed out.
async fn rotate(store: &dyn Store, presented: &RefreshToken, successor: &NewRefreshToken) -> RefreshToken {
    let (verdict, after) =
        present(store, presented, successor, &by_a(successor.issued_at)).await.expect("the family is known");
    assert_eq!(verdict, Verdict::Rotate, "{presented:?}");
    handed_out(&after, successor)
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

/// A rotation moves the family's one record a generation on; a refusal
/// changes nothing.
pub async fn rotation_moves_the_family_forward(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 100)).await;
    let next = successor(2, NOW + 10, 100);
    let (verdict, after) = present(&*store, &first_token(1), &next, &by_a(NOW + 10)).await.unwrap();
    assert_eq!(verdict, Verdict::Rotate);
    let second = handed_out(&after, &next);
    assert_eq!((after.generation, after.current, after.expires_at), (1, second.digest(), next.expires_at));
    assert_eq!(store.family(&[1; 10]).await.unwrap(), Some(after.clone()), "stored as decided");

    // A refusal changes nothing: the successor still rotates.
    let other = Presentation { client_id: "b", ..by_a(NOW + 20) };
    let (verdict, _) = present(&*store, &second, &successor(3, NOW + 20, 100), &other).await.unwrap();
    assert_eq!(verdict, Verdict::Refuse(Refusal::OtherClient));
    assert_eq!(store.family(&[1; 10]).await.unwrap(), Some(after), "nothing was written");
    rotate(&*store, &second, &successor(3, NOW + 20, 100)).await;
}

/// A token naming no stored family is reported as such.
pub async fn unknown_tokens_are_unknown(store: Arc<dyn Store>) {
    assert_eq!(present(&*store, &first_token(42), &successor(2, NOW, 100), &by_a(NOW)).await, None);
}

/// An altered token (one changed character, anywhere but the family ID,
/// which would name another family) is refused and changes nothing; the
/// real one still rotates.
pub async fn an_altered_token_changes_nothing(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 1000)).await;
    let second = rotate(&*store, &first_token(1), &successor(2, NOW + 1, 1000)).await;
    let stored = store.family(&[1; 10]).await.unwrap();
    let text = second.encode();
    // Characters 14.. lie past the family ID (bytes 0..10 are characters
    // 0..13, the 14th sharing bits with the generation).
    for position in 14..text.len() {
        let mut altered = text.clone().into_bytes();
        altered[position] = if altered[position] == b'A' { b'B' } else { b'A' };
        let altered = RefreshToken::parse(std::str::from_utf8(&altered).unwrap()).unwrap();
        let outcome = present(&*store, &altered, &successor(9, NOW + 2, 1000), &by_a(NOW + 2)).await;
        let verdict = outcome.expect("the family is known").0;
        // At generation 1 every change is a token the family never issued:
        // a higher generation, generation 1 with another digest, or
        // generation 0 (the previous one, which the family still knows)
        // with another digest.
        assert_eq!(verdict, Verdict::Refuse(Refusal::NotIssued), "character {position}");
        assert_eq!(store.family(&[1; 10]).await.unwrap(), stored, "character {position}: nothing changed");
    }
    rotate(&*store, &second, &successor(3, NOW + 3, 1000)).await;
}

/// Reuse revokes the family, and the revocation sticks.
pub async fn revoking_a_family_sticks(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 100)).await;
    let second = rotate(&*store, &first_token(1), &successor(2, NOW + 1, 100)).await;
    let (verdict, after) =
        present(&*store, &first_token(1), &successor(3, NOW + 2, 100), &by_a(NOW + 2)).await.unwrap();
    assert_eq!(verdict, Verdict::RevokeFamily);
    assert_eq!(after.revoked_at, Some(NOW + 2));
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 0);
    assert_eq!(
        self::verdict(&*store, &second, &successor(4, NOW + 3, 100)).await,
        Verdict::Refuse(Refusal::FamilyRevoked),
        "the current token died with its family"
    );
}

/// Every generation older than the current one is reuse, however far back.
pub async fn every_older_generation_is_reuse(store: Arc<dyn Store>) {
    for back in 1..=4u8 {
        for older in 0..back {
            // A family of its own per case, rotated `back` times; the
            // token of generation `older` is presented again.
            let id = back * 10 + older;
            start(&*store, &family(id, "a", NOW, 1000)).await;
            let mut tokens = vec![first_token(id)];
            for step in 1..=back {
                let next =
                    rotate(&*store, &tokens[tokens.len() - 1], &successor(step, NOW + u64::from(step), 1000)).await;
                tokens.push(next);
            }
            let graced = Presentation { reuse_grace: 10_000, ..by_a(NOW + 20) };
            let presented = tokens[usize::from(older)];
            let (verdict, after) = present(&*store, &presented, &successor(99, NOW + 20, 1000), &graced).await.unwrap();
            // With a grace, the previous generation (back - 1) is a retry;
            // every older one is reuse.
            if older + 1 == back {
                assert_eq!(verdict, Verdict::Rotate, "the previous generation within the grace");
                continue;
            }
            assert_eq!(verdict, Verdict::RevokeFamily, "generation {older} of {back}");
            assert_eq!(after.revoked_at, Some(NOW + 20));
            assert_eq!(
                self::verdict(&*store, &tokens[usize::from(back)], &successor(98, NOW + 21, 1000)).await,
                Verdict::Refuse(Refusal::FamilyRevoked),
                "generation {older} of {back}: the current token died with its family"
            );
        }
    }
}

/// The reuse grace of the grace cases, in seconds.
const GRACE: u64 = 60;

/// Presents `presented` as client `a` at `successor.issued_at` with a
/// reuse grace of [`GRACE`] seconds; the verdict and the family after it.
async fn present_graced(
    store: &dyn Store,
    presented: &RefreshToken,
    successor: &NewRefreshToken,
) -> (Verdict, FamilyRecord) {
    let request = Presentation { reuse_grace: GRACE, ..by_a(successor.issued_at) };
    present(store, presented, successor, &request).await.expect("the family exists")
}

/// A retry within the grace, while the successor is unused, rotates again:
/// the unused successor is superseded (presenting it later is reuse), and
/// the grace keeps running from the first rotation.
pub async fn a_retry_within_the_grace_supersedes_the_unused_successor(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 1000)).await;
    let lost_successor = successor(2, NOW + 10, 1000);
    let (verdict, after) = present_graced(&*store, &first_token(1), &lost_successor).await;
    assert_eq!(verdict, Verdict::Rotate);
    let lost = handed_out(&after, &lost_successor);

    let retried_successor = successor(3, NOW + 20, 1000);
    let (verdict, family) = present_graced(&*store, &first_token(1), &retried_successor).await;
    assert_eq!(verdict, Verdict::Rotate);
    let retried = handed_out(&family, &retried_successor);
    assert_eq!((family.generation, family.current, family.revoked_at), (2, retried.digest(), None));
    assert_eq!(family.previous.map(|p| (p.generation, p.rotated_at)), Some((0, NOW + 10)), "the first time kept");

    // The superseded successor was never used: presenting it is reuse, and
    // the whole family dies.
    let (verdict, _) = present_graced(&*store, &lost, &successor(4, NOW + 30, 1000)).await;
    assert_eq!(verdict, Verdict::RevokeFamily);
    assert_eq!(store.family(&[1; 10]).await.unwrap().unwrap().revoked_at, Some(NOW + 30));
}

/// The grace runs from the first rotation: retrying again and again does
/// not stretch it, and past it the retry is reuse.
pub async fn a_retry_after_the_grace_is_reuse(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 1000)).await;
    present_graced(&*store, &first_token(1), &successor(2, NOW + 10, 1000)).await;
    let last_second = NOW + 10 + GRACE - 1;
    let last = successor(3, last_second, 1000);
    let (verdict, within) = present_graced(&*store, &first_token(1), &last).await;
    assert_eq!(verdict, Verdict::Rotate);
    let after = present_graced(&*store, &first_token(1), &successor(4, last_second + 1, 1000)).await;
    assert_eq!(after.0, Verdict::RevokeFamily);
    assert_eq!(store.count_live_families("a", NOW + 10 + GRACE).await.unwrap(), 0);
    // The unused successor of the last retry dies with its family.
    let dead = present_graced(&*store, &handed_out(&within, &last), &successor(5, NOW + 100, 1000)).await;
    assert_eq!(dead.0, Verdict::Refuse(Refusal::FamilyRevoked));
}

/// Within the grace but after the successor was used, a retry is reuse.
pub async fn a_retry_after_the_successor_was_used_is_reuse(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 1000)).await;
    let next = successor(2, NOW + 10, 1000);
    let (_, after) = present_graced(&*store, &first_token(1), &next).await;
    let used = present_graced(&*store, &handed_out(&after, &next), &successor(3, NOW + 11, 1000)).await;
    assert_eq!(used.0, Verdict::Rotate);
    let retry = present_graced(&*store, &first_token(1), &successor(4, NOW + 12, 1000)).await;
    assert_eq!(retry.0, Verdict::RevokeFamily);
    assert_eq!(store.count_live_families("a", NOW + 12).await.unwrap(), 0);
}

/// Of 32 concurrent uses of one token, exactly one rotates it; with the
/// real rules the others are reuse and revoke the family.
pub async fn concurrent_rotation_has_one_winner(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 1000)).await;
    let mut tasks = Vec::new();
    for n in 0..32u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(
            async move { verdict(&*store, &first_token(1), &successor(100 + n, NOW + 1, 1000)).await },
        ));
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

/// A family starts only for a stored, active client at the family's
/// epoch; otherwise nothing is stored.
pub async fn families_start_only_for_active_clients(store: Arc<dyn Store>) {
    let started = store.create_family(&family(1, "a", NOW, 100), 1000).await.unwrap();
    assert_eq!(started, FamilyStart::ClientNotActive, "no such client");
    store.insert_client(&ClientRecord { status: ClientStatus::Revoked, ..client("a") }).await.unwrap();
    let started = store.create_family(&family(1, "a", NOW, 100), 1000).await.unwrap();
    assert_eq!(started, FamilyStart::ClientNotActive, "a revoked client");
    // Re-activated after a revocation: a grant authenticated before it
    // carries the old epoch.
    let reactivate = |c: &mut ClientRecord| {
        c.revoke();
        c.status = ClientStatus::Active;
    };
    store.update_client("a", &reactivate).await.unwrap().unwrap();
    let started = store.create_family(&family(1, "a", NOW, 100), 1000).await.unwrap();
    assert_eq!(started, FamilyStart::ClientNotActive, "an older epoch");
    assert_eq!(store.family(&[1; 10]).await.unwrap(), None, "nothing was stored");
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 0);
    let current = FamilyRecord { client_epoch: 1, ..family(1, "a", NOW, 100) };
    assert_eq!(store.create_family(&current, 1000).await.unwrap(), FamilyStart::Started { retired: 0 });
}

/// At the cap, starting a family removes the client's oldest one: a live
/// one is retired (its tokens stop working), a dead one just goes.
pub async fn the_family_cap_retires_the_oldest(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        start(&*store, &family(n, "a", NOW, 100)).await;
    }
    start(&*store, &family(9, "b", NOW, 100)).await;
    let started = store.create_family(&family(4, "a", NOW, 100), 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 1 });
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 3);
    assert_eq!(present(&*store, &first_token(1), &successor(20, NOW + 1, 100), &by_a(NOW + 1)).await, None, "retired");
    rotate(&*store, &first_token(2), &successor(21, NOW + 1, 100)).await;

    // The oldest is now family 2; revoked, it goes without retiring a live one.
    assert!(store.revoke_family(&[2; 10], NOW + 2).await.unwrap());
    let started = store.create_family(&family(5, "a", NOW + 2, 100), 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 0 });
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 3);
    for live in [3u8, 4, 5] {
        rotate(&*store, &first_token(live), &successor(30 + live, NOW + 3, 100)).await;
    }
    assert_eq!(store.count_live_families("b", NOW + 3).await.unwrap(), 1, "another client's families are not counted");
}

/// Purged families give their places under the cap back: the next starts
/// retire no live family.
pub async fn purged_families_leave_room_under_the_cap(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        start(&*store, &family(n, "a", NOW, 10)).await;
    }
    // Counted at the cap once, so a store that keeps a count has one.
    let started = store.create_family(&family(4, "a", NOW, 10), 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 1 });
    assert_eq!(store.purge_expired(NOW + 20, 100).await.unwrap().families, 3);
    for n in 5..=7u8 {
        let started = store.create_family(&family(n, "a", NOW + 20, 100), 3).await.unwrap();
        assert_eq!(started, FamilyStart::Started { retired: 0 }, "family {n}");
    }
    assert_eq!(store.count_live_families("a", NOW + 20).await.unwrap(), 3);
}

/// A family purged between two starts at the cap is counted off once, and
/// the cap goes on retiring the oldest of those left (a store that reads
/// the oldest ahead skips the one gone).
pub async fn the_cap_retires_the_oldest_left_after_a_purge(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        start(&*store, &family(n, "a", NOW, 100)).await;
    }
    let started = store.create_family(&family(4, "a", NOW, 100), 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 1 }, "family 1 is retired; 2 and 3 are the oldest left");
    assert!(store.revoke_family(&[2; 10], NOW + 1).await.unwrap());
    assert_eq!(store.purge_expired(NOW + 2, 100).await.unwrap().families, 1);
    let started = store.create_family(&family(5, "a", NOW + 2, 100), 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 0 }, "the purge left room for one");
    let started = store.create_family(&family(6, "a", NOW + 2, 100), 3).await.unwrap();
    assert_eq!(started, FamilyStart::Started { retired: 1 });
    assert_eq!(present(&*store, &first_token(3), &successor(20, NOW + 3, 100), &by_a(NOW + 3)).await, None, "retired");
    for live in [4u8, 5, 6] {
        rotate(&*store, &first_token(live), &successor(30 + live, NOW + 3, 100)).await;
    }
    assert_eq!(store.count_live_families("a", NOW + 3).await.unwrap(), 3);
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
                // Every grant authenticated the client at epoch 0.
                let mut family = family(0, "a", NOW, 1000);
                family.family_id[0] = task;
                family.family_id[1..3].copy_from_slice(&i.to_be_bytes());
                let first = RefreshToken { family_id: family.family_id, generation: 0, secret: [0xee; 16] };
                family.current = first.digest();
                match store.create_family(&family, 100_000).await.unwrap() {
                    FamilyStart::Started { .. } => {
                        started.push(first);
                        if started_count.fetch_add(1, Ordering::SeqCst) + 1 == 16 {
                            enough.notify_one();
                        }
                    }
                    FamilyStart::ClientNotActive => return (started, Some(first)),
                }
            }
            (started, None)
        }));
    }
    enough.notified().await;
    // As the admin API does: revoked and its epoch raised in one change.
    store.update_client("a", &ClientRecord::revoke).await.unwrap().unwrap();
    store.revoke_client_families("a", NOW + 1).await.unwrap();
    let mut all_started = Vec::new();
    let mut refused = Vec::new();
    for task in tasks {
        let (started, refusal) = task.await.unwrap();
        all_started.extend(started);
        refused.push(refusal.expect("every task met the revocation within its bound"));
    }
    let reactivate = |c: &mut ClientRecord| c.status = ClientStatus::Active;
    let reactivated = store.update_client("a", &reactivate).await.unwrap().unwrap();
    assert_eq!(reactivated.family_epoch, 1);
    assert!(all_started.len() >= 16);
    // As the token endpoint presents them: authenticated at the new epoch.
    let now_epoch = Presentation { client_epoch: reactivated.family_epoch, ..by_a(NOW + 2) };
    for (n, token) in all_started.iter().enumerate() {
        let (verdict, _) = present(&*store, token, &successor(0xab, NOW + 2, 100), &now_epoch)
            .await
            .expect("a started family is known");
        assert_eq!(verdict, Verdict::Refuse(Refusal::FamilyRevoked), "family #{n} of {}", all_started.len());
    }
    for token in refused {
        assert_eq!(store.family(&token.family_id).await.unwrap(), None, "a refused start stored nothing");
    }
    // The re-activated client starts families that work.
    let fresh = FamilyRecord { client_epoch: 1, ..family(0xfe, "a", NOW + 3, 100) };
    start(&*store, &fresh).await;
    let (verdict, _) = present(
        &*store,
        &first_token(0xfe),
        &successor(0xfd, NOW + 4, 100),
        &Presentation { now: NOW + 4, ..now_epoch },
    )
    .await
    .unwrap();
    assert_eq!(verdict, Verdict::Rotate);
}

/// Revoking a client's families counts only live ones.
pub async fn client_families_are_revoked_together(store: Arc<dyn Store>) {
    for n in 1..=3u8 {
        start(&*store, &family(n, "a", NOW, 100)).await;
    }
    start(&*store, &family(9, "b", NOW, 100)).await;
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 3);
    assert_eq!(store.revoke_client_families("a", NOW).await.unwrap(), 3);
    assert_eq!(store.revoke_client_families("a", NOW).await.unwrap(), 0);
    assert_eq!(store.count_live_families("b", NOW).await.unwrap(), 1);
}

/// Deleting a client revokes its families.
pub async fn deleting_a_client_revokes_its_families(store: Arc<dyn Store>) {
    store.insert_client(&client("a")).await.unwrap();
    start(&*store, &family(1, "a", NOW, 100)).await;
    assert_eq!(store.delete_client("a", NOW).await.unwrap(), Some(1));
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 0);
}

/// The purge removes expired families in bounded batches, and nothing
/// live, also when a rotation moved a family's expiry into a later day.
pub async fn purge_removes_only_what_expired(store: Arc<dyn Store>) {
    // Family 1: rotated once, expires at NOW + 200.
    start(&*store, &family(1, "a", NOW, 100)).await;
    rotate(&*store, &first_token(1), &successor(2, NOW + 50, 150)).await;
    // Family 2: expires at NOW + 300.
    start(&*store, &family(2, "a", NOW, 300)).await;
    // Family 3: created expiring today, rotated into days later.
    start(&*store, &family(3, "a", NOW, 100)).await;
    let later = rotate(&*store, &first_token(3), &successor(4, NOW + 1, 3 * 86_400)).await;

    assert_eq!(store.purge_expired(NOW + 150, 10).await.unwrap().families, 0, "nothing expired yet");
    assert_eq!(store.purge_expired(NOW + 400, 1).await.unwrap().families, 1, "the batch bound holds");
    assert_eq!(store.purge_expired(NOW + 400, 10).await.unwrap().families, 1);
    assert_eq!(store.purge_expired(NOW + 400, 10).await.unwrap().families, 0);
    assert_eq!(store.family(&[1; 10]).await.unwrap(), None);
    assert_eq!(store.family(&[2; 10]).await.unwrap(), None);
    assert_eq!(store.count_live_families("a", NOW + 400).await.unwrap(), 1);
    rotate(&*store, &later, &successor(5, NOW + 400, 3 * 86_400)).await;
    // Its expiry, two days on, is found too.
    assert_eq!(store.purge_expired(NOW + 400 + 3 * 86_400, 10).await.unwrap().families, 1);
    assert_eq!(store.family(&[3; 10]).await.unwrap(), None);
}

/// A dead family goes at the next purge (revoked by reuse, on its own, or
/// with all of its client's; created before its client's epoch; of a
/// deleted client); a live family stays.
pub async fn dead_families_are_purged(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 1000)).await;
    rotate(&*store, &first_token(1), &successor(2, NOW + 1, 1000)).await;
    assert_eq!(verdict(&*store, &first_token(1), &successor(9, NOW + 2, 1000)).await, Verdict::RevokeFamily);
    start(&*store, &family(3, "a", NOW, 1000)).await;
    assert!(store.revoke_family(&[3; 10], NOW + 2).await.unwrap());
    start(&*store, &family(4, "b", NOW, 1000)).await;
    assert_eq!(store.revoke_client_families("b", NOW + 2).await.unwrap(), 1);
    start(&*store, &family(5, "a", NOW, 1000)).await;
    start(&*store, &family(6, "c", NOW, 1000)).await;
    store.delete_client("c", NOW + 2).await.unwrap();

    let report = store.purge_expired(NOW + 2, 100).await.unwrap();
    assert_eq!(report.families, 4, "the four dead families");
    for gone in [1u8, 3, 4, 6] {
        assert_eq!(store.family(&[gone; 10]).await.unwrap(), None, "family {gone}");
    }
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 1);
    rotate(&*store, &first_token(5), &successor(6, NOW + 3, 1000)).await;

    // A family of an epoch its client has left behind, never revoked on
    // its own (it raced with the revocation): dead at its expiry at the
    // latest, and refused before.
    start(&*store, &family(7, "d", NOW, 100)).await;
    store.update_client("d", &ClientRecord::revoke).await.unwrap();
    let reactivate = |c: &mut ClientRecord| c.status = ClientStatus::Active;
    store.update_client("d", &reactivate).await.unwrap();
    assert_eq!(store.count_live_families("d", NOW + 3).await.unwrap(), 0, "dead by its epoch");
    assert_eq!(store.purge_expired(NOW + 100, 100).await.unwrap().families, 1);
    assert_eq!(store.family(&[7; 10]).await.unwrap(), None);
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

/// A family bound to a DPoP key keeps the binding through rotations, and
/// a request without that key changes nothing, not even by presenting an
/// old generation (which would otherwise revoke the family).
pub async fn a_bound_family_needs_its_key(store: Arc<dyn Store>) {
    let bound = FamilyRecord { dpop_jkt: Some([7; 32]), ..family(1, "a", NOW, 1000) };
    start(&*store, &bound).await;
    let (verdict, _) = present(&*store, &first_token(1), &successor(2, NOW + 1, 1000), &by_a(NOW + 1)).await.unwrap();
    assert_eq!(verdict, Verdict::Refuse(Refusal::DpopKeyMismatch));
    assert_eq!(store.family(&[1; 10]).await.unwrap(), Some(bound.clone()), "nothing changed");
    let with_key = |now| Presentation { dpop_jkt: Some([7; 32]), ..by_a(now) };
    let (verdict, after) =
        present(&*store, &first_token(1), &successor(3, NOW + 2, 1000), &with_key(NOW + 2)).await.unwrap();
    assert_eq!((verdict, after.dpop_jkt), (Verdict::Rotate, Some([7; 32])));
    let other_key = Presentation { dpop_jkt: Some([8; 32]), ..by_a(NOW + 3) };
    let (verdict, _) = present(&*store, &first_token(1), &successor(4, NOW + 3, 1000), &other_key).await.unwrap();
    assert_eq!(verdict, Verdict::Refuse(Refusal::DpopKeyMismatch), "reuse without the key revokes nothing");
    assert_eq!(store.count_live_families("a", NOW + 3).await.unwrap(), 1);
    let (verdict, _) =
        present(&*store, &first_token(1), &successor(5, NOW + 4, 1000), &with_key(NOW + 4)).await.unwrap();
    assert_eq!(verdict, Verdict::RevokeFamily, "with the key, reuse is reuse");
}

/// A revoked family is due ahead of every family still to expire: the
/// purge's batch is never used up by live families expiring today.
pub async fn revoked_families_are_purged_first(store: Arc<dyn Store>) {
    for n in 1..=5u8 {
        start(&*store, &family(n, "a", NOW, 1000)).await;
    }
    assert!(store.revoke_family(&[5; 10], NOW + 1).await.unwrap());
    assert_eq!(store.purge_expired(NOW + 2, 1).await.unwrap().families, 1);
    assert_eq!(store.family(&[5; 10]).await.unwrap(), None);
    assert_eq!(store.count_live_families("a", NOW + 2).await.unwrap(), 4);
}

/// A family can be read by ID without changing it.
pub async fn families_are_read_by_id(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 100)).await;
    assert_eq!(store.family(&[1; 10]).await.unwrap(), Some(family(1, "a", NOW, 100)));
    assert_eq!(store.family(&[42; 10]).await.unwrap(), None);
    // Reading changed nothing: the token still rotates.
    let next = rotate(&*store, &first_token(1), &successor(2, NOW + 1, 100)).await;
    assert_eq!(store.family(&[1; 10]).await.unwrap().unwrap().current, next.digest());
}

/// A family whose ID is taken is refused, never written over the one there.
pub async fn a_taken_family_id_is_refused(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 100)).await;
    let clash = FamilyRecord { scope: vec![], ..family(1, "a", NOW, 500) };
    assert!(matches!(store.create_family(&clash, 1000).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(store.family(&[1; 10]).await.unwrap(), Some(family(1, "a", NOW, 100)));
    assert_eq!(store.count_live_families("a", NOW).await.unwrap(), 1);
    // The count kept for the cap was not raised by the refused start.
    for n in 2..=3u8 {
        assert_eq!(
            store.create_family(&family(n, "a", NOW, 100), 3).await.unwrap(),
            FamilyStart::Started { retired: 0 }
        );
    }
}

/// Revoking a family by ID revokes it once.
pub async fn revoking_a_family_by_id(store: Arc<dyn Store>) {
    start(&*store, &family(1, "a", NOW, 100)).await;
    start(&*store, &family(9, "a", NOW, 100)).await;
    assert!(store.revoke_family(&[1; 10], NOW + 2).await.unwrap());
    assert!(!store.revoke_family(&[1; 10], NOW + 2).await.unwrap(), "already revoked");
    assert!(!store.revoke_family(&[42; 10], NOW + 2).await.unwrap(), "unknown");
    assert_eq!(store.family(&[1; 10]).await.unwrap().unwrap().revoked_at, Some(NOW + 2));
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
            rotation_moves_the_family_forward, unknown_tokens_are_unknown, an_altered_token_changes_nothing,
            revoking_a_family_sticks, every_older_generation_is_reuse,
            families_start_only_for_active_clients, the_family_cap_retires_the_oldest, purged_families_leave_room_under_the_cap,
            the_cap_retires_the_oldest_left_after_a_purge, dead_families_are_purged,
            client_families_are_revoked_together, deleting_a_client_revokes_its_families,
            purge_removes_only_what_expired, keys_round_trip, keys_change_by_compare_and_swap,
            audit_trail_pages_by_sequence, audit_purge_is_bounded_and_keeps_numbering,
            deny_list_lifecycle, families_are_read_by_id, revoking_a_family_by_id, a_bound_family_needs_its_key,
            a_taken_family_id_is_refused, revoked_families_are_purged_first,
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
