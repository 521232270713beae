use super::*;
use crate::store::records::Digest32;

const CLIENT: &str = "oa2-client-id_owner";
const NOW: UnixTime = 1_000_000;
const FAMILY: [u8; 10] = [1; 10];
const SUCCESSOR: NewRefreshToken = NewRefreshToken { secret: [9; 16], issued_at: NOW, expires_at: NOW + 5000 };

/// The token of generation `generation` with random part `fill`.
fn token(generation: u32, fill: u8) -> RefreshToken {
    RefreshToken { family_id: FAMILY, generation, secret: [fill; 16] }
}

/// A family at generation 3 (its current token `token(3, 3)`), whose
/// previous token `token(2, 2)` was rotated at `NOW - 5`.
fn family() -> FamilyRecord {
    FamilyRecord {
        family_id: FAMILY,
        client_id: CLIENT.into(),
        scope: vec!["read".into(), "write".into()],
        created_at: NOW - 100,
        revoked_at: None,
        generation: 3,
        current: token(3, 3).digest(),
        issued_at: NOW - 5,
        expires_at: NOW + 1000,
        previous: Some(PreviousToken { generation: 2, digest: token(2, 2).digest(), rotated_at: NOW - 5 }),
        client_epoch: 4,
        dpop_jkt: None,
    }
}

fn by(client_id: &str) -> Presentation<'_> {
    Presentation { client_id, client_epoch: 4, now: NOW, reuse_grace: 0, requested_scope: None, dpop_jkt: None }
}

fn with_grace(grace: u64) -> Presentation<'static> {
    Presentation { reuse_grace: grace, ..by(CLIENT) }
}

/// The family revoked at `NOW`.
fn revoked(family: FamilyRecord) -> Decision {
    Decision { verdict: Verdict::RevokeFamily, write: Some(FamilyRecord { revoked_at: Some(NOW), ..family }) }
}

fn refused(refusal: Refusal) -> Decision {
    Decision { verdict: Verdict::Refuse(refusal), write: None }
}

/// The successor's digest at `generation`.
fn successor_digest(generation: u32) -> Digest32 {
    RefreshToken { family_id: FAMILY, generation, secret: SUCCESSOR.secret }.digest()
}

#[test]
fn the_current_token_rotates_to_the_next_generation() {
    let decision = decide(&token(3, 3), &family(), &SUCCESSOR, &by(CLIENT));
    assert_eq!(decision.verdict, Verdict::Rotate);
    let after = decision.write.clone().expect("a rotation writes the family");
    assert_eq!((after.generation, after.current), (4, successor_digest(4)));
    assert_eq!((after.issued_at, after.expires_at), (NOW, SUCCESSOR.expires_at));
    assert_eq!(after.previous, Some(PreviousToken { generation: 3, digest: token(3, 3).digest(), rotated_at: NOW }));
    // Nothing else changes: the family keeps its scope, epoch, binding.
    let unchanged = FamilyRecord {
        generation: 3,
        current: family().current,
        issued_at: family().issued_at,
        expires_at: family().expires_at,
        previous: family().previous,
        ..after.clone()
    };
    assert_eq!(unchanged, family());
    assert_eq!(decision.family_after(&family()), &after);
}

#[test]
fn another_clients_family_is_refused_without_revoking() {
    assert_eq!(decide(&token(3, 3), &family(), &SUCCESSOR, &by("oa2-client-id_thief")), refused(Refusal::OtherClient));
    // Even an old token: a thief cannot revoke the owner's family.
    assert_eq!(decide(&token(1, 1), &family(), &SUCCESSOR, &by("oa2-client-id_thief")), refused(Refusal::OtherClient));
}

#[test]
fn a_token_naming_another_family_is_refused() {
    let other = RefreshToken { family_id: [2; 10], ..token(3, 3) };
    assert_eq!(decide(&other, &family(), &SUCCESSOR, &by(CLIENT)), refused(Refusal::OtherClient));
}

#[test]
fn a_revoked_family_refuses_and_stays_as_it_was() {
    let revoked_family = FamilyRecord { revoked_at: Some(NOW - 1), ..family() };
    let decision = decide(&token(3, 3), &revoked_family, &SUCCESSOR, &by(CLIENT));
    assert_eq!(decision, refused(Refusal::FamilyRevoked));
    assert_eq!(decision.family_after(&revoked_family), &revoked_family);
    // Even an old token of a revoked family changes nothing more.
    assert_eq!(decide(&token(1, 1), &revoked_family, &SUCCESSOR, &by(CLIENT)), refused(Refusal::FamilyRevoked));
}

#[test]
fn a_family_older_than_its_clients_epoch_is_dead() {
    let request = Presentation { client_epoch: 5, ..by(CLIENT) };
    assert_eq!(decide(&token(3, 3), &family(), &SUCCESSOR, &request), refused(Refusal::FamilyRevoked));
    assert_eq!(decide(&token(1, 1), &family(), &SUCCESSOR, &request), refused(Refusal::FamilyRevoked));
}

#[test]
fn expiry_is_exclusive() {
    let expired = FamilyRecord { expires_at: NOW, ..family() };
    assert_eq!(decide(&token(3, 3), &expired, &SUCCESSOR, &by(CLIENT)), refused(Refusal::Expired));
    let last_second = FamilyRecord { expires_at: NOW + 1, ..family() };
    assert_eq!(decide(&token(3, 3), &last_second, &SUCCESSOR, &by(CLIENT)).verdict, Verdict::Rotate);
}

#[test]
fn every_older_generation_is_reuse() {
    for generation in [0, 1] {
        let decision = decide(&token(generation, generation as u8), &family(), &SUCCESSOR, &with_grace(10_000));
        assert_eq!(decision, revoked(family()), "generation {generation}");
    }
}

#[test]
fn the_previous_token_after_the_grace_is_reuse() {
    // Rotated at NOW - 5: a grace of 5 has run out at NOW.
    assert_eq!(decide(&token(2, 2), &family(), &SUCCESSOR, &with_grace(5)), revoked(family()));
    assert_eq!(decide(&token(2, 2), &family(), &SUCCESSOR, &with_grace(0)), revoked(family()));
}

#[test]
fn the_previous_token_within_the_grace_rotates_again_keeping_the_first_rotation_time() {
    let decision = decide(&token(2, 2), &family(), &SUCCESSOR, &with_grace(10));
    assert_eq!(decision.verdict, Verdict::Rotate);
    let after = decision.write.expect("a rotation");
    assert_eq!((after.generation, after.current), (4, successor_digest(4)), "the unused successor is superseded");
    assert_eq!(after.previous, family().previous, "the grace runs from the first rotation, never stretched");
}

#[test]
fn the_successor_superseded_by_a_grace_retry_is_reuse() {
    let retried = decide(&token(2, 2), &family(), &SUCCESSOR, &with_grace(10)).write.expect("the retry rotates");
    // Generation 3 was handed out and never used; whoever presents it now
    // holds a copy.
    assert_eq!(decide(&token(3, 3), &retried, &SUCCESSOR, &with_grace(10)), revoked(retried.clone()));
    // The retry's own successor is current.
    let next = RefreshToken { family_id: FAMILY, generation: 4, secret: SUCCESSOR.secret };
    assert_eq!(decide(&next, &retried, &SUCCESSOR, &with_grace(10)).verdict, Verdict::Rotate);
}

#[test]
fn the_previous_token_once_its_successor_was_used_is_reuse() {
    let used = decide(&token(3, 3), &family(), &SUCCESSOR, &with_grace(10)).write.expect("rotates");
    // Generation 2 is now older than the previous one (3).
    assert_eq!(decide(&token(2, 2), &used, &SUCCESSOR, &with_grace(10)), revoked(used));
}

#[test]
fn an_altered_token_is_refused_and_changes_nothing() {
    // The current generation, another random part.
    assert_eq!(decide(&token(3, 7), &family(), &SUCCESSOR, &with_grace(10)), refused(Refusal::NotIssued));
    // The previous generation, another random part: not a retry, not reuse.
    assert_eq!(decide(&token(2, 7), &family(), &SUCCESSOR, &with_grace(10)), refused(Refusal::NotIssued));
    // A generation the family never reached.
    assert_eq!(decide(&token(4, 3), &family(), &SUCCESSOR, &by(CLIENT)), refused(Refusal::NotIssued));
    assert_eq!(decide(&token(u32::MAX, 3), &family(), &SUCCESSOR, &by(CLIENT)), refused(Refusal::NotIssued));
}

#[test]
fn a_bound_family_needs_its_key_before_anything_else() {
    let bound = FamilyRecord { dpop_jkt: Some([7; 32]), ..family() };
    let proving = |jkt| Presentation { dpop_jkt: jkt, ..with_grace(0) };
    // No proof, or another key: refused, and even an old generation (which
    // would be reuse) revokes nothing.
    for jkt in [None, Some([8; 32])] {
        assert_eq!(decide(&token(3, 3), &bound, &SUCCESSOR, &proving(jkt)), refused(Refusal::DpopKeyMismatch));
        assert_eq!(decide(&token(1, 1), &bound, &SUCCESSOR, &proving(jkt)), refused(Refusal::DpopKeyMismatch));
    }
    // The key: the usual rules, and the binding is carried by rotation.
    let decision = decide(&token(3, 3), &bound, &SUCCESSOR, &proving(Some([7; 32])));
    assert_eq!(decision.verdict, Verdict::Rotate);
    assert_eq!(decision.write.expect("rotates").dpop_jkt, Some([7; 32]));
    assert_eq!(decide(&token(1, 1), &bound, &SUCCESSOR, &proving(Some([7; 32]))), revoked(bound));
    // An unbound family does not care about a proof.
    assert_eq!(decide(&token(3, 3), &family(), &SUCCESSOR, &proving(Some([8; 32]))).verdict, Verdict::Rotate);
}

#[test]
fn scope_may_narrow_but_not_widen() {
    let narrow = vec!["read".to_string()];
    let request = Presentation { requested_scope: Some(&narrow), ..by(CLIENT) };
    let decision = decide(&token(3, 3), &family(), &SUCCESSOR, &request);
    assert_eq!(decision.verdict, Verdict::Rotate);
    assert_eq!(decision.write.expect("rotates").scope, family().scope, "the family keeps its scope (RFC 6749 §6)");
    let wide = vec!["read".to_string(), "admin".to_string()];
    let request = Presentation { requested_scope: Some(&wide), ..by(CLIENT) };
    assert_eq!(decide(&token(3, 3), &family(), &SUCCESSOR, &request), refused(Refusal::ScopeWidened));
}

#[test]
fn reuse_is_detected_before_scope_is_checked() {
    let wide = vec!["admin".to_string()];
    let request = Presentation { requested_scope: Some(&wide), ..by(CLIENT) };
    assert_eq!(decide(&token(1, 1), &family(), &SUCCESSOR, &request), revoked(family()));
}

#[test]
fn every_refusal_maps_to_one_oauth_error() {
    use tessera_shared::wire::ErrorCode;
    assert!(Verdict::Rotate.error().is_none());
    for (verdict, code) in [
        (Verdict::Refuse(Refusal::OtherClient), ErrorCode::InvalidGrant),
        (Verdict::Refuse(Refusal::DpopKeyMismatch), ErrorCode::InvalidDpopProof),
        (Verdict::Refuse(Refusal::FamilyRevoked), ErrorCode::InvalidGrant),
        (Verdict::Refuse(Refusal::Expired), ErrorCode::InvalidGrant),
        (Verdict::Refuse(Refusal::NotIssued), ErrorCode::InvalidGrant),
        (Verdict::Refuse(Refusal::ScopeWidened), ErrorCode::InvalidScope),
        (Verdict::RevokeFamily, ErrorCode::InvalidGrant),
    ] {
        assert_eq!(verdict.error().map(|e| e.code()), Some(code), "{verdict:?}");
    }
    assert_eq!(ErrorCode::InvalidDpopProof.as_str(), "invalid_dpop_proof");
}
