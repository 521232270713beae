//! Whole screens rendered into a `TestBackend`, read back as text and cells.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use tessera_shared::admin::{AuditEvent, AuditKind, ClientInfo, ClientStatus, KeyInfo, KeyState, Stats};

use super::*;
use crate::console::action::{Event, Reply, Request};
use crate::console::app::{Confirm, CreateForm, Message, RotateForm, SecretShown};
use crate::console::update::tests::{client, loaded, snapshot};
use crate::console::update::update;

/// Renders `app` at `width` x `height`; returns the buffer's lines.
pub fn draw(app: &App, width: u16, height: u16) -> (Vec<String>, ratatui::buffer::Buffer) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| render(app, frame)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let lines =
        (0..height).map(|y| (0..width).map(|x| buffer[(x, y)].symbol().to_owned()).collect::<String>()).collect();
    (lines, buffer)
}

fn text(lines: &[String]) -> String {
    lines.join("\n")
}

fn key(kid: &str, state: KeyState) -> KeyInfo {
    KeyInfo {
        kid: kid.into(),
        alg: "ES256".into(),
        state,
        created_at: 1_800_000_000,
        activated_at: None,
        deactivated_at: None,
        published_until: None,
        retired_at: None,
        imported: false,
        rotation_scheduled_at: None,
    }
}

fn sample() -> App {
    let mut revoked = client(1, "old importer");
    revoked.status = ClientStatus::Revoked;
    let mut app = loaded(vec![client(0, "billing job"), revoked]);
    app.keys = vec![key("kid-active", KeyState::Active), key("kid-next", KeyState::Next)];
    app
}

#[test]
fn clients_screen_shows_the_table_detail_and_footer_at_80x24() {
    let app = sample();
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(lines[0].contains("1 Clients") && lines[0].contains("● online"), "{}", lines[0]);
    assert!(all.contains("billing job"), "{all}");
    assert!(all.contains("old importer"));
    assert!(all.contains("revoked"));
    assert!(all.contains("Clients (2) · sorted by name"));
    assert!(all.contains("NAME▲"));
    // The detail pane shows what the narrow table leaves out.
    assert!(all.contains("Details"));
    assert!(all.contains(&app.clients[0].client_id), "the full ID is in the detail pane");
    assert!(all.contains("refresh tokens on"));
    assert!(all.contains("token ttl      server's   audiences server's"), "{all}");
    assert!(lines[23].contains("n  new") && lines[23].contains("x  revoke"), "{}", lines[23]);
    assert!(lines.iter().all(|l| l.chars().count() == 80));
}

/// Issue 16: the detail pane shows a client's own token lifetime and audiences.
#[test]
fn the_detail_pane_shows_the_token_policy() {
    let mut app = sample();
    app.clients[0].access_token_ttl_seconds = Some(60);
    app.clients[0].audiences = vec!["https://a.test".into(), "urn:b".into()];
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains("token ttl      60 s   audiences https://a.test urn:b"), "{all}");
}

/// Issue 16: the detail pane says whether the client must prove a DPoP key.
#[test]
fn the_detail_pane_shows_whether_dpop_is_required() {
    let mut app = sample();
    let (lines, _) = draw(&app, 80, 24);
    assert!(text(&lines).contains("DPoP           optional"), "{}", text(&lines));
    app.clients[0].require_dpop = true;
    let (lines, _) = draw(&app, 80, 24);
    assert!(text(&lines).contains("DPoP           required"), "{}", text(&lines));
}

#[test]
fn clients_screen_shows_all_columns_when_wide() {
    let (lines, _) = draw(&sample(), 180, 30);
    let header = lines.iter().find(|l| l.contains("NAME")).unwrap();
    for column in ["CLIENT ID", "STATUS", "SCOPES", "REFRESH", "CREATED", "LAST USED", "FAMILIES"] {
        assert!(header.contains(column), "{column} in {header}");
    }
}

#[test]
fn a_secret_expiring_within_a_week_is_highlighted() {
    let mut app = sample();
    app.now = 1_900_000_000;
    app.clients[0].secret_expires_at = Some(app.now + 3 * 24 * 3600);
    app.clients[1].status = ClientStatus::Active;
    app.clients[1].secret_expires_at = Some(app.now + 30 * 24 * 3600);
    app.selected = Some(app.clients[0].client_id.clone());
    let (lines, buffer) = draw(&app, 120, 30);
    let all = text(&lines);
    assert!(all.contains("within a week: rotate the secret"), "{all}");
    let row_of = |name: &str| u16::try_from(lines.iter().position(|l| l.contains(name)).expect("row")).unwrap();
    let line = &lines[usize::from(row_of("billing job"))];
    let x = u16::try_from(line[..line.find("billing job").unwrap()].chars().count()).unwrap();
    assert_eq!(buffer[(x, row_of("billing job"))].fg, Color::Yellow, "the expiring client's row");
    assert_ne!(buffer[(x, row_of("old importer"))].fg, Color::Yellow, "a month away is not highlighted");

    app.now += 4 * 24 * 3600;
    let (lines, _) = draw(&app, 120, 30);
    assert!(text(&lines).contains("expired"), "{}", text(&lines));
}

#[test]
fn the_selected_row_is_marked() {
    let mut app = sample();
    app.selected = Some(app.clients[1].client_id.clone());
    let (lines, buffer) = draw(&app, 100, 30);
    let y = lines.iter().position(|l| l.contains("▶ old importer")).expect("selection marker");
    assert!(buffer[(5, u16::try_from(y).unwrap())].modifier.contains(Modifier::BOLD));
}

#[test]
fn filter_shows_in_the_title_and_an_empty_result_says_so() {
    let mut app = sample();
    app.filter = "nothing-matches".into();
    app.filter_editing = true;
    let (lines, _) = draw(&app, 100, 30);
    let all = text(&lines);
    assert!(all.contains("Clients 0/2 · filter: nothing-matches▏"), "{all}");
    assert!(all.contains("No client matches the filter"));
    assert!(lines[29].contains("Enter  keep"), "{}", lines[29]);
}

#[test]
fn keys_screen() {
    let mut app = sample();
    app.screen = Screen::Keys;
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains("Signing keys (2)"));
    assert!(all.contains("kid-active") && all.contains("active"));
    assert!(all.contains("kid-next") && all.contains("next"));
    assert!(all.contains("IN JWKS"));
    assert!(lines[23].contains("r  rotate") && lines[23].contains("R  rotate now"), "{}", lines[23]);
    assert!(lines[23].contains("x  revoke key"), "{}", lines[23]);
}

/// The next key of a scheduled rotation says from when it signs, in UTC.
#[test]
fn keys_screen_shows_a_scheduled_rotation() {
    let mut app = sample();
    app.screen = Screen::Keys;
    app.keys[1].rotation_scheduled_at = Some(1_796_319_894);
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains("Rotation scheduled: kid-next signs from 2026-12-03 17:44 UTC."), "{all}");
}

/// A long outcome message wraps instead of being cut at the screen edge.
#[test]
fn a_long_message_wraps_whole() {
    let mut app = sample();
    app.screen = Screen::Keys;
    let text = "Rotation scheduled for 2026-12-03T17:44:54Z: kid-next-0123456789abcdefghijklmnopqrstuvwxyz0123 signs \
                from then on.";
    app.message = Some(Message { text: text.into(), error: false });
    let (lines, _) = draw(&app, 80, 24);
    let joined: String = lines[19..23].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    assert!(joined.contains(text), "{joined}");
}

#[test]
fn activity_screen_shows_rates_and_the_trail_newest_first() {
    let mut app = sample();
    app.screen = Screen::Activity;
    for issued in [0, 3, 10] {
        update(&mut app, Event::Tick { now: 1_800_000_100 });
        let mut snap = snapshot(app.clients.clone());
        snap.stats = Stats { started_at: 1, tokens_issued: issued, tokens_refreshed: 0, failed_authentications: 2 };
        update(&mut app, Event::Reply(Reply::Polled(Ok(snap))));
    }
    app.audit.push_back(AuditEvent {
        seq: 1,
        at: 1_800_000_050,
        kind: AuditKind::ClientCreated,
        client_id: Some(app.clients[0].client_id.clone()),
        detail: "\"billing job\" created".into(),
    });
    app.audit.push_back(AuditEvent {
        seq: 2,
        at: 1_800_000_060,
        kind: AuditKind::RefreshTokenReuse,
        client_id: Some(app.clients[0].client_id.clone()),
        detail: "family revoked".into(),
    });
    let (lines, buffer) = draw(&app, 100, 30);
    let all = text(&lines);
    assert!(all.contains("issued/s 7 · total 10"), "{all}");
    assert!(all.contains("failed auth/s 0 · total 2"));
    let reuse = lines.iter().position(|l| l.contains("refresh_token_reuse")).unwrap();
    let created = lines.iter().position(|l| l.contains("client_created")).unwrap();
    assert!(reuse < created, "newest first");
    assert!(lines[reuse].contains("01:21:00") || lines[reuse].contains(':'), "{}", lines[reuse]);
    // Security events stand out.
    let x = u16::try_from(lines[reuse].find("refresh_token_reuse").unwrap()).unwrap();
    assert_eq!(buffer[(x, u16::try_from(reuse).unwrap())].fg, Color::Yellow);
    // The sparkline has drawn bars.
    assert!(lines[1..6].iter().any(|l| l.contains('█') || l.contains('▄') || l.contains('▁')), "{all}");
}

#[test]
fn offline_banner_keeps_the_last_data() {
    let mut app = sample();
    update(&mut app, Event::Tick { now: 1_800_000_200 });
    let gone = crate::console::action::Failure { unreachable: true, message: "not running".into() };
    update(&mut app, Event::Reply(Reply::Polled(Err(gone))));
    let (lines, buffer) = draw(&app, 100, 30);
    assert!(lines[0].contains("○ offline"));
    assert!(lines[1].contains("Server not running since") && lines[1].contains("reconnecting"), "{}", lines[1]);
    assert_eq!(buffer[(2, 1)].bg, Color::Red);
    assert!(text(&lines).contains("billing job"), "last data still shown");
}

#[test]
fn create_form() {
    let mut app = sample();
    app.modal = Some(Modal::Create(CreateForm {
        name: "nightly export".into(),
        error: Some("a scope must be printable".into()),
        ..CreateForm::default()
    }));
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains("New client"));
    assert!(all.contains("▸ Name") && all.contains("nightly export▏"), "{all}");
    assert!(all.contains("Scopes"));
    assert!(all.contains("[x] yes"));
    assert!(all.contains("a scope must be printable"));
    assert!(lines[23].contains("Enter  create"));
}

#[test]
fn secret_dialog_shows_id_and_secret_once() {
    let mut app = sample();
    let id = app.clients[0].client_id.clone();
    app.modal = Some(Modal::Secret(SecretShown {
        title: "Client created".into(),
        name: "billing job".into(),
        client_id: id.clone(),
        client_secret: "5uC5Y4Mcvdl5rB56rBmxnvB4DZgiIpcyTPbOoEWp".into(),
        previous_valid_until: None,
        copied: Some("secret"),
    }));
    // At 80x24 the ID and the secret fit whole on one line each.
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains(&format!("client ID      {id}")), "{all}");
    assert!(all.contains("client secret  5uC5Y4Mcvdl5rB56rBmxnvB4DZgiIpcyTPbOoEWp"));
    assert!(all.contains("This secret will not be shown again"));
    assert!(all.contains("Copied the secret (OSC 52)"));
    assert!(lines[23].contains("c  copy secret"));
}

#[test]
fn rotate_form_and_confirmation() {
    let mut app = sample();
    app.modal = Some(Modal::Rotate(RotateForm {
        client_id: app.clients[0].client_id.clone(),
        name: "billing job".into(),
        grace: "300".into(),
        error: None,
        busy: false,
    }));
    let all = text(&draw(&app, 80, 24).0);
    assert!(all.contains("Rotate secret") && all.contains("Give \"billing job\" a new secret."));
    assert!(all.contains("Grace (seconds)") && all.contains("300▏"));

    app.modal = Some(Modal::Confirm(Confirm {
        question: "Revoke client \"billing job\"?".into(),
        consequence: "Its token requests are refused.".into(),
        request: Request::Revoke(app.clients[0].client_id.clone()),
    }));
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains("Confirm") && all.contains("Revoke client \"billing job\"?"));
    assert!(all.contains("y  yes") && all.contains("n  no, cancel"));
    assert!(lines[23].contains("n/Esc  no"));
}

#[test]
fn help_lists_every_action() {
    let mut app = sample();
    app.modal = Some(Modal::Help);
    let all = text(&draw(&app, 80, 24).0);
    for needle in ["new client", "revoke the client", "re-activate", "delete the client", "filter clients", "leave"] {
        assert!(all.contains(needle), "{needle} in\n{all}");
    }
}

#[test]
fn no_color_means_no_colour() {
    let mut app = sample();
    app.color = false;
    app.message = Some(Message { text: "boom".into(), error: true });
    app.connection = crate::console::app::Connection::Offline { message: "x".into(), since: Some(1) };
    for screen in Screen::ALL {
        app.screen = screen;
        let (_, buffer) = draw(&app, 100, 30);
        for cell in buffer.content() {
            assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{screen:?}: {cell:?}");
        }
    }
    // The banner still stands out, by reversed video.
    let (_, buffer) = draw(&app, 100, 30);
    assert!(buffer[(2, 1)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut app = sample();
    app.modal = Some(Modal::Help);
    for (w, h) in [(1, 1), (10, 3), (20, 5), (80, 24), (300, 100)] {
        for screen in Screen::ALL {
            app.screen = screen;
            draw(&app, w, h);
        }
    }
}

#[test]
fn control_characters_from_the_server_are_not_drawn() {
    let mut app = loaded(vec![client(0, "evil\u{1b}[2Jname")]);
    app.selected = None;
    let all = text(&draw(&app, 100, 30).0);
    assert!(!all.contains('\u{1b}'));
    assert!(all.contains("evil\\u{1b}[2Jname"), "{all}");
}

/// Clients with real-shaped IDs and names long enough to be cut.
fn wide_sample() -> App {
    let mut clients: Vec<ClientInfo> =
        (0..3u8).map(|n| client(n, &format!("tui-visible-client-{n}-with-a-name-long-enough-to-cut"))).collect();
    clients[1].client_id = "oa2-client-id_KzmaNDq31jGvJDn_je6C9eOOSMULfEqH".into();
    let mut app = loaded(clients);
    app.keys = vec![key("kid-active", KeyState::Active)];
    app
}

/// Every `oa2-client-id_` on screen is followed by a whole ID of a client:
/// an ID is whole or absent, never cut.
fn assert_ids_whole(app: &App, lines: &[String], width: u16) {
    let ids: Vec<&str> = app.clients.iter().map(|c| c.client_id.as_str()).collect();
    for line in lines {
        let mut rest = line.as_str();
        while let Some(at) = rest.find(tessera_shared::ids::CLIENT_ID_PREFIX) {
            let shown = &rest[at..];
            assert!(ids.iter().any(|id| shown.starts_with(id)), "a cut client ID at width {width}: {line}");
            rest = &rest[at + 1..];
        }
    }
}

/// The table line of client `n`: the table lists them in name order, and
/// the detail pane's line starts with the label `name`.
fn row_of(lines: &[String], n: u8) -> &String {
    lines.iter().filter(|l| l.contains("tui-visible") && !l.contains("name ")).nth(usize::from(n)).unwrap()
}

/// At each width the issue names: every ID in the table is whole, the name
/// takes the room left with an ellipsis when cut, and the footer holds
/// whole hints only.
#[test]
fn clients_table_at_80_100_120_140_160_200_columns() {
    let app = wide_sample();
    let hints = [
        "?  help",
        "q  quit",
        "n  new",
        "r  rotate",
        "x  revoke",
        "a  re-activate",
        "d  delete",
        "f  revoke tokens",
        "/  filter",
        "s  sort",
        "Tab  screen",
    ];
    let mut name_widths = Vec::new();
    for width in [80u16, 100, 120, 140, 160, 200] {
        let (lines, _) = draw(&app, width, 30);
        assert_ids_whole(&app, &lines, width);
        for (n, client) in app.clients.iter().enumerate() {
            let row = row_of(&lines, u8::try_from(n).unwrap());
            assert!(row.contains(&client.client_id), "the whole ID of client {n} at width {width}: {row}");
        }
        let row = row_of(&lines, 0);
        let name = &app.clients[0].name;
        let start = row.find("tui-visible").unwrap();
        let end = row.find(tessera_shared::ids::CLIENT_ID_PREFIX).unwrap();
        let shown = row[start..end].trim_end();
        if shown.ends_with('…') {
            assert!(name.starts_with(shown.trim_end_matches('…')), "a prefix of the name: {shown}");
        } else {
            assert_eq!(shown, name, "at width {width}");
        }
        assert!(shown.chars().count() >= 12, "the name has room at width {width}: {shown:?}");
        name_widths.push(shown.chars().count());
        // The footer: only whole hints, the first ones first.
        let footer = lines.last().unwrap();
        let mut shown_hints = 0;
        for hint in hints {
            if footer.contains(hint) {
                shown_hints += 1;
            }
        }
        let mut rest = footer.trim_end().to_owned();
        for hint in hints.iter().take(shown_hints) {
            assert!(rest.contains(hint), "hint {hint:?} missing before later ones at width {width}: {footer}");
            rest = rest.replacen(hint, "", 1);
        }
        assert!(rest.trim().is_empty(), "only whole hints in the footer at width {width}: {footer:?} left {rest:?}");
        assert!(shown_hints >= 5, "at width {width}: {footer}");
    }
    assert!(name_widths[2] > 12, "at 120 columns the name is not cut to 12: {name_widths:?}");
    assert_eq!(name_widths.last().copied(), Some(app.clients[0].name.chars().count()), "whole when wide");
}

/// Property-style: at every width from 80 to 250, every client ID on the
/// screen is whole, and every table row shows its client's whole ID.
#[test]
fn client_ids_are_whole_at_every_width_from_80_to_250() {
    let app = wide_sample();
    for width in 80u16..=250 {
        let (lines, _) = draw(&app, width, 24);
        assert_ids_whole(&app, &lines, width);
        for (n, client) in app.clients.iter().enumerate() {
            assert!(row_of(&lines, u8::try_from(n).unwrap()).contains(&client.client_id), "width {width}");
        }
    }
}

/// The Activity screen, too: at every width from 80 to 250 an audit
/// event's client ID is whole or absent, and the longest event kind is whole.
#[test]
fn audit_trail_client_ids_are_whole_or_absent_at_every_width() {
    let mut app = wide_sample();
    app.screen = Screen::Activity;
    app.audit = app
        .clients
        .iter()
        .enumerate()
        .map(|(n, c)| AuditEvent {
            seq: u64::try_from(n).unwrap(),
            at: 1_800_000_000,
            kind: AuditKind::KeyRotationScheduled,
            client_id: Some(c.client_id.clone()),
            detail: "a detail".into(),
        })
        .collect();
    let mut shown_at = Vec::new();
    for width in 80u16..=250 {
        let (lines, _) = draw(&app, width, 24);
        assert_ids_whole(&app, &lines, width);
        assert!(text(&lines).contains("key_rotation_scheduled"), "width {width}");
        if text(&lines).contains(&app.clients[0].client_id) {
            shown_at.push(width);
        }
    }
    assert_eq!(shown_at.first(), Some(&119), "the client column shows from 119 columns: {shown_at:?}");
    assert_eq!(shown_at.len(), 250 - 119 + 1, "and at every wider width");
}

/// Issue 16: the create form offers a public key file, and the detail pane
/// of a private_key_jwt client shows its authentication and key
/// thumbprints instead of secret lines.
#[test]
fn the_console_creates_and_shows_key_clients() {
    let mut app = sample();
    app.modal = Some(Modal::Create(CreateForm {
        public_key: "/etc/keys/billing.pub".into(),
        focus: crate::console::app::CreateField::PublicKey,
        ..CreateForm::default()
    }));
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains("▸ Public key file") && all.contains("/etc/keys/billing.pub"), "{all}");

    let mut app = sample();
    app.clients[0].auth_method = tessera_shared::admin::AuthMethod::PrivateKeyJwt;
    app.clients[0].key_thumbprints = vec!["NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".into()];
    app.clients[0].access_token_ttl_seconds = Some(60);
    let (lines, _) = draw(&app, 80, 24);
    let all = text(&lines);
    assert!(all.contains("auth           private_key_jwt (no secret)"), "{all}");
    assert!(all.contains("keys           NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"), "{all}");
    assert!(!all.contains("secret set"), "{all}");
    assert!(all.contains("token ttl      60 s"), "{all}");
}
