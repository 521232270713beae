//! The key states and the schedule, as pure functions of `now`.

use tessera_shared::admin::KeyState;
use tessera_shared::jwk::{Algorithm, Jwk};

use super::*;

const T0: u64 = 1_000_000;
const TIMING: Timing = Timing { rotate_every: 3600, access_token_ttl: 300, jwks_max_age: 120 };

fn record(n: u8, created_at: u64) -> KeyRecord {
    let jwk = Jwk::ed25519(&[n; 32]).unwrap();
    KeyRecord {
        kid: jwk.kid.clone().unwrap(),
        alg: Algorithm::EdDSA,
        state: KeyState::Next,
        created_at,
        private_pkcs8: vec![n],
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

fn first() -> KeySet {
    KeySet::first(record(1, T0), record(2, T0), T0)
}

#[test]
fn a_rotation_waits_until_the_next_key_outlived_one_cache_interval() {
    let set = first();
    let ready = T0 + TIMING.jwks_max_age + 1;
    let refused = set.check_ready(ready - 1, &TIMING).unwrap_err();
    assert_eq!(refused.ready_at, ready);
    let message = refused.to_string();
    assert!(message.contains(&tessera_shared::utc::rfc3339(ready)), "a UTC time: {message}");
    assert!(!message.contains(&ready.to_string()), "no raw Unix seconds: {message}");
    let proof = set.check_ready(ready, &TIMING).unwrap();
    let set = set.rotate(proof, NextKey::new(record(3, ready)), &TIMING);
    assert_eq!(set.active().record().kid, record(2, T0).kid);
    assert_eq!(set.active().record().activated_at, Some(ready));
    assert_eq!(set.next().record().kid, record(3, T0).kid);
    let retiring = &set.retiring()[0].record();
    assert_eq!(retiring.state, KeyState::Retiring);
    assert_eq!(retiring.deactivated_at, Some(ready));
    assert_eq!(retiring.published_until, Some(ready + 300 + 120), "token TTL plus one cache interval");
    assert_eq!(set.published().count(), 3);
}

#[test]
fn the_plan_rotates_when_the_period_is_over_and_retires_when_publication_ends() {
    let set = first();
    assert!(plan(&set, T0 + 3599, &TIMING).is_empty());
    assert_eq!(plan(&set, T0 + 3600, &TIMING), Plan { rotate: true, retire: vec![] });
    let at = T0 + 3600;
    let proof = set.check_ready(at, &TIMING).unwrap();
    let set = set.rotate(proof, NextKey::new(record(3, at)), &TIMING);
    let old = record(1, T0).kid;
    assert!(plan(&set, at + 419, &TIMING).is_empty());
    assert_eq!(plan(&set, at + 420, &TIMING), Plan { rotate: false, retire: vec![old.clone()] });
    let set = set.retire_due(at + 420);
    let retired = set.retired()[0].record();
    assert_eq!(
        (retired.kid.as_str(), retired.state, retired.retired_at),
        (old.as_str(), KeyState::Retired, Some(at + 420))
    );
    assert!(retired.private_pkcs8.is_empty() && retired.sealed_pkcs8.is_none(), "private part wiped");
    assert!(set.published().all(|k| k.kid != old), "a retired key is not published");
}

#[test]
fn the_period_runs_from_activation_not_creation() {
    let set = first();
    let at = T0 + 10_000;
    let proof = set.check_ready(at, &TIMING).unwrap();
    let set = set.rotate(proof, NextKey::new(record(3, at)), &TIMING);
    // The new active key was created at T0 but activated at `at`.
    assert!(!plan(&set, at + 3599, &TIMING).rotate);
    // Its successor was created at `at`; ready after one cache interval.
    assert!(plan(&set, at + 3600, &TIMING).rotate);
}

#[test]
fn a_replaced_next_key_leaves_the_jwks_at_once() {
    let set = first().replace_next(NextKey::new(record(3, T0 + 5)), T0 + 5);
    assert_eq!(set.next().record().kid, record(3, 0).kid);
    let discarded = set.retired()[0].record();
    assert_eq!(discarded.kid, record(2, 0).kid);
    assert!(discarded.private_pkcs8.is_empty());
    assert_eq!(set.published().count(), 2);
    // The replacement is new: no rotation before it has been published long enough.
    assert!(set.check_ready(T0 + 5 + 120, &TIMING).is_err());
    assert!(set.check_ready(T0 + 5 + 121, &TIMING).is_ok());
}

#[test]
fn stored_records_must_hold_one_active_and_one_next_key() {
    let set = first();
    let records: Vec<KeyRecord> = set.records().cloned().collect();
    assert_eq!(KeySet::from_records(records.clone()), Ok(set));
    assert_eq!(KeySet::from_records(records[1..].to_vec()), Err("no active key"));
    assert_eq!(KeySet::from_records(records[..1].to_vec()), Err("no next key"));
    let mut two_active = records.clone();
    two_active.push(KeyRecord { state: KeyState::Active, ..record(9, T0) });
    assert_eq!(KeySet::from_records(two_active), Err("more than one active key"));
}

#[test]
fn a_scheduled_rotation_happens_at_the_next_keys_first_safe_second_and_survives_a_replacement() {
    let set = first();
    assert_eq!(set.scheduled_rotation(&TIMING), None);
    let set = set.schedule_rotation(T0 + 10).schedule_rotation(T0 + 20);
    let ready = T0 + TIMING.jwks_max_age + 1;
    assert_eq!(set.scheduled_rotation(&TIMING), Some(ready));
    assert_eq!(set.next().rotation_requested_at(), Some(T0 + 10), "the first request's time is kept");
    assert!(!plan(&set, ready - 1, &TIMING).rotate, "not before the next key is in every cached JWKS");
    assert!(plan(&set, ready, &TIMING).rotate, "long before the period is over");
    // An import replaces the next key: the request waits for the new one.
    let replaced = set.clone().replace_next(NextKey::new(record(4, T0 + 50)), T0 + 50);
    assert_eq!(replaced.scheduled_rotation(&TIMING), Some(T0 + 50 + TIMING.jwks_max_age + 1));
    assert!(!plan(&replaced, ready, &TIMING).rotate);
    // Performed, the request is gone with the next key's state.
    let proof = set.check_ready(ready, &TIMING).unwrap();
    let rotated = set.rotate(proof, NextKey::new(record(3, ready)), &TIMING);
    assert_eq!(rotated.scheduled_rotation(&TIMING), None);
    assert_eq!(rotated.active().record().rotation_requested_at, None);
}

#[test]
fn rotate_now_makes_the_next_key_sign_at_once_and_keeps_the_old_one_published() {
    let set = first();
    let set = set.rotate_now(T0 + 5, NextKey::new(record(3, T0 + 5)), &TIMING);
    assert_eq!(set.active().record().kid, record(2, T0).kid);
    assert_eq!(set.active().record().activated_at, Some(T0 + 5));
    assert_eq!(set.next().record().kid, record(3, T0).kid);
    assert_eq!(set.retiring()[0].record().kid, record(1, T0).kid);
    assert_eq!(set.published().count(), 3);
}

#[test]
fn revoking_takes_a_key_out_of_the_jwks_at_once() {
    let at = T0 + 3600;
    let set = first();
    let proof = set.check_ready(at, &TIMING).unwrap();
    let set = set.rotate(proof, NextKey::new(record(3, at)), &TIMING);
    let (old, active, next) = (record(1, T0).kid, record(2, T0).kid, record(3, T0).kid);

    // A retiring key: retired now, nothing else changes.
    let without_retiring = set.clone().revoke(&old, None, at + 1).unwrap();
    assert_eq!(without_retiring.state_of(&old), Some(KeyState::Retired));
    assert_eq!(without_retiring.retired()[0].record().retired_at, Some(at + 1));
    assert!(without_retiring.retired()[0].record().private_pkcs8.is_empty());
    assert_eq!(without_retiring.published().count(), 2);
    assert_eq!(without_retiring.active().record().kid, active);

    // The active key: the next key signs now, the replacement is next.
    assert_eq!(set.clone().revoke(&active, None, at + 1), Err(RevokeError::NoReplacement(active.clone())));
    let without_active = set.clone().revoke(&active, Some(NextKey::new(record(4, at + 1))), at + 1).unwrap();
    assert_eq!(without_active.active().record().kid, next);
    assert_eq!(without_active.active().record().activated_at, Some(at + 1));
    assert_eq!(without_active.next().record().kid, record(4, T0).kid);
    assert_eq!(without_active.state_of(&active), Some(KeyState::Retired));
    let published: Vec<&str> = without_active.published().map(|k| k.kid.as_str()).collect();
    assert!(!published.contains(&active.as_str()), "{published:?}");
    assert_eq!(published.len(), 3, "new active, new next, the old retiring key");

    // The next key: replaced, out of the JWKS.
    let without_next = set.clone().revoke(&next, Some(NextKey::new(record(5, at + 1))), at + 1).unwrap();
    assert_eq!(without_next.state_of(&next), Some(KeyState::Retired));
    assert_eq!(without_next.next().record().kid, record(5, T0).kid);

    // Retired and unknown keys are refused.
    assert_eq!(without_retiring.revoke(&old, None, at + 2), Err(RevokeError::AlreadyRetired(old.clone())));
    assert_eq!(set.revoke("nope", None, at + 2), Err(RevokeError::Unknown("nope".into())));
}
