//! The state machine: [`update`] applies one [`Event`] to the [`App`] and
//! returns the [`Effect`]s to carry out. No I/O, no clock: tests drive it
//! with hand-made events.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tessera_shared::admin::{AuthMethod, ClientStatus, CreateClient, KeyState};

use super::action::{Effect, Event, Failure, Reply, Request, Snapshot};
use super::app::{
    AUDIT_KEPT, App, Confirm, Connection, CreateField, CreateForm, Message, Modal, RotateForm, Screen, SecretShown,
};

/// Longest text accepted in a form field (the server limits names to 200).
const MAX_FIELD: usize = 1000;

/// Applies `event` to `app`.
pub fn update(app: &mut App, event: Event) -> Vec<Effect> {
    match event {
        Event::Key(key) => on_key(app, key),
        Event::Resize => Vec::new(),
        Event::Tick { now } => on_tick(app, now),
        Event::Reply(reply) => on_reply(app, reply),
        Event::Terminate => {
            app.should_quit = true;
            Vec::new()
        }
    }
}

fn poll(app: &mut App) -> Vec<Effect> {
    if app.poll_in_flight {
        return Vec::new();
    }
    app.poll_in_flight = true;
    let full = app.refresh_wanted || app.ticks.is_multiple_of(2);
    app.refresh_wanted = false;
    vec![Effect::Send(Request::Poll { full, audit_after: app.audit_cursor })]
}

fn on_tick(app: &mut App, now: u64) -> Vec<Effect> {
    app.now = now;
    app.ticks = app.ticks.wrapping_add(1);
    poll(app)
}

fn went_offline(app: &mut App, failure: &Failure) {
    let since = match &app.connection {
        Connection::Offline { since, .. } => *since,
        _ => Some(app.now),
    };
    app.connection = Connection::Offline { message: failure.message.clone(), since };
}

/// Notes a failure: unreachable means offline; either way, a message.
fn failed(app: &mut App, what: &str, failure: &Failure) {
    if failure.unreachable {
        went_offline(app, failure);
    }
    app.message = Some(Message { text: format!("{what}: {}", failure.message), error: true });
}

fn on_reply(app: &mut App, reply: Reply) -> Vec<Effect> {
    match reply {
        Reply::Polled(result) => {
            app.poll_in_flight = false;
            match result {
                Ok(snapshot) => {
                    let was_offline = !matches!(app.connection, Connection::Online);
                    app.connection = Connection::Online;
                    apply_snapshot(app, snapshot);
                    if was_offline {
                        // Back after an outage: fetch everything at once.
                        app.refresh_wanted = true;
                    }
                }
                Err(failure) => {
                    if failure.unreachable {
                        went_offline(app, &failure);
                    } else {
                        app.message =
                            Some(Message { text: format!("refresh failed: {}", failure.message), error: true });
                    }
                    app.refresh_wanted = true;
                }
            }
            Vec::new()
        }
        Reply::Created(result) => {
            match result {
                Ok(creds) if creds.auth_method == AuthMethod::PrivateKeyJwt => {
                    // No secret to show: the client proves itself with its key.
                    let text = format!("Created client \"{}\" (private_key_jwt, no secret).", creds.name);
                    app.message = Some(Message { text, error: false });
                    app.selected = Some(creds.client_id);
                    app.modal = None;
                }
                Ok(creds) => {
                    app.message = Some(Message { text: format!("Created client \"{}\".", creds.name), error: false });
                    app.selected = Some(creds.client_id.clone());
                    app.modal = Some(Modal::Secret(SecretShown {
                        title: "Client created".into(),
                        name: creds.name,
                        client_id: creds.client_id,
                        client_secret: creds.client_secret,
                        previous_valid_until: None,
                        copied: None,
                    }));
                }
                Err(failure) => {
                    if let Some(Modal::Create(form)) = &mut app.modal {
                        form.busy = false;
                        form.error = Some(failure.message.clone());
                    }
                    failed(app, "create failed", &failure);
                }
            }
            after_action(app)
        }
        Reply::SecretRotated(result) => {
            match result {
                Ok(creds) => {
                    app.message = Some(Message { text: format!("New secret for \"{}\".", creds.name), error: false });
                    app.modal = Some(Modal::Secret(SecretShown {
                        title: "Secret rotated".into(),
                        name: creds.name,
                        client_id: creds.client_id,
                        client_secret: creds.client_secret,
                        previous_valid_until: creds.previous_secret_valid_until,
                        copied: None,
                    }));
                }
                Err(failure) => {
                    if let Some(Modal::Rotate(form)) = &mut app.modal {
                        form.busy = false;
                        form.error = Some(failure.message.clone());
                    }
                    failed(app, "rotate failed", &failure);
                }
            }
            after_action(app)
        }
        Reply::Done(result) => {
            match result {
                Ok(text) => app.message = Some(Message { text, error: false }),
                Err(failure) => {
                    if failure.unreachable {
                        went_offline(app, &failure);
                    }
                    app.message = Some(Message { text: failure.message, error: true });
                }
            }
            after_action(app)
        }
    }
}

/// After an action, fetch everything again so the screen shows its effect.
fn after_action(app: &mut App) -> Vec<Effect> {
    app.refresh_wanted = true;
    poll(app)
}

fn apply_snapshot(app: &mut App, snapshot: Snapshot) {
    if let Some(clients) = snapshot.clients {
        app.clients = clients;
        app.clients_loaded = true;
        keep_selection_valid(app);
    }
    if let Some(keys) = snapshot.keys {
        app.keys = keys;
        app.key_selected = app.key_selected.min(app.keys.len().saturating_sub(1));
    }
    app.rates.push(snapshot.stats);
    if let Some(last) = snapshot.audit.last() {
        app.audit_cursor = Some(last.seq);
    }
    let fresh = snapshot.audit.len();
    app.audit.extend(snapshot.audit);
    while app.audit.len() > AUDIT_KEPT {
        app.audit.pop_front();
    }
    if app.audit_scroll > 0 {
        // Keep the rows the operator is reading where they are.
        app.audit_scroll = (app.audit_scroll + fresh).min(app.audit.len().saturating_sub(1));
    }
}

fn keep_selection_valid(app: &mut App) {
    let visible = app.visible_clients();
    if app.selected_index(&visible).is_none() {
        app.selected = visible.first().map(|c| c.client_id.clone());
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, KeyCode::Char('c' | 'q')) {
        app.should_quit = true;
        return Vec::new();
    }
    if app.modal.is_some() {
        return on_modal_key(app, key);
    }
    if app.filter_editing {
        on_filter_key(app, key);
        return Vec::new();
    }
    match key.code {
        KeyCode::Char('q') => app.should_quit = true,
        KeyCode::Esc if !app.filter.is_empty() && app.screen == Screen::Clients => {
            app.filter.clear();
            keep_selection_valid(app);
        }
        KeyCode::Esc => app.should_quit = true,
        KeyCode::Char('?') => app.modal = Some(Modal::Help),
        KeyCode::Tab => app.screen = next_screen(app.screen, 1),
        KeyCode::BackTab => app.screen = next_screen(app.screen, 2),
        KeyCode::Char('1') => app.screen = Screen::Clients,
        KeyCode::Char('2') => app.screen = Screen::Keys,
        KeyCode::Char('3') => app.screen = Screen::Activity,
        _ => {
            return match app.screen {
                Screen::Clients => on_clients_key(app, key),
                Screen::Keys => on_keys_key(app, key),
                Screen::Activity => {
                    on_activity_key(app, key);
                    Vec::new()
                }
            };
        }
    }
    Vec::new()
}

fn next_screen(screen: Screen, step: usize) -> Screen {
    let index = Screen::ALL.iter().position(|s| *s == screen).unwrap_or(0);
    Screen::ALL[(index + step) % Screen::ALL.len()]
}

fn on_filter_key(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Enter => app.filter_editing = false,
        KeyCode::Esc => {
            app.filter_editing = false;
            app.filter.clear();
        }
        KeyCode::Backspace => {
            app.filter.pop();
        }
        KeyCode::Char(c) if !c.is_control() && app.filter.len() < MAX_FIELD => app.filter.push(c),
        _ => {}
    }
    keep_selection_valid(app);
}

fn move_selection(app: &mut App, delta: isize) {
    let visible = app.visible_clients();
    if visible.is_empty() {
        return;
    }
    let current = app.selected_index(&visible).unwrap_or(0);
    let last = visible.len() - 1;
    let target = current.saturating_add_signed(delta).min(last);
    app.selected = Some(visible[target].client_id.clone());
}

fn on_clients_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => move_selection(app, -1),
        KeyCode::Down | KeyCode::Char('j') => move_selection(app, 1),
        KeyCode::PageUp => move_selection(app, -10),
        KeyCode::PageDown => move_selection(app, 10),
        KeyCode::Home | KeyCode::Char('g') => move_selection(app, isize::MIN / 2),
        KeyCode::End | KeyCode::Char('G') => move_selection(app, isize::MAX / 2),
        KeyCode::Char('/') => app.filter_editing = true,
        KeyCode::Char('s') => {
            app.sort = app.sort.next();
            app.message = Some(Message { text: format!("Sorted by {}.", app.sort.label()), error: false });
        }
        KeyCode::Char('S') => app.sort_desc = !app.sort_desc,
        KeyCode::Char('n') => app.modal = Some(Modal::Create(CreateForm::default())),
        _ => return on_client_action(app, key),
    }
    Vec::new()
}

fn on_client_action(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(client) = app.selected_client() else {
        if matches!(key.code, KeyCode::Char('r' | 'x' | 'a' | 'd' | 'f')) {
            app.message = Some(Message { text: "No client selected.".into(), error: true });
        }
        return Vec::new();
    };
    let id = client.client_id.clone();
    let name = client.name.clone();
    let status = client.status;
    let families = client.active_refresh_families;
    let confirm = |question: String, consequence: &str, request: Request| {
        Some(Modal::Confirm(Confirm { question, consequence: consequence.to_owned(), request }))
    };
    app.modal = match key.code {
        KeyCode::Char('r') => {
            Some(Modal::Rotate(RotateForm { client_id: id, name, grace: "0".into(), error: None, busy: false }))
        }
        KeyCode::Char('x') if status == ClientStatus::Revoked => {
            app.message = Some(Message { text: format!("\"{name}\" is already revoked."), error: true });
            None
        }
        KeyCode::Char('x') => confirm(
            format!("Revoke client \"{name}\"?"),
            "Its token requests are refused from now on and its refresh tokens die. It can be re-activated.",
            Request::Revoke(id),
        ),
        KeyCode::Char('a') if status == ClientStatus::Active => {
            app.message = Some(Message { text: format!("\"{name}\" is already active."), error: true });
            None
        }
        KeyCode::Char('a') => confirm(
            format!("Re-activate client \"{name}\"?"),
            "It can obtain tokens again with its current secret. Revoked refresh tokens stay revoked.",
            Request::Reactivate(id),
        ),
        KeyCode::Char('d') => confirm(
            format!("Delete client \"{name}\"?"),
            "The client and its refresh tokens are gone for good. This cannot be undone.",
            Request::Delete(id),
        ),
        KeyCode::Char('f') => confirm(
            format!("Revoke all refresh tokens of \"{name}\"?"),
            &format!("{families} live refresh-token families die; the client stays active."),
            Request::RevokeFamilies(id),
        ),
        _ => None,
    };
    Vec::new()
}

fn on_keys_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => app.key_selected = app.key_selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => {
            app.key_selected = (app.key_selected + 1).min(app.keys.len().saturating_sub(1));
        }
        KeyCode::Char('r') => {
            app.modal = Some(Modal::Confirm(Confirm {
                question: "Rotate the signing keys?".into(),
                consequence: "The next key starts signing and a new next key is published; the old key stays \
                              in the JWKS until its tokens expire. Nothing breaks: if the next key has not been \
                              in the JWKS for one cache lifetime yet, the rotation is scheduled for that moment \
                              and the time is shown."
                    .into(),
                request: Request::RotateKeys { now: false },
            }));
        }
        KeyCode::Char('R') => {
            app.modal = Some(Modal::Confirm(Confirm {
                question: "Rotate the signing keys NOW?".into(),
                consequence: "For a lost or compromised key. The next key signs at once, even if resource \
                              servers may not have it in their cached JWKS yet: those holding an older JWKS must \
                              refetch it on the unknown kid, which Tessera's verifier does; a verifier that does \
                              not refuses new tokens until its cache expires."
                    .into(),
                request: Request::RotateKeys { now: true },
            }));
        }
        KeyCode::Char('x') => app.modal = revoke_key_confirmation(app),
        _ => {}
    }
    Vec::new()
}

/// The confirmation for revoking the selected key, saying what it breaks;
/// or a message when there is nothing to revoke.
fn revoke_key_confirmation(app: &mut App) -> Option<Modal> {
    let Some(key) = app.keys.get(app.key_selected) else {
        app.message = Some(Message { text: "No key selected.".into(), error: true });
        return None;
    };
    let kid = key.kid.clone();
    let consequence = match key.state {
        KeyState::Retired => {
            app.message = Some(Message { text: format!("{kid} is already retired: not in the JWKS."), error: true });
            return None;
        }
        KeyState::Active => {
            "It leaves the JWKS now and every token it signed stops verifying. The next key \
                             signs from now and a new next key is published: resource servers holding an older \
                             JWKS refetch it on the unknown kid, which Tessera's verifier does."
        }
        KeyState::Retiring => {
            "It leaves the JWKS now and every unexpired token it signed stops verifying. \
                               Nothing else changes."
        }
        KeyState::Next => {
            "It leaves the JWKS now (it has signed nothing) and a new next key is published; a \
                           scheduled rotation waits for the new key."
        }
    };
    Some(Modal::Confirm(Confirm {
        question: format!("Revoke the {} key {kid}?", key.state),
        consequence: consequence.to_owned(),
        request: Request::RevokeKey(kid),
    }))
}

fn on_activity_key(app: &mut App, key: KeyEvent) {
    let max = app.audit.len().saturating_sub(1);
    match key.code {
        KeyCode::Down | KeyCode::Char('j') => app.audit_scroll = (app.audit_scroll + 1).min(max),
        KeyCode::Up | KeyCode::Char('k') => app.audit_scroll = app.audit_scroll.saturating_sub(1),
        KeyCode::PageDown => app.audit_scroll = (app.audit_scroll + 10).min(max),
        KeyCode::PageUp => app.audit_scroll = app.audit_scroll.saturating_sub(10),
        KeyCode::Home | KeyCode::Char('g') => app.audit_scroll = 0,
        _ => {}
    }
}

fn on_modal_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(modal) = app.modal.as_mut() else { return Vec::new() };
    match modal {
        Modal::Help => {
            app.modal = None;
            Vec::new()
        }
        Modal::Create(form) => {
            let (effects, close) = on_create_key(form, key);
            if close {
                app.modal = None;
            }
            effects
        }
        Modal::Rotate(form) => {
            let (effects, close) = on_rotate_key(form, key);
            if close {
                app.modal = None;
            }
            effects
        }
        Modal::Secret(shown) => match key.code {
            KeyCode::Char('c') => {
                shown.copied = Some("secret");
                vec![Effect::Copy(shown.client_secret.clone())]
            }
            KeyCode::Char('i') => {
                shown.copied = Some("client ID");
                vec![Effect::Copy(shown.client_id.clone())]
            }
            KeyCode::Enter | KeyCode::Esc | KeyCode::Char('q') => {
                app.modal = None;
                Vec::new()
            }
            _ => Vec::new(),
        },
        Modal::Confirm(confirm) => match key.code {
            KeyCode::Char('y' | 'Y') => {
                let request = confirm.request.clone();
                app.modal = None;
                app.message = Some(Message { text: "Working…".into(), error: false });
                vec![Effect::Send(request)]
            }
            KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => {
                app.modal = None;
                app.message = Some(Message { text: "Cancelled.".into(), error: false });
                Vec::new()
            }
            _ => Vec::new(),
        },
    }
}

fn edit_text(text: &mut String, key: KeyEvent) {
    match key.code {
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) if !c.is_control() && text.len() < MAX_FIELD => text.push(c),
        _ => {}
    }
}

/// Returns the effects and whether the form closes.
fn on_create_key(form: &mut CreateForm, key: KeyEvent) -> (Vec<Effect>, bool) {
    match key.code {
        KeyCode::Esc => return (Vec::new(), true),
        KeyCode::Tab | KeyCode::Down => {
            form.focus = match form.focus {
                CreateField::Name => CreateField::Scopes,
                CreateField::Scopes => CreateField::Refresh,
                CreateField::Refresh => CreateField::Dpop,
                CreateField::Dpop => CreateField::PublicKey,
                CreateField::PublicKey => CreateField::Name,
            };
        }
        KeyCode::BackTab | KeyCode::Up => {
            form.focus = match form.focus {
                CreateField::Name => CreateField::PublicKey,
                CreateField::Scopes => CreateField::Name,
                CreateField::Refresh => CreateField::Scopes,
                CreateField::Dpop => CreateField::Refresh,
                CreateField::PublicKey => CreateField::Dpop,
            };
        }
        KeyCode::Enter => {
            if form.busy {
                return (Vec::new(), false);
            }
            let name = form.name.trim().to_owned();
            if name.is_empty() {
                form.error = Some("Give the client a name.".into());
                form.focus = CreateField::Name;
                return (Vec::new(), false);
            }
            let scopes: Vec<String> = form.scopes.split_whitespace().map(str::to_owned).collect();
            form.busy = true;
            form.error = None;
            let create = CreateClient {
                name,
                scopes,
                refresh_tokens: form.refresh_tokens,
                secret_ttl_seconds: None,
                access_token_ttl_seconds: None,
                audiences: Vec::new(),
                require_dpop: form.require_dpop,
                public_keys: Vec::new(),
            };
            let key_file = form.public_key.trim();
            let request = if key_file.is_empty() {
                Request::Create(create)
            } else {
                Request::CreateWithKey(create, key_file.into())
            };
            return (vec![Effect::Send(request)], false);
        }
        _ => match form.focus {
            CreateField::Name => edit_text(&mut form.name, key),
            CreateField::Scopes => edit_text(&mut form.scopes, key),
            CreateField::PublicKey => edit_text(&mut form.public_key, key),
            CreateField::Refresh => match key.code {
                KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right => form.refresh_tokens = !form.refresh_tokens,
                KeyCode::Char('y') => form.refresh_tokens = true,
                KeyCode::Char('n') => form.refresh_tokens = false,
                _ => {}
            },
            CreateField::Dpop => match key.code {
                KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right => form.require_dpop = !form.require_dpop,
                KeyCode::Char('y') => form.require_dpop = true,
                KeyCode::Char('n') => form.require_dpop = false,
                _ => {}
            },
        },
    }
    (Vec::new(), false)
}

/// Returns the effects and whether the form closes.
fn on_rotate_key(form: &mut RotateForm, key: KeyEvent) -> (Vec<Effect>, bool) {
    match key.code {
        KeyCode::Esc => return (Vec::new(), true),
        KeyCode::Enter => {
            if form.busy {
                return (Vec::new(), false);
            }
            let grace = if form.grace.is_empty() { Ok(0) } else { form.grace.parse::<u64>() };
            match grace {
                Ok(grace_seconds) => {
                    form.busy = true;
                    form.error = None;
                    let request = Request::RotateSecret { client_id: form.client_id.clone(), grace_seconds };
                    return (vec![Effect::Send(request)], false);
                }
                Err(_) => form.error = Some("The grace period is a whole number of seconds.".into()),
            }
        }
        KeyCode::Backspace => {
            form.grace.pop();
        }
        KeyCode::Char(c) if c.is_ascii_digit() && form.grace.len() < 10 => {
            if form.grace == "0" {
                form.grace.clear();
            }
            form.grace.push(c);
        }
        _ => {}
    }
    (Vec::new(), false)
}

#[cfg(test)]
pub(crate) mod tests;
