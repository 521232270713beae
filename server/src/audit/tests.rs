use std::sync::Arc;

use tessera_shared::admin::AuditKind;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::testing::ManualClock;
use crate::store::sled::SledStore;

const T: u64 = 1_800_000_000;

fn audit() -> (Audit, Arc<ManualClock>) {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let clock = Arc::new(ManualClock::at(T));
    (Audit::new(store, clock.clone()), clock)
}

#[tokio::test]
async fn recorded_events_are_timed_numbered_and_paged() {
    let (audit, clock) = audit();
    let first = audit.record(AuditEntry::client(AuditKind::ClientCreated, "c1", "created")).await.unwrap();
    clock.advance(5);
    let second = audit.record(AuditEntry::global(AuditKind::KeyRotated, "rotated")).await.unwrap();
    assert_eq!((first.at, second.at), (T, T + 5));
    assert!(second.seq > first.seq);
    assert_eq!(second.client_id, None);
    assert_eq!(audit.page(None, 1).await.unwrap(), std::slice::from_ref(&second));
    assert_eq!(audit.page(Some(first.seq), 10).await.unwrap(), std::slice::from_ref(&second));
    assert_eq!(audit.page(Some(0), 10).await.unwrap(), [first, second]);
}

#[tokio::test]
async fn the_purge_applies_count_and_age() {
    let (audit, clock) = audit();
    for n in 0..30 {
        audit.record(AuditEntry::global(AuditKind::KeyRotated, format!("{n}"))).await.unwrap();
        clock.advance(10);
    }
    let shutdown = CancellationToken::new();
    // Count first: 20 kept.
    let removed = audit.purge(Retention { max_events: 20, max_age_seconds: 10_000 }, &shutdown).await.unwrap();
    assert_eq!(removed, 10);
    // Age: now is T+300; events older than 100 s (at < T+200) go.
    let removed = audit.purge(Retention { max_events: 20, max_age_seconds: 100 }, &shutdown).await.unwrap();
    assert_eq!(removed, 10);
    let left = audit.page(None, 100).await.unwrap();
    assert_eq!(left.len(), 10);
    assert_eq!(left[0].detail, "20");
}
