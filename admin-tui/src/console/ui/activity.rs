//! The Activity screen: token rates as sparklines (one sample a second,
//! from the deltas of `/v1/stats`) and the live audit trail, newest first.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Block, Borders, Row, Sparkline, Table};

use super::theme::{self, Role};
use super::{clean, clock_time, short_time};
use crate::console::app::App;

/// Draws the screen into `area`.
pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let spark_height = if area.height >= 18 { 5 } else { 3 };
    let [sparks, trail] = Layout::vertical([Constraint::Length(spark_height), Constraint::Min(3)]).areas(area);
    let [issued, refreshed, failed] = Layout::horizontal([Constraint::Ratio(1, 3); 3]).areas(sparks);
    let last = app.rates.last.unwrap_or_default();
    render_spark(app, frame, issued, "issued/s", &app.rates.issued, last.tokens_issued, Role::Ok);
    render_spark(app, frame, refreshed, "refreshed/s", &app.rates.refreshed, last.tokens_refreshed, Role::Header);
    render_spark(app, frame, failed, "failed auth/s", &app.rates.failed, last.failed_authentications, Role::Error);
    render_trail(app, frame, trail);
}

fn render_spark(app: &App, frame: &mut Frame, area: Rect, label: &str, series: &VecDeque<u64>, total: u64, role: Role) {
    let now = series.back().copied().unwrap_or(0);
    let title = format!(" {label} {now} · total {total} ");
    // The newest samples, as many as fit; the rightmost column is now.
    let width = usize::from(area.width.saturating_sub(2));
    let data: Vec<u64> = series.iter().skip(series.len().saturating_sub(width)).copied().collect();
    let spark = Sparkline::default()
        .block(Block::default().borders(Borders::ALL).title(title))
        .data(&data)
        .style(theme::style(app, role));
    frame.render_widget(spark, area);
}

/// The widest event kind (`key_rotation_scheduled`).
const EVENT_WIDTH: u16 = 22;
/// A client ID's length.
const CLIENT_ID_WIDTH: u16 = 46;
/// The detail keeps at least this much beside a client column.
const DETAIL_MIN: u16 = 30;
/// Narrowest trail with the client column: time, event, ID, the detail's
/// minimum, the spaces between them and the borders (119 columns).
const TRAIL_WITH_CLIENT: u16 = 16 + EVENT_WIDTH + CLIENT_ID_WIDTH + DETAIL_MIN + 3 + 2;

fn render_trail(app: &App, frame: &mut Frame, area: Rect) {
    // A client ID is shown whole (46 columns) or, on a narrow terminal,
    // not at all; the detail takes what is left.
    let with_client = area.width >= TRAIL_WITH_CLIENT;
    let mut headers = vec!["TIME", "EVENT"];
    let mut widths = vec![Constraint::Length(16), Constraint::Length(EVENT_WIDTH)];
    if with_client {
        headers.push("CLIENT");
        widths.push(Constraint::Length(CLIENT_ID_WIDTH));
    }
    headers.push("DETAIL");
    widths.push(Constraint::Min(10));
    let header = Row::new(headers).style(theme::style(app, Role::Header));
    let rows = app.audit.iter().rev().skip(app.audit_scroll).map(|event| {
        let client = event.client_id.as_deref().map_or_else(|| "-".to_owned(), clean);
        let when = if event.at >= app.now.saturating_sub(86_400) || app.now == 0 {
            clock_time(event.at)
        } else {
            short_time(event.at)
        };
        let mut cells = vec![when, event.kind.to_string()];
        if with_client {
            cells.push(client);
        }
        cells.push(clean(&event.detail));
        let row = Row::new(cells);
        if event.kind.is_security() { row.style(theme::style(app, Role::Alert)) } else { row }
    });
    let title = if app.audit_scroll > 0 {
        format!(" Audit trail · {} newer above (g: back to newest) ", app.audit_scroll)
    } else {
        format!(" Audit trail ({} shown, newest first) ", app.audit.len())
    };
    let table = Table::new(rows, widths).header(header).block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}
