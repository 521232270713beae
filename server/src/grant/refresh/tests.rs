use super::*;

const CLIENT: &str = "oa2-client-id_owner";
const NOW: UnixTime = 1_000_000;
/// The digest of the presented token in these tests; the family's current
/// token unless a test says otherwise.
const PRESENTED: Digest32 = [2; 32];
const SUCCESSOR: NewRefreshToken = NewRefreshToken { digest: [9; 32], issued_at: NOW, expires_at: NOW + 5000 };

fn family() -> FamilyRecord {
    FamilyRecord {
        family_id: [1; 16],
        client_id: CLIENT.into(),
        scope: vec!["read".into(), "write".into()],
        created_at: NOW - 100,
        revoked_at: None,
        current: PRESENTED,
        expires_at: NOW + 1000,
    }
}

fn active() -> RefreshRecord {
    RefreshRecord {
        family_id: [1; 16],
        client_id: CLIENT.into(),
        issued_at: NOW - 100,
        expires_at: NOW + 1000,
        state: RefreshState::Active,
    }
}

fn rotated(at: UnixTime, successor: Digest32) -> RefreshRecord {
    RefreshRecord { state: RefreshState::Rotated { at, successor }, ..active() }
}

fn by(client_id: &str) -> Presentation<'_> {
    Presentation { client_id, now: NOW, reuse_grace: 0, requested_scope: None }
}

/// [`decide`] for the presented token `token` of `family`.
fn decide_on(token: &RefreshRecord, family: &FamilyRecord, request: &Presentation<'_>) -> Decision {
    decide(&PRESENTED, token, family, &SUCCESSOR, request)
}

fn verdict(token: &RefreshRecord, family: &FamilyRecord, request: &Presentation<'_>) -> Verdict {
    decide_on(token, family, request).verdict
}

/// The family revoked at `NOW`.
fn revoked(family: FamilyRecord) -> Decision {
    Decision {
        verdict: Verdict::RevokeFamily,
        writes: Writes::Family(FamilyRecord { revoked_at: Some(NOW), ..family }),
    }
}

fn refused(refusal: Refusal) -> Decision {
    Decision { verdict: Verdict::Refuse(refusal), writes: Writes::Nothing }
}

#[test]
fn the_current_token_rotates_to_the_successor() {
    let decision = decide_on(&active(), &family(), &by(CLIENT));
    assert_eq!(decision.verdict, Verdict::Rotate);
    let Writes::Rotate { presented, successor_digest, successor, family: after } = &decision.writes else {
        panic!("a rotation writes the rotated token, its successor and the family: {decision:?}")
    };
    assert_eq!(presented.state, RefreshState::Rotated { at: NOW, successor: SUCCESSOR.digest });
    assert_eq!((presented.issued_at, presented.expires_at), (active().issued_at, active().expires_at));
    assert_eq!(*successor_digest, SUCCESSOR.digest);
    assert_eq!(*successor, SUCCESSOR.active_record(&family()));
    assert_eq!((after.current, after.expires_at), (SUCCESSOR.digest, SUCCESSOR.expires_at));
    assert_eq!(FamilyRecord { current: PRESENTED, expires_at: NOW + 1000, ..after.clone() }, family());
    assert_eq!(decision.family_after(&family()), after);
}

#[test]
fn another_clients_token_is_refused_without_revoking() {
    assert_eq!(decide_on(&active(), &family(), &by("oa2-client-id_thief")), refused(Refusal::OtherClient));
}

#[test]
fn a_revoked_family_refuses_and_stays_as_it_was() {
    let revoked_family = FamilyRecord { revoked_at: Some(NOW - 1), ..family() };
    let decision = decide_on(&active(), &revoked_family, &by(CLIENT));
    assert_eq!(decision, refused(Refusal::FamilyRevoked));
    assert_eq!(decision.family_after(&revoked_family), &revoked_family);
    // Even an old token of a revoked family changes nothing more.
    assert_eq!(decide_on(&rotated(NOW - 5, [7; 32]), &revoked_family, &by(CLIENT)), refused(Refusal::FamilyRevoked));
}

#[test]
fn expiry_is_exclusive() {
    let token = RefreshRecord { expires_at: NOW, ..active() };
    assert_eq!(decide_on(&token, &family(), &by(CLIENT)), refused(Refusal::Expired));
    let token = RefreshRecord { expires_at: NOW + 1, ..active() };
    assert_eq!(verdict(&token, &family(), &by(CLIENT)), Verdict::Rotate);
}

#[test]
fn reuse_revokes_the_family() {
    let current = FamilyRecord { current: [3; 32], ..family() };
    assert_eq!(decide_on(&rotated(NOW - 5, [3; 32]), &current, &by(CLIENT)), revoked(current));
}

#[test]
fn every_older_generation_is_reuse() {
    // Three rotations back: the token's successor is long gone.
    let current = FamilyRecord { current: [5; 32], ..family() };
    let request = Presentation { reuse_grace: 10_000, ..by(CLIENT) };
    assert_eq!(decide_on(&rotated(NOW - 3, [4; 32]), &current, &request), revoked(current));
}

#[test]
fn reuse_within_grace_rotates_again_while_the_successor_is_unused() {
    let current = FamilyRecord { current: [3; 32], ..family() };
    let request = Presentation { reuse_grace: 10, ..by(CLIENT) };
    let decision = decide_on(&rotated(NOW - 5, [3; 32]), &current, &request);
    assert_eq!(decision.verdict, Verdict::Rotate);
    let Writes::Rotate { presented, family: after, .. } = &decision.writes else { panic!("{decision:?}") };
    // The retry keeps the first rotation time: the grace cannot be stretched.
    assert_eq!(presented.state, RefreshState::Rotated { at: NOW - 5, successor: SUCCESSOR.digest });
    assert_eq!(after.current, SUCCESSOR.digest, "the unused successor is no longer current");
    // The grace has run out.
    assert_eq!(decide_on(&rotated(NOW - 10, [3; 32]), &current, &request), revoked(current.clone()));
    // The successor has itself been rotated: this is a second client.
    assert_eq!(decide_on(&rotated(NOW - 5, [8; 32]), &current, &request), revoked(current));
}

#[test]
fn the_successor_superseded_by_a_grace_retry_is_reuse() {
    // The retry above made another token current; the first successor was
    // never used, and whoever presents it now holds a copy.
    let current = FamilyRecord { current: [8; 32], ..family() };
    let request = Presentation { reuse_grace: 100, ..by(CLIENT) };
    assert_eq!(decide_on(&active(), &current, &request), revoked(current.clone()));
    // So is a token that an earlier version stored as superseded.
    let token = RefreshRecord { state: RefreshState::Superseded { at: NOW - 1 }, ..active() };
    assert_eq!(decide_on(&token, &family(), &request), revoked(family()));
}

#[test]
fn scope_may_narrow_but_not_widen() {
    let narrow = vec!["read".to_string()];
    let request = Presentation { requested_scope: Some(&narrow), ..by(CLIENT) };
    let decision = decide_on(&active(), &family(), &request);
    assert_eq!(decision.verdict, Verdict::Rotate);
    let Writes::Rotate { family: after, .. } = &decision.writes else { panic!("{decision:?}") };
    assert_eq!(after.scope, family().scope, "the family keeps its original scope (RFC 6749 §6)");
    let wide = vec!["read".to_string(), "admin".to_string()];
    let request = Presentation { requested_scope: Some(&wide), ..by(CLIENT) };
    assert_eq!(decide_on(&active(), &family(), &request), refused(Refusal::ScopeWidened));
}

#[test]
fn reuse_is_detected_before_scope_is_checked() {
    let wide = vec!["admin".to_string()];
    let request = Presentation { requested_scope: Some(&wide), ..by(CLIENT) };
    let current = FamilyRecord { current: [3; 32], ..family() };
    assert_eq!(decide_on(&rotated(NOW - 1, [3; 32]), &current, &request), revoked(current));
}

#[test]
fn every_refusal_maps_to_one_oauth_error() {
    use tessera_shared::wire::ErrorCode;
    assert!(Verdict::Rotate.error().is_none());
    for (verdict, code) in [
        (Verdict::Refuse(Refusal::OtherClient), ErrorCode::InvalidGrant),
        (Verdict::Refuse(Refusal::FamilyRevoked), ErrorCode::InvalidGrant),
        (Verdict::Refuse(Refusal::Expired), ErrorCode::InvalidGrant),
        (Verdict::Refuse(Refusal::ScopeWidened), ErrorCode::InvalidScope),
        (Verdict::RevokeFamily, ErrorCode::InvalidGrant),
    ] {
        assert_eq!(verdict.error().map(|e| e.code()), Some(code), "{verdict:?}");
    }
}
