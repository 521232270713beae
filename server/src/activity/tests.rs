use std::sync::Arc;

use tessera_shared::admin::AuditKind;

use super::*;
use crate::clock::testing::ManualClock;
use crate::store::Store;
use crate::store::sled::SledStore;

const T: u64 = 1_800_000_000;
const A: &str = "oa2-client-id_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn activity() -> (Activity, Arc<ManualClock>) {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(T));
    let audit = Audit::new(store, clock.clone());
    let policy = BurstPolicy { window: 60, per_client: 3, total: 100, max_tracked: 16 };
    (Activity::new(audit, clock.clone(), policy), clock)
}

#[tokio::test]
async fn counters_count_and_start_at_zero() {
    let (activity, _) = activity();
    assert_eq!(activity.stats(), Stats { started_at: T, ..Stats::default() });
    activity.token_issued();
    activity.token_issued();
    activity.token_refreshed();
    activity.authentication_failed("nonsense", false).await;
    let stats = activity.stats();
    assert_eq!((stats.tokens_issued, stats.tokens_refreshed, stats.failed_authentications), (2, 1, 1));
}

#[tokio::test]
async fn a_burst_of_failures_records_one_audit_event() {
    let (activity, clock) = activity();
    for _ in 0..7 {
        activity.authentication_failed(A, true).await;
        clock.advance(1);
    }
    let events = activity.audit().page(None, 100).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, AuditKind::AuthFailureBurst);
    assert_eq!(events[0].client_id.as_deref(), Some(A));
    assert_eq!(events[0].at, T + 2);
    assert!(events[0].detail.contains("3 failed authentications"), "{}", events[0].detail);
}

#[tokio::test]
async fn malformed_ids_are_not_tracked_per_client() {
    let (activity, _) = activity();
    for _ in 0..5 {
        activity.authentication_failed("not-an-id", false).await;
    }
    assert!(activity.audit().page(None, 100).await.unwrap().is_empty());
    assert_eq!(activity.stats().failed_authentications, 5);
}

/// Issue 13, item 4: failures with made-up, well-formed client IDs make no
/// per-client events (an outsider could otherwise write one event per ID
/// and flush the trail); they count toward the one aggregate burst.
#[tokio::test]
async fn unknown_client_ids_count_only_toward_the_aggregate_burst() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(T));
    let policy = BurstPolicy { window: 60, per_client: 3, total: 40, max_tracked: 16 };
    let activity = Activity::new(Audit::new(store, clock.clone()), clock, policy);
    for i in 0..10 {
        let made_up = format!("oa2-client-id_{i:0>32}");
        for _ in 0..4 {
            activity.authentication_failed(&made_up, false).await;
        }
    }
    let events = activity.audit().page(None, 100).await.unwrap();
    assert_eq!(events.len(), 1, "one aggregate event, none per made-up ID: {events:?}");
    assert_eq!(events[0].client_id, None);
    assert!(events[0].detail.contains("40 failed client authentications"), "{}", events[0].detail);
    assert_eq!(activity.stats().failed_authentications, 40);
}
