//! The Keys screen: the signing keys and their life stages.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Wrap};
use tessera_shared::admin::KeyState;

use super::short_time;
use super::theme::{self, Role};
use crate::console::app::App;

/// Draws the screen into `area`.
pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let [table_area, help_area] = Layout::vertical([Constraint::Min(3), Constraint::Length(5)]).areas(area);
    let header = Row::new(["KID", "ALG", "STATE", "CREATED", "IN JWKS"]).style(theme::style(app, Role::Header));
    let rows = app.keys.iter().map(|key| {
        let published = match (key.state, key.published_until) {
            (KeyState::Next | KeyState::Active, _) => "yes".to_owned(),
            (KeyState::Retiring, Some(until)) => format!("until {}", short_time(until)),
            (KeyState::Retiring, None) => "until its tokens expire".to_owned(),
            (KeyState::Retired, _) => "no".to_owned(),
        };
        let row =
            Row::new([key.kid.clone(), key.alg.clone(), key.state.to_string(), short_time(key.created_at), published]);
        match key.state {
            KeyState::Active => row.style(theme::style(app, Role::Ok)),
            KeyState::Retired => row.style(theme::style(app, Role::Dim)),
            _ => row,
        }
    });
    let widths = [
        Constraint::Length(44),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(16),
        Constraint::Min(8),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(format!(" Signing keys ({}) ", app.keys.len())))
        .row_highlight_style(theme::style(app, Role::Selected))
        .highlight_symbol("▶ ");
    let selected = (!app.keys.is_empty()).then_some(app.key_selected);
    frame.render_stateful_widget(table, table_area, &mut TableState::default().with_selected(selected));
    let help = "Rotating (r) makes the next key active and publishes a new next key; the previous \
                active key stays in the JWKS until every token it signed has expired. A next key younger \
                than the JWKS cache lifetime signs at its first safe moment (scheduled). R rotates at once; \
                x takes the selected key out of the JWKS at once.";
    let help = match app.keys.iter().find_map(|k| k.rotation_scheduled_at.map(|at| (k, at))) {
        Some((key, at)) => format!("Rotation scheduled: {} signs from {} UTC. {help}", key.kid, short_time(at)),
        None => help.to_owned(),
    };
    frame.render_widget(
        Paragraph::new(help).style(theme::style(app, Role::Dim)).wrap(Wrap { trim: true }).block(Block::default()),
        help_area,
    );
}
