//! The state machine driven by hand-made events.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tessera_shared::admin::{
    AuditEvent, AuditKind, ClientCredentials, ClientInfo, ClientStatus, KeyInfo, KeyState, Stats,
};

use super::*;
use crate::console::app::SortColumn;

pub fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn chars(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| update(app, key(KeyCode::Char(c)))).collect()
}

pub fn client(n: u8, name: &str) -> ClientInfo {
    ClientInfo {
        client_id: format!("oa2-client-id_{}", char::from(b'a' + n).to_string().repeat(32)),
        name: name.into(),
        status: ClientStatus::Active,
        scopes: vec!["read".into()],
        refresh_tokens: true,
        created_at: 1_800_000_000 + u64::from(n),
        last_used_at: None,
        secret_set_at: 1_800_000_000,
        previous_secret_valid_until: None,
        secret_expires_at: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        active_refresh_families: u64::from(n),
        auth_method: tessera_shared::admin::AuthMethod::ClientSecret,
        key_thumbprints: Vec::new(),
    }
}

fn stats(issued: u64) -> Stats {
    Stats { started_at: 1, tokens_issued: issued, tokens_refreshed: 0, failed_authentications: 0 }
}

pub fn snapshot(clients: Vec<ClientInfo>) -> Snapshot {
    Snapshot { clients: Some(clients), keys: Some(Vec::new()), stats: stats(0), audit: Vec::new() }
}

fn unreachable() -> Failure {
    Failure { unreachable: true, message: "tessera-server is not running".into() }
}

/// An app that has loaded `clients`.
pub fn loaded(clients: Vec<ClientInfo>) -> App {
    let mut app = App::new("/tmp/admin.sock", true);
    update(&mut app, Event::Tick { now: 1_800_000_100 });
    update(&mut app, Event::Reply(Reply::Polled(Ok(snapshot(clients)))));
    app
}

#[test]
fn ticks_poll_once_at_a_time_and_fetch_everything_first() {
    let mut app = App::new("s", true);
    let effects = update(&mut app, Event::Tick { now: 10 });
    assert_eq!(effects, [Effect::Send(Request::Poll { full: true, audit_after: None })]);
    assert!(update(&mut app, Event::Tick { now: 11 }).is_empty(), "one poll in flight at a time");
    update(&mut app, Event::Reply(Reply::Polled(Ok(snapshot(vec![client(0, "a")])))));
    assert_eq!(app.connection, Connection::Online);
    assert_eq!(app.selected.as_deref(), Some(app.clients[0].client_id.as_str()), "first row selected");
    assert!(matches!(update(&mut app, Event::Tick { now: 12 }).as_slice(), [Effect::Send(Request::Poll { .. })]));
}

#[test]
fn an_unreachable_server_shows_offline_keeps_data_and_recovers() {
    let mut app = loaded(vec![client(0, "a")]);
    update(&mut app, Event::Tick { now: 500 });
    update(&mut app, Event::Reply(Reply::Polled(Err(unreachable()))));
    let Connection::Offline { since, .. } = &app.connection else { panic!("{:?}", app.connection) };
    assert_eq!(*since, Some(500));
    assert_eq!(app.clients.len(), 1, "the last data stays");
    // Still offline a second later: `since` does not move.
    update(&mut app, Event::Tick { now: 501 });
    update(&mut app, Event::Reply(Reply::Polled(Err(unreachable()))));
    assert!(matches!(app.connection, Connection::Offline { since: Some(500), .. }));
    // Back: online, and the next poll fetches everything.
    update(&mut app, Event::Tick { now: 502 });
    update(&mut app, Event::Reply(Reply::Polled(Ok(snapshot(vec![client(0, "a"), client(1, "b")])))));
    assert_eq!(app.connection, Connection::Online);
    assert_eq!(app.clients.len(), 2);
    let effects = update(&mut app, Event::Tick { now: 503 });
    assert!(matches!(effects.as_slice(), [Effect::Send(Request::Poll { full: true, .. })]));
}

#[test]
fn creating_a_client_by_typing() {
    let mut app = loaded(vec![]);
    update(&mut app, key(KeyCode::Char('n')));
    assert!(matches!(app.modal, Some(Modal::Create(_))));
    // An empty name is refused without asking the server.
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    let Some(Modal::Create(form)) = &app.modal else { panic!() };
    assert!(form.error.is_some());
    chars(&mut app, "billing job");
    update(&mut app, key(KeyCode::Tab));
    chars(&mut app, "read  write");
    update(&mut app, key(KeyCode::Tab));
    update(&mut app, key(KeyCode::Char(' ')));
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        effects,
        [Effect::Send(Request::Create(tessera_shared::admin::CreateClient {
            name: "billing job".into(),
            scopes: vec!["read".into(), "write".into()],
            refresh_tokens: false,
            secret_ttl_seconds: None,
            access_token_ttl_seconds: None,
            audiences: Vec::new(),
            require_dpop: false,
            public_keys: Vec::new(),
        }))]
    );
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty(), "no second submission while busy");

    let creds = ClientCredentials {
        client_id: client(3, "x").client_id,
        client_secret: "S".repeat(40),
        name: "billing job".into(),
        scopes: vec![],
        refresh_tokens: false,
        previous_secret_valid_until: None,
        secret_expires_at: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        auth_method: tessera_shared::admin::AuthMethod::ClientSecret,
        key_thumbprints: Vec::new(),
    };
    update(&mut app, Event::Reply(Reply::Created(Ok(creds.clone()))));
    let Some(Modal::Secret(shown)) = &app.modal else { panic!("{:?}", app.modal) };
    assert_eq!(
        (shown.client_id.as_str(), shown.client_secret.as_str()),
        (creds.client_id.as_str(), "S".repeat(40).as_str())
    );
    assert_eq!(update(&mut app, key(KeyCode::Char('c'))), [Effect::Copy("S".repeat(40))]);
    assert_eq!(update(&mut app, key(KeyCode::Char('i'))), [Effect::Copy(creds.client_id.clone())]);
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.modal, None, "the secret is gone from the state once closed");
    assert_eq!(app.selected.as_deref(), Some(creds.client_id.as_str()), "the new client is selected");
}

/// Issue 16: the create form offers "require DPoP", reached with Tab.
#[test]
fn the_create_form_can_require_dpop() {
    let mut app = loaded(vec![]);
    update(&mut app, key(KeyCode::Char('n')));
    chars(&mut app, "bound");
    for _ in 0..3 {
        update(&mut app, key(KeyCode::Tab));
    }
    let Some(Modal::Create(form)) = &app.modal else { panic!("{:?}", app.modal) };
    assert_eq!(form.focus, CreateField::Dpop);
    update(&mut app, key(KeyCode::Char(' ')));
    let effects = update(&mut app, key(KeyCode::Enter));
    let [Effect::Send(Request::Create(request))] = effects.as_slice() else { panic!("{effects:?}") };
    assert!(request.require_dpop && request.refresh_tokens, "{request:?}");
}

#[test]
fn a_refused_create_keeps_the_form_with_the_reason() {
    let mut app = loaded(vec![]);
    update(&mut app, key(KeyCode::Char('n')));
    chars(&mut app, "x");
    update(&mut app, key(KeyCode::Enter));
    let refused = Failure { unreachable: false, message: "a scope must be printable".into() };
    update(&mut app, Event::Reply(Reply::Created(Err(refused))));
    let Some(Modal::Create(form)) = &app.modal else { panic!() };
    assert_eq!(form.error.as_deref(), Some("a scope must be printable"));
    assert!(!form.busy);
    assert_eq!(form.name, "x", "what was typed stays");
}

#[test]
fn destructive_actions_ask_first() {
    let mut app = loaded(vec![client(0, "a")]);
    let id = app.clients[0].client_id.clone();
    for (k, request) in [
        ('x', Request::Revoke(id.clone())),
        ('d', Request::Delete(id.clone())),
        ('f', Request::RevokeFamilies(id.clone())),
    ] {
        assert!(update(&mut app, key(KeyCode::Char(k))).is_empty(), "{k} alone does nothing yet");
        assert!(matches!(app.modal, Some(Modal::Confirm(_))));
        assert!(update(&mut app, key(KeyCode::Char('n'))).is_empty(), "n cancels");
        assert_eq!(app.modal, None);
        update(&mut app, key(KeyCode::Char(k)));
        assert!(update(&mut app, key(KeyCode::Enter)).is_empty(), "Enter is not yes");
        assert_eq!(update(&mut app, key(KeyCode::Char('y'))), [Effect::Send(request)]);
    }
}

#[test]
fn reactivation_is_offered_only_for_revoked_clients() {
    let mut revoked = client(0, "a");
    revoked.status = ClientStatus::Revoked;
    let mut app = loaded(vec![revoked.clone()]);
    update(&mut app, key(KeyCode::Char('x')));
    assert_eq!(app.modal, None, "already revoked");
    update(&mut app, key(KeyCode::Char('a')));
    assert_eq!(update(&mut app, key(KeyCode::Char('y'))), [Effect::Send(Request::Reactivate(revoked.client_id))]);
}

#[test]
fn rotating_a_secret_takes_a_grace_period() {
    let mut app = loaded(vec![client(0, "a")]);
    update(&mut app, key(KeyCode::Char('r')));
    chars(&mut app, "3x00");
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        effects,
        [Effect::Send(Request::RotateSecret { client_id: app.clients[0].client_id.clone(), grace_seconds: 300 })]
    );
}

#[test]
fn filter_and_sort() {
    let mut app = loaded(vec![client(0, "zeta"), client(1, "alpha"), client(2, "Beta")]);
    let names = |app: &App| app.visible_clients().iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&app), ["alpha", "Beta", "zeta"]);
    update(&mut app, key(KeyCode::Char('S')));
    assert_eq!(names(&app), ["zeta", "Beta", "alpha"]);
    update(&mut app, key(KeyCode::Char('S')));
    update(&mut app, key(KeyCode::Char('/')));
    chars(&mut app, "ETA");
    assert_eq!(names(&app), ["Beta", "zeta"]);
    update(&mut app, key(KeyCode::Enter));
    assert!(!app.filter_editing);
    assert!(app.visible_clients().iter().any(|c| Some(&c.client_id) == app.selected.as_ref()));
    // The filter matches IDs too.
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.filter, "");
    assert!(!app.should_quit, "the first Esc only clears the filter");
    update(&mut app, key(KeyCode::Char('/')));
    chars(&mut app, &"c".repeat(10));
    assert_eq!(names(&app), ["Beta"]);
    update(&mut app, key(KeyCode::Esc));
    update(&mut app, key(KeyCode::Char('s')));
    assert_eq!(app.sort, SortColumn::ClientId);
    update(&mut app, key(KeyCode::Down));
    update(&mut app, key(KeyCode::Down));
    assert_eq!(app.selected_client().map(|c| c.name.as_str()), Some("Beta"));
}

#[test]
fn rates_are_deltas_and_a_restart_is_not_negative() {
    let mut app = loaded(vec![]);
    for (issued, started) in [(5, 1), (12, 1), (2, 9)] {
        update(&mut app, Event::Tick { now: 0 });
        let mut snap = snapshot(vec![]);
        snap.stats = Stats { started_at: started, ..stats(issued) };
        update(&mut app, Event::Reply(Reply::Polled(Ok(snap))));
    }
    assert_eq!(app.rates.issued.iter().copied().collect::<Vec<_>>(), [5, 7, 0]);
}

#[test]
fn audit_events_accumulate_with_a_cursor() {
    let mut app = loaded(vec![]);
    let event = |seq| AuditEvent { seq, at: 0, kind: AuditKind::ClientCreated, client_id: None, detail: String::new() };
    update(&mut app, Event::Tick { now: 0 });
    let mut snap = snapshot(vec![]);
    snap.audit = vec![event(4), event(5)];
    update(&mut app, Event::Reply(Reply::Polled(Ok(snap))));
    assert_eq!(app.audit_cursor, Some(5));
    let effects = update(&mut app, Event::Tick { now: 0 });
    assert!(matches!(effects.as_slice(), [Effect::Send(Request::Poll { audit_after: Some(5), .. })]));
}

#[test]
fn key_rotation_asks_and_a_missing_route_is_reported() {
    let mut app = loaded(vec![]);
    update(&mut app, key(KeyCode::Char('2')));
    assert_eq!(app.screen, Screen::Keys);
    update(&mut app, key(KeyCode::Char('r')));
    let asks = |app: &App, words: &[&str]| match &app.modal {
        Some(Modal::Confirm(c)) => words.iter().all(|w| c.consequence.contains(w) || c.question.contains(w)),
        _ => false,
    };
    assert!(asks(&app, &["scheduled", "Nothing breaks"]), "the confirmation says a young key is waited for");
    assert_eq!(update(&mut app, key(KeyCode::Char('y'))), [Effect::Send(Request::RotateKeys { now: false })]);
    let refused = Failure { unreachable: false, message: "key rotation failed: no such admin route (HTTP 400)".into() };
    update(&mut app, Event::Reply(Reply::Done(Err(refused))));
    let message = app.message.clone().unwrap();
    assert!(message.error);
    assert!(message.text.contains("HTTP 400"));
    assert_eq!(app.connection, Connection::Online, "a refusal is not an outage");
}

/// `R` rotates at once and `x` revokes the selected key, each after a
/// confirmation that says what it breaks; a retired key is not offered.
#[test]
fn rotate_now_and_revoke_ask_first_and_say_what_breaks() {
    let mut app = loaded(vec![]);
    let info = |kid: &str, state| KeyInfo {
        kid: kid.into(),
        alg: "ES256".into(),
        state,
        created_at: 1,
        activated_at: None,
        deactivated_at: None,
        published_until: None,
        retired_at: None,
        imported: false,
        rotation_scheduled_at: None,
    };
    app.keys = vec![info("kid-a", KeyState::Active), info("kid-n", KeyState::Next), info("kid-r", KeyState::Retired)];
    update(&mut app, key(KeyCode::Char('2')));
    let confirm = |app: &App| match &app.modal {
        Some(Modal::Confirm(c)) => format!("{} {}", c.question, c.consequence),
        other => panic!("no confirmation: {other:?}"),
    };

    update(&mut app, key(KeyCode::Char('R')));
    let text = confirm(&app);
    assert!(
        text.contains("NOW") && text.contains("refetch it on the unknown kid") && text.contains("Tessera's verifier")
    );
    assert_eq!(update(&mut app, key(KeyCode::Char('y'))), [Effect::Send(Request::RotateKeys { now: true })]);

    update(&mut app, key(KeyCode::Char('x')));
    let text = confirm(&app);
    assert!(text.contains("active key kid-a") && text.contains("stops verifying") && text.contains("unknown kid"));
    assert_eq!(update(&mut app, key(KeyCode::Char('n'))), []);
    assert!(app.modal.is_none(), "n cancels");

    update(&mut app, key(KeyCode::Down));
    update(&mut app, key(KeyCode::Down));
    update(&mut app, key(KeyCode::Char('x')));
    assert!(app.modal.is_none(), "a retired key cannot be revoked");
    assert!(app.message.as_ref().unwrap().text.contains("already retired"));

    update(&mut app, key(KeyCode::Up));
    update(&mut app, key(KeyCode::Char('x')));
    assert!(confirm(&app).contains("next key kid-n"));
    assert_eq!(update(&mut app, key(KeyCode::Char('y'))), [Effect::Send(Request::RevokeKey("kid-n".into()))]);
}

#[test]
fn leaving() {
    for event in [
        key(KeyCode::Char('q')),
        key(KeyCode::Esc),
        Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Event::Terminate,
    ] {
        let mut app = loaded(vec![]);
        update(&mut app, event.clone());
        assert!(app.should_quit, "{event:?}");
    }
    // In a form, q is a letter.
    let mut app = loaded(vec![]);
    update(&mut app, key(KeyCode::Char('n')));
    chars(&mut app, "q");
    assert!(!app.should_quit);
    update(&mut app, key(KeyCode::Char('?')));
    assert!(matches!(app.modal, Some(Modal::Create(_))), "? is a letter in a form too");
}

#[test]
fn screens_cycle_with_tab() {
    let mut app = loaded(vec![]);
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::Keys);
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.screen, Screen::Activity);
    update(&mut app, key(KeyCode::BackTab));
    assert_eq!(app.screen, Screen::Keys);
    update(&mut app, key(KeyCode::Char('?')));
    assert_eq!(app.modal, Some(Modal::Help));
    update(&mut app, key(KeyCode::Char('x')));
    assert_eq!(app.modal, None, "any key closes the help");
}

/// Issue 16: a public key file in the create form makes a request the
/// worker completes by reading the file; the created key client has no
/// secret to show.
#[test]
fn the_create_form_sends_a_key_file_and_shows_no_secret_for_it() {
    let mut app = loaded(vec![client(0, "a")]);
    update(&mut app, key(KeyCode::Char('n')));
    chars(&mut app, "machine");
    // Name, Scopes, Refresh, DPoP, then the key file.
    for _ in 0..4 {
        update(&mut app, key(KeyCode::Tab));
    }
    chars(&mut app, "/keys/machine.pub");
    let effects = update(&mut app, key(KeyCode::Enter));
    let [Effect::Send(Request::CreateWithKey(create, path))] = effects.as_slice() else { panic!("{effects:?}") };
    assert_eq!((create.name.as_str(), path.as_path()), ("machine", std::path::Path::new("/keys/machine.pub")));

    let creds = ClientCredentials {
        client_id: client(3, "machine").client_id,
        client_secret: String::new(),
        name: "machine".into(),
        scopes: vec![],
        refresh_tokens: true,
        previous_secret_valid_until: None,
        secret_expires_at: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        auth_method: tessera_shared::admin::AuthMethod::PrivateKeyJwt,
        key_thumbprints: vec!["t".into()],
    };
    update(&mut app, Event::Reply(Reply::Created(Ok(creds.clone()))));
    assert!(app.modal.is_none(), "no secret dialog: {:?}", app.modal);
    assert_eq!(app.selected.as_deref(), Some(creds.client_id.as_str()));
    assert!(app.message.as_ref().is_some_and(|m| m.text.contains("private_key_jwt")));
}
