use std::sync::Arc;

use super::SledStore;
use super::journal::TreeId;
use crate::grant::refresh::Verdict;
use crate::grant::refresh::token::RefreshToken;
use crate::store::records::FamilyRecord;
use crate::store::{RefreshUse, Store, conformance};

fn temporary() -> Arc<dyn Store> {
    Arc::new(SledStore::temporary().expect("temporary sled"))
}

crate::conformance_tests!(temporary());

impl SledStore {
    /// How many keys `tree` has, with every commit so far.
    fn count(&self, tree: TreeId) -> usize {
        self.journal.keys_with_prefix(tree, &[]).unwrap().len()
    }
}

/// Stores the family's client and starts the family.
async fn start(store: &SledStore, family: &FamilyRecord) {
    store.insert_client(&conformance::client(&family.client_id)).await.unwrap();
    let started = store.create_family(family, 1000).await.unwrap();
    assert_eq!(started, crate::store::FamilyStart::Started { retired: 0 });
}

/// Issue 12: a family is one record however often it rotates, and a
/// rotation within the same expiry day writes nothing else.
#[tokio::test]
async fn rotations_overwrite_one_record() {
    let store = SledStore::temporary().unwrap();
    let now = 1_700_000_000;
    start(&store, &conformance::family(1, "a", now, 1000)).await;
    let mut token = conformance::first_token(1);
    for n in 0..200u64 {
        let next = conformance::successor(7, now + n, 1000);
        let RefreshUse::Decided { verdict, family } =
            store.use_refresh_token(&token, &next, &conformance::by_a(now + n)).await.unwrap()
        else {
            panic!("the family is known")
        };
        assert_eq!(verdict, Verdict::Rotate);
        token = RefreshToken { family_id: family.family_id, generation: family.generation, secret: next.secret };
    }
    store.flush().await.unwrap();
    assert_eq!(store.count(TreeId::Families), 1);
    assert_eq!(store.count(TreeId::ClientFamilies), 1);
    assert_eq!(store.count(TreeId::FamilyExpiry), 1, "the expiry stayed within one day");
    assert_eq!(store.family(&[1; 10]).await.unwrap().unwrap().generation, 200);
}

/// A family rotated on many days keeps one expiry-index entry: the entry
/// moves with its expiry day instead of one being left per day.
#[tokio::test]
async fn rotations_on_many_days_keep_one_expiry_entry() {
    const DAY: u64 = 86_400;
    let store = SledStore::temporary().unwrap();
    let now = 1_700_000_000;
    start(&store, &conformance::family(1, "a", now, 30 * DAY)).await;
    let mut token = conformance::first_token(1);
    for day in 1..=10u64 {
        let at = now + day * DAY;
        let next = conformance::successor(7, at, 30 * DAY);
        let RefreshUse::Decided { verdict, family } =
            store.use_refresh_token(&token, &next, &conformance::by_a(at)).await.unwrap()
        else {
            panic!("the family is known")
        };
        assert_eq!(verdict, Verdict::Rotate);
        token = RefreshToken { family_id: family.family_id, generation: family.generation, secret: next.secret };
    }
    store.flush().await.unwrap();
    assert_eq!(store.count(TreeId::FamilyExpiry), 1, "one entry, on the current expiry day");
    // And the purge still finds the family on that day.
    let expires = store.family(&[1; 10]).await.unwrap().unwrap().expires_at;
    assert_eq!(store.purge_expired(expires - 1, 100).await.unwrap().families, 0);
    assert_eq!(store.purge_expired(expires, 100).await.unwrap().families, 1);
}

/// The purge's index holds one entry per stored family: a family retired
/// at the cap takes its entry along, and a revoked one moves its entry to
/// day 0 instead of adding one.
#[tokio::test]
async fn retired_and_revoked_families_leave_no_index_entries_behind() {
    let store = SledStore::temporary().unwrap();
    let now = 1_700_000_000;
    start(&store, &conformance::family(1, "a", now, 1000)).await;
    for id in 2..=5u8 {
        let started = store.create_family(&conformance::family(id, "a", now, 1000), 3).await.unwrap();
        assert!(matches!(started, crate::store::FamilyStart::Started { .. }));
    }
    store.flush().await.unwrap();
    assert_eq!(
        (store.count(TreeId::Families), store.count(TreeId::FamilyExpiry)),
        (3, 3),
        "two retired, with their entries"
    );
    assert!(store.revoke_family(&[5; 10], now + 1).await.unwrap());
    store.flush().await.unwrap();
    assert_eq!(store.count(TreeId::FamilyExpiry), 3, "the revoked family's entry moved to day 0");
    assert_eq!(store.purge_expired(now + 1, 100).await.unwrap().families, 1, "and is purged at once");
    store.flush().await.unwrap();
    assert_eq!((store.count(TreeId::Families), store.count(TreeId::FamilyExpiry)), (2, 2));
}

#[tokio::test]
async fn writes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let family = conformance::family(1, "a", 10, 990);
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        start(&store, &family).await;
        assert_eq!(store.installation_value("k", vec![7]).await.unwrap(), vec![7]);
    }
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    assert_eq!(store.count_live_families("a", 20).await.unwrap(), 1);
    assert_eq!(store.installation_value("k", vec![8]).await.unwrap(), vec![7]);
}

#[tokio::test]
async fn a_corrupt_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        let ((), ticket) = store
            .journal
            .commit(|view| {
                view.insert(super::TreeId::Clients, b"oa2-client-id_x", b"garbage".to_vec());
                Ok(())
            })
            .unwrap();
        store.journal.wait(ticket).await.unwrap();
    }
    // Opened again, the unreadable record is met on lookup, not at the start.
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    assert!(matches!(store.client("oa2-client-id_x").await, Err(crate::store::StoreError::Corrupt(_))));
    assert!(matches!(store.client("oa2-client-id_y").await, Ok(None)));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A crash in which sled kept none of an acknowledged write (its files as
/// they were before it) while the journal had synced it: reopening replays
/// the journal, and the write is there.
#[tokio::test]
async fn an_acknowledged_write_sled_lost_is_replayed_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let snapshot = dir.path().join("db-before");
    let family = conformance::family(2, "b", 10, 990);
    drop(SledStore::open(&db).unwrap());
    copy_dir(&db, &snapshot);
    let store = SledStore::open(&db).unwrap();
    start(&store, &family).await;
    // The crash: none of the store's closing (a last checkpoint) runs.
    std::mem::forget(store);
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::rename(&snapshot, &db).unwrap();

    let store = SledStore::open(&db).unwrap();
    assert_eq!(store.family(&family.family_id).await.unwrap(), Some(family.clone()), "replayed");
    // Its index entry too (the client itself, written outside the journal
    // before the snapshot was restored, is not part of this test).
    assert_eq!(store.family_ids_of("b").unwrap(), vec![family.family_id]);
}

/// The family count kept for the cap follows live clients: a deleted
/// client's entry goes with it, so the map does not grow with deletions.
#[tokio::test]
async fn a_deleted_clients_family_count_goes_with_it() {
    let store = SledStore::temporary().unwrap();
    start(&store, &conformance::family(1, "a", 1_700_000_000, 100)).await;
    assert_eq!(store.family_tallies().get("a").map(|tally| tally.count), Some(1));
    store.delete_client("a", 1_700_000_001).await.unwrap();
    assert!(store.family_tallies().get("a").is_none());
}

/// Item "the journal owns the trees it journals": every kind of write
/// (installation values, clients and their last use, keys, the audit
/// trail, the deny list) is a journal commit. After a crash in which sled
/// kept none of them (its files as before the writes), the journal alone
/// brings every one back, a deletion included.
#[tokio::test]
async fn every_kind_of_write_is_replayed_from_the_journal() {
    use crate::store::conformance::{client, sample_key};
    use tessera_shared::admin::{AuditEvent, AuditKind, ClientStatus};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let snapshot = dir.path().join("db-before");
    {
        let store = SledStore::open(&db).unwrap();
        store.insert_client(&client("gone")).await.unwrap();
        store.replace_installation_value("changed", vec![1]).await.unwrap();
    }
    copy_dir(&db, &snapshot);
    let store = SledStore::open(&db).unwrap();
    assert_eq!(store.installation_value("new", vec![7]).await.unwrap(), vec![7]);
    store.replace_installation_value("changed", vec![2]).await.unwrap();
    store.insert_client(&client("kept")).await.unwrap();
    let revoke: &crate::store::ClientChange<'_> = &|c| c.status = ClientStatus::Revoked;
    store.update_client("kept", revoke).await.unwrap().expect("the client is there");
    store.record_client_use("kept", 1_700_000_005).await.unwrap();
    store.delete_client("gone", 1_700_000_006).await.unwrap().expect("the client was there");
    store.put_keys(&[sample_key(1)]).await.unwrap();
    assert!(store.replace_keys(&[sample_key(1)], &[sample_key(2)]).await.unwrap());
    let event = |detail: &str| AuditEvent {
        seq: 0,
        at: 1_700_000_000,
        kind: AuditKind::ClientCreated,
        client_id: None,
        detail: detail.into(),
    };
    assert_eq!(store.append_audit(&event("one")).await.unwrap().seq, 1);
    assert_eq!(store.append_audit(&event("two")).await.unwrap().seq, 2);
    store.deny_access_token("jti-1", 1_700_000_300).await.unwrap();
    // The last-used stamp does not wait for the sync; this does.
    store.flush().await.unwrap();
    // The crash: none of the store's closing (a last checkpoint) runs, and
    // sled's files are as they were before the writes.
    std::mem::forget(store);
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::rename(&snapshot, &db).unwrap();

    let store = SledStore::open(&db).unwrap();
    assert_eq!(store.installation_value("new", vec![8]).await.unwrap(), vec![7]);
    assert_eq!(store.installation_value("changed", vec![8]).await.unwrap(), vec![2]);
    assert_eq!(store.client("kept").await.unwrap().map(|c| c.status), Some(ClientStatus::Revoked));
    assert_eq!(store.client_last_used("kept").await.unwrap(), Some(1_700_000_005));
    assert_eq!(store.client("gone").await.unwrap(), None, "the deletion was replayed too");
    let kids: Vec<String> = store.keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    let mut expected = vec![sample_key(1).kid, sample_key(2).kid];
    expected.sort();
    expected.dedup();
    let mut kids_sorted = kids.clone();
    kids_sorted.sort();
    assert_eq!(kids_sorted, expected);
    let trail: Vec<(u64, String)> =
        store.audit_latest(10).await.unwrap().into_iter().map(|e| (e.seq, e.detail)).collect();
    assert_eq!(trail, [(1, "one".to_owned()), (2, "two".to_owned())]);
    assert!(store.is_access_token_denied("jti-1", 1_700_000_000).await.unwrap());
    // And the sequence goes on from the replayed trail.
    assert_eq!(store.append_audit(&event("three")).await.unwrap().seq, 3);
}

/// Audit numbers stay unique and gap-free under concurrent appends: each
/// takes the last number its commit sees, commits being serialised.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_audit_appends_get_distinct_numbers() {
    use tessera_shared::admin::{AuditEvent, AuditKind};
    let store = Arc::new(SledStore::temporary().unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let event = AuditEvent {
                    seq: 0,
                    at: 1_700_000_000,
                    kind: AuditKind::ClientCreated,
                    client_id: None,
                    detail: format!("{i}"),
                };
                store.append_audit(&event).await.unwrap().seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=16).collect::<Vec<u64>>());
}

/// `health` writes its probe through the journal, at most once a second
/// (a failed journal failing it is covered end to end, by
/// `journal_failure` in the e2e tests).
#[tokio::test]
async fn health_probes_the_journal_at_most_once_a_second() {
    let store = SledStore::temporary().unwrap();
    let before = store.journal.ticket_now().unwrap();
    store.health().await.unwrap();
    let after_first = store.journal.ticket_now().unwrap();
    assert!(after_first > before, "the first check wrote its probe");
    store.health().await.unwrap();
    assert_eq!(store.journal.ticket_now().unwrap(), after_first, "the second, within a second, wrote nothing");
    *store.last_health_probe.lock().unwrap() = Some(std::time::Instant::now() - std::time::Duration::from_secs(2));
    store.health().await.unwrap();
    assert!(store.journal.ticket_now().unwrap() > after_first, "a second later it writes again");
}
