use super::*;

const T: u64 = 1_800_000_000;
const A: &str = "oa2-client-id_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "oa2-client-id_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn detector() -> BurstDetector {
    BurstDetector::new(BurstPolicy { window: 60, per_client: 3, total: 5, max_tracked: 2 })
}

#[test]
fn one_event_per_client_per_window_not_one_per_failure() {
    let d = detector();
    assert!(d.failure(Some(A), T).is_empty());
    assert!(d.failure(Some(A), T + 1).is_empty());
    assert_eq!(d.failure(Some(A), T + 2), [Burst::Client { client_id: A.into(), failures: 3, window: 60 }]);
    assert!(d.failure(Some(A), T + 3).is_empty(), "the fourth failure adds no event");
    // The total reaches 5 on the next failure, once.
    assert_eq!(d.failure(Some(B), T + 4), [Burst::Total { failures: 5, window: 60 }]);
    assert!(d.failure(Some(B), T + 5).is_empty());
}

#[test]
fn a_new_window_counts_afresh() {
    let d = detector();
    for s in 0..3 {
        d.failure(Some(A), T + s);
    }
    assert!(d.failure(Some(A), T + 60).is_empty(), "first failure of the next window");
    assert!(d.failure(Some(A), T + 61).is_empty());
    assert_eq!(d.failure(Some(A), T + 62).len(), 1);
}

#[test]
fn failures_spread_out_never_burst() {
    let d = detector();
    for n in 0..20 {
        assert!(d.failure(Some(A), T + n * 30).is_empty(), "failure {n}");
    }
}

#[test]
fn untracked_ids_still_count_toward_the_total() {
    let d = detector();
    let c = "oa2-client-id_cccccccccccccccccccccccccccccccc";
    d.failure(Some(A), T);
    d.failure(Some(B), T);
    // A third ID is beyond max_tracked: counted in the total only.
    d.failure(Some(c), T);
    d.failure(Some(c), T);
    assert_eq!(d.failure(Some(c), T), [Burst::Total { failures: 5, window: 60 }]);
    assert!(d.failure(None, T).is_empty());
}

#[test]
fn a_clock_going_backwards_starts_a_new_window() {
    let d = detector();
    d.failure(Some(A), T + 100);
    d.failure(Some(A), T + 100);
    assert!(d.failure(Some(A), T).is_empty(), "counted in a fresh window");
}
