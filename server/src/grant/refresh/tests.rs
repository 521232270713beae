use super::*;

const CLIENT: &str = "oa2-client-id_owner";
const NOW: UnixTime = 1_000_000;

fn family() -> FamilyRecord {
    FamilyRecord {
        family_id: [1; 16],
        client_id: CLIENT.into(),
        scope: vec!["read".into(), "write".into()],
        created_at: NOW - 100,
        revoked_at: None,
        current: [2; 32],
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

fn rotated(at: UnixTime, successor: [u8; 32]) -> RefreshRecord {
    RefreshRecord { state: RefreshState::Rotated { at, successor }, ..active() }
}

fn by(client_id: &str) -> Presentation<'_> {
    Presentation { client_id, now: NOW, reuse_grace: 0, requested_scope: None }
}

#[test]
fn the_current_token_rotates() {
    assert_eq!(judge(&active(), &family(), &by(CLIENT)), Verdict::Rotate);
}

#[test]
fn another_clients_token_is_refused_without_revoking() {
    assert_eq!(judge(&active(), &family(), &by("oa2-client-id_thief")), Verdict::Refuse(Refusal::OtherClient));
}

#[test]
fn a_revoked_family_refuses() {
    let revoked = FamilyRecord { revoked_at: Some(NOW - 1), ..family() };
    assert_eq!(judge(&active(), &revoked, &by(CLIENT)), Verdict::Refuse(Refusal::FamilyRevoked));
}

#[test]
fn expiry_is_exclusive() {
    let token = RefreshRecord { expires_at: NOW, ..active() };
    assert_eq!(judge(&token, &family(), &by(CLIENT)), Verdict::Refuse(Refusal::Expired));
    let token = RefreshRecord { expires_at: NOW + 1, ..active() };
    assert_eq!(judge(&token, &family(), &by(CLIENT)), Verdict::Rotate);
}

#[test]
fn reuse_revokes_the_family() {
    assert_eq!(judge(&rotated(NOW - 5, [2; 32]), &family(), &by(CLIENT)), Verdict::RevokeFamily);
}

#[test]
fn reuse_within_grace_rotates_again_while_the_successor_is_unused() {
    let request = Presentation { reuse_grace: 10, ..by(CLIENT) };
    assert_eq!(judge(&rotated(NOW - 5, [2; 32]), &family(), &request), Verdict::Rotate);
    // The grace has run out.
    assert_eq!(judge(&rotated(NOW - 10, [2; 32]), &family(), &request), Verdict::RevokeFamily);
    // The successor has itself been rotated: this is a second client.
    assert_eq!(judge(&rotated(NOW - 5, [9; 32]), &family(), &request), Verdict::RevokeFamily);
}

#[test]
fn scope_may_narrow_but_not_widen() {
    let narrow = vec!["read".to_string()];
    let request = Presentation { requested_scope: Some(&narrow), ..by(CLIENT) };
    assert_eq!(judge(&active(), &family(), &request), Verdict::Rotate);
    let wide = vec!["read".to_string(), "admin".to_string()];
    let request = Presentation { requested_scope: Some(&wide), ..by(CLIENT) };
    assert_eq!(judge(&active(), &family(), &request), Verdict::Refuse(Refusal::ScopeWidened));
}

#[test]
fn reuse_is_detected_before_scope_is_checked() {
    let wide = vec!["admin".to_string()];
    let request = Presentation { requested_scope: Some(&wide), ..by(CLIENT) };
    assert_eq!(judge(&rotated(NOW - 1, [2; 32]), &family(), &request), Verdict::RevokeFamily);
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

#[test]
fn a_superseded_token_is_always_reuse() {
    let token = RefreshRecord { state: RefreshState::Superseded { at: NOW - 1 }, ..active() };
    let request = Presentation { reuse_grace: 100, ..by(CLIENT) };
    assert_eq!(judge(&token, &family(), &request), Verdict::RevokeFamily);
}
