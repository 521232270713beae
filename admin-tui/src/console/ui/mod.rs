//! Drawing: [`render`] is a pure function of the [`App`]; it reads no
//! clock, does no I/O and changes nothing, so tests render into a
//! `TestBackend` and read the cells.
//!
//! The frame, top to bottom: the tab bar with the connection state, a
//! banner while the server is unreachable, the screen, the last outcome,
//! and the footer with the keys that work right now. Dialogs are drawn
//! over the middle.

mod activity;
mod clients;
mod keys;
mod modal;
pub mod theme;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::app::{App, Connection, Modal, Screen};
use crate::cli::output;
use theme::Role;

/// Draws the whole console.
pub fn render(app: &App, frame: &mut Frame) {
    let offline = matches!(app.connection, Connection::Offline { .. });
    let message_rows = app.message.as_ref().map_or(1, |msg| message_rows(&clean(&msg.text), frame.area().width));
    let [header, banner, body, message, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(offline)),
        Constraint::Min(3),
        Constraint::Length(message_rows),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_header(app, frame, header);
    if offline {
        render_banner(app, frame, banner);
    }
    match app.screen {
        Screen::Clients => clients::render(app, frame, body),
        Screen::Keys => keys::render(app, frame, body),
        Screen::Activity => activity::render(app, frame, body),
    }
    if let Some(msg) = &app.message {
        let role = if msg.error { Role::Error } else { Role::Dim };
        let text = Paragraph::new(Span::styled(clean(&msg.text), theme::style(app, role))).wrap(Wrap { trim: true });
        frame.render_widget(text, message);
    }
    render_footer(app, frame, footer);
    if let Some(modal) = &app.modal {
        modal::render(app, modal, frame, body);
    }
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let mut spans = vec![Span::styled(" Tessera ", theme::style(app, Role::Title)), Span::raw(" ")];
    for (n, screen) in Screen::ALL.iter().enumerate() {
        let role = if *screen == app.screen { Role::TabActive } else { Role::Tab };
        spans.push(Span::styled(format!(" {} {} ", n + 1, screen.title()), theme::style(app, role)));
    }
    let (state, role) = match &app.connection {
        Connection::Connecting => ("connecting…", Role::Dim),
        Connection::Online => ("● online", Role::Ok),
        Connection::Offline { .. } => ("○ offline", Role::Error),
    };
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let right = format!("{state} ");
    let gap = usize::from(area.width).saturating_sub(used + right.chars().count());
    spans.push(Span::raw(" ".repeat(gap)));
    spans.push(Span::styled(right, theme::style(app, role)));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_banner(app: &App, frame: &mut Frame, area: Rect) {
    let Connection::Offline { since, .. } = &app.connection else { return };
    let since = since.filter(|s| *s > 0).map(|s| format!(" since {} UTC", clock_time(s))).unwrap_or_default();
    let text = format!(
        " Server not running{since}: showing the last data, reconnecting… (admin socket {}) ",
        clean(&app.socket)
    );
    frame.render_widget(Paragraph::new(Span::styled(text, theme::style(app, Role::Banner))), area);
}

/// Most rows the outcome line may take: a long message wraps rather than
/// being cut at the screen edge.
const MAX_MESSAGE_ROWS: u16 = 3;

/// Rows `text` needs at `width` columns when wrapped at words, at most
/// [`MAX_MESSAGE_ROWS`].
fn message_rows(text: &str, width: u16) -> u16 {
    let width = usize::from(width.max(1));
    let (mut rows, mut used) = (1usize, 0usize);
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        let need = if used == 0 { len } else { used + 1 + len };
        if need <= width {
            used = need;
        } else {
            rows += 1 + len.saturating_sub(1) / width;
            used = (len - 1) % width + 1;
        }
    }
    u16::try_from(rows).unwrap_or(MAX_MESSAGE_ROWS).min(MAX_MESSAGE_ROWS)
}

fn render_footer(app: &App, frame: &mut Frame, area: Rect) {
    let keys: &[(&str, &str)] = match &app.modal {
        Some(Modal::Create(_)) => &[("Tab", "next field"), ("Space", "toggle"), ("Enter", "create"), ("Esc", "cancel")],
        Some(Modal::Rotate(_)) => &[("0-9", "grace seconds"), ("Enter", "rotate"), ("Esc", "cancel")],
        Some(Modal::Secret(_)) => &[("c", "copy secret"), ("i", "copy ID"), ("Enter", "done")],
        Some(Modal::Confirm(_)) => &[("y", "yes"), ("n/Esc", "no")],
        Some(Modal::Help) => &[("any key", "close")],
        None if app.filter_editing => &[("type", "filter"), ("Enter", "keep"), ("Esc", "clear")],
        None => match app.screen {
            Screen::Clients => &[
                ("?", "help"),
                ("q", "quit"),
                ("n", "new"),
                ("r", "rotate"),
                ("x", "revoke"),
                ("a", "re-activate"),
                ("d", "delete"),
                ("f", "revoke tokens"),
                ("/", "filter"),
                ("s", "sort"),
                ("Tab", "screen"),
            ],
            Screen::Keys => &[
                ("?", "help"),
                ("q", "quit"),
                ("r", "rotate"),
                ("R", "rotate now"),
                ("x", "revoke key"),
                ("↑↓", "select"),
                ("Tab", "screen"),
            ],
            Screen::Activity => &[("?", "help"), ("q", "quit"), ("↑↓", "scroll"), ("g", "newest"), ("Tab", "screen")],
        },
    };
    let mut spans = Vec::new();
    let mut used = 0;
    for (key, what) in keys {
        let (key, what) = (format!(" {key} "), format!(" {what} "));
        let width = key.chars().count() + what.chars().count();
        // A hint is shown whole or not at all; the most important come first.
        if used + width > usize::from(area.width) {
            break;
        }
        used += width;
        spans.push(Span::styled(key, theme::style(app, Role::Key)));
        spans.push(Span::raw(what));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Text from the server with control characters removed, so a client name
/// cannot move the cursor or repaint the screen.
pub fn clean(text: &str) -> String {
    output::clean(text).into_owned()
}

/// `YYYY-MM-DD HH:MM` (UTC) for tables.
pub fn short_time(secs: u64) -> String {
    let full = output::timestamp(secs);
    // RFC 3339 `2026-11-29T10:46:55Z`; anything else is shown as is.
    if full.len() == 20 && full.as_bytes().get(10) == Some(&b'T') {
        format!("{} {}", &full[..10], &full[11..16])
    } else {
        full
    }
}

/// `HH:MM:SS` (UTC) for the activity log.
pub fn clock_time(secs: u64) -> String {
    let full = output::timestamp(secs);
    if full.len() == 20 { full[11..19].to_owned() } else { full }
}

/// A centred rectangle of at most `width` x `height` inside `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

#[cfg(test)]
mod tests;
