//! Dialogs: the create form, the rotate form, the one-time secret, the
//! confirmation and the help.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::theme::{self, Role};
use super::{centered, clean, short_time};
use crate::console::app::{App, Confirm, CreateField, CreateForm, Modal, RotateForm, SecretShown};

/// Draws `modal` over `area`.
pub fn render(app: &App, modal: &Modal, frame: &mut Frame, area: Rect) {
    match modal {
        Modal::Create(form) => create(app, form, frame, area),
        Modal::Rotate(form) => rotate(app, form, frame, area),
        Modal::Secret(shown) => secret(app, shown, frame, area),
        Modal::Confirm(confirm) => question(app, confirm, frame, area),
        Modal::Help => help(app, frame, area),
    }
}

fn dialog(frame: &mut Frame, area: Rect, width: u16, lines: Vec<Line<'static>>, title: &str) {
    // Rows after word wrapping: a wrapped line may need one row more than
    // its width alone says, since words do not split.
    let inner = usize::from(width.min(area.width).saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|line| {
            let w = line.width();
            if w <= inner { 1 } else { w.div_ceil(inner) + 1 }
        })
        .sum();
    let height = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2);
    let rect = centered(area, width, height);
    frame.render_widget(Clear, rect);
    let block = Block::default().borders(Borders::ALL).title(format!(" {title} "));
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
}

fn field(app: &App, label: &str, value: String, focused: bool) -> Line<'static> {
    let marker = if focused { "▸ " } else { "  " };
    let role = if focused { Role::Focus } else { Role::Dim };
    let cursor = if focused { "▏" } else { "" };
    Line::from(vec![
        Span::styled(format!("{marker}{label:<16}"), theme::style(app, role)),
        Span::raw(format!("{value}{cursor}")),
    ])
}

fn error_line(app: &App, error: Option<&String>) -> Line<'static> {
    match error {
        Some(error) => Line::from(Span::styled(clean(error), theme::style(app, Role::Error))),
        None => Line::from(""),
    }
}

fn create(app: &App, form: &CreateForm, frame: &mut Frame, area: Rect) {
    let refresh = if form.refresh_tokens { "[x] yes" } else { "[ ] no" };
    let dpop = if form.require_dpop { "[x] yes" } else { "[ ] no" };
    let status = if form.busy { "Creating…" } else { "Enter creates the client; Esc cancels." };
    let lines = vec![
        field(app, "Name", form.name.clone(), form.focus == CreateField::Name),
        field(app, "Scopes", form.scopes.clone(), form.focus == CreateField::Scopes),
        field(app, "Refresh tokens", refresh.to_owned(), form.focus == CreateField::Refresh),
        field(app, "Require DPoP", dpop.to_owned(), form.focus == CreateField::Dpop),
        field(app, "Public key file", form.public_key.clone(), form.focus == CreateField::PublicKey),
        Line::from(""),
        Line::from(Span::styled(
            "Scopes: separated by spaces; none means unscoped tokens. Space toggles refresh tokens and \
             DPoP (tokens bound to the client's key).",
            theme::style(app, Role::Dim),
        )),
        Line::from(Span::styled(
            "Public key: a PEM or JWK file for private_key_jwt (no secret); empty: a secret.",
            theme::style(app, Role::Dim),
        )),
        error_line(app, form.error.as_ref()),
        Line::from(status),
    ];
    dialog(frame, area, 72, lines, "New client");
}

fn rotate(app: &App, form: &RotateForm, frame: &mut Frame, area: Rect) {
    let status = if form.busy { "Rotating…" } else { "Enter rotates; Esc cancels." };
    let lines = vec![
        Line::from(format!("Give \"{}\" a new secret.", clean(&form.name))),
        Line::from(""),
        field(app, "Grace (seconds)", form.grace.clone(), true),
        Line::from(Span::styled(
            "During the grace period the old secret keeps working, so deployments can switch over.",
            theme::style(app, Role::Dim),
        )),
        error_line(app, form.error.as_ref()),
        Line::from(status),
    ];
    dialog(frame, area, 72, lines, "Rotate secret");
}

fn secret(app: &App, shown: &SecretShown, frame: &mut Frame, area: Rect) {
    let strong = theme::style(app, Role::Secret);
    let mut lines = vec![
        Line::from(format!("Client \"{}\"", clean(&shown.name))),
        Line::from(""),
        Line::from(vec![Span::raw("client ID      "), Span::styled(shown.client_id.clone(), strong)]),
        Line::from(vec![Span::raw("client secret  "), Span::styled(shown.client_secret.clone(), strong)]),
        Line::from(""),
        Line::from(Span::styled("This secret will not be shown again. Store it now.", theme::style(app, Role::Error))),
    ];
    if let Some(until) = shown.previous_valid_until {
        lines.push(Line::from(format!("The previous secret works until {} UTC.", short_time(until))));
    }
    lines.push(Line::from(match shown.copied {
        Some(what) => format!("Copied the {what} (OSC 52). c: copy secret · i: copy ID · Enter: done"),
        None => "c: copy secret · i: copy ID · Enter: done".to_owned(),
    }));
    dialog(frame, area, 72, lines, &shown.title);
}

fn question(app: &App, confirm: &Confirm, frame: &mut Frame, area: Rect) {
    let lines = vec![
        Line::from(Span::styled(clean(&confirm.question), theme::style(app, Role::Header))),
        Line::from(""),
        Line::from(confirm.consequence.clone()),
        Line::from(""),
        Line::from(vec![
            Span::styled(" y ", theme::style(app, Role::Key)),
            Span::raw(" yes    "),
            Span::styled(" n ", theme::style(app, Role::Key)),
            Span::raw(" no, cancel"),
        ]),
    ];
    dialog(frame, area, 64, lines, "Confirm");
}

fn help(app: &App, frame: &mut Frame, area: Rect) {
    let rows: [(&str, &str); 18] = [
        ("1 2 3, Tab", "Clients, Keys, Activity"),
        ("↑↓ j k, PgUp PgDn", "move / scroll"),
        ("n", "new client (name, scopes, refresh tokens)"),
        ("r", "rotate: client secret (Clients), signing keys (Keys)"),
        ("R", "Keys: rotate at once (a lost or compromised key; asks first)"),
        ("x", "revoke the client, or on Keys the selected key (asks first)"),
        ("a", "re-activate a revoked client (asks first)"),
        ("d", "delete the client (asks first)"),
        ("f", "revoke all its refresh tokens (asks first)"),
        ("/", "filter clients by name or ID; Esc clears"),
        ("s, S", "sort by the next column; reverse"),
        ("c, i", "in the secret dialog: copy secret, copy ID"),
        ("g", "Activity: back to the newest event"),
        ("?", "this help"),
        ("q, Esc, Ctrl-C", "leave"),
        ("", ""),
        ("", "Every time shown is UTC."),
        ("", "Data refreshes every second; offline, it keeps retrying."),
    ];
    let lines = rows
        .iter()
        .map(|(key, what)| {
            Line::from(vec![Span::styled(format!("{key:<20}"), theme::style(app, Role::Header)), Span::raw(*what)])
        })
        .collect();
    dialog(frame, area, 78, lines, "Keys");
}
