//! The Clients screen: the table and, when there is room, the detail pane
//! of the selected client.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use tessera_shared::admin::{AuthMethod, ClientInfo, ClientStatus};

use super::theme::{self, Role};
use super::{clean, short_time};
use crate::console::app::{App, SortColumn};

/// Rows the detail pane takes, borders included.
const DETAIL_HEIGHT: u16 = 10;

/// Draws the screen into `area`.
pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let visible = app.visible_clients();
    let with_detail = area.height >= DETAIL_HEIGHT + 8;
    let [table_area, detail_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(if with_detail { DETAIL_HEIGHT } else { 0 })])
            .areas(area);
    render_table(app, &visible, frame, table_area);
    if with_detail {
        render_detail(app, frame, detail_area);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    Name,
    Id,
    Status,
    Scopes,
    Refresh,
    Created,
    LastUsed,
    Families,
}

impl Col {
    fn header(self) -> &'static str {
        match self {
            Self::Name => "NAME",
            Self::Id => "CLIENT ID",
            Self::Status => "STATUS",
            Self::Scopes => "SCOPES",
            Self::Refresh => "REFRESH",
            Self::Created => "CREATED",
            Self::LastUsed => "LAST USED",
            Self::Families => "FAMILIES",
        }
    }

    /// The width of every column but the name, which takes what is left.
    fn fixed_width(self) -> u16 {
        match self {
            // A client ID is 46 characters: the column shows it whole.
            Self::Id => 46,
            Self::Name | Self::Status | Self::Families => 8,
            Self::Scopes => 14,
            Self::Refresh => 7,
            Self::Created | Self::LastUsed => 16,
        }
    }

    fn sorted_by(self) -> Option<SortColumn> {
        match self {
            Self::Name => Some(SortColumn::Name),
            Self::Id => Some(SortColumn::ClientId),
            Self::Status => Some(SortColumn::Status),
            Self::Created => Some(SortColumn::Created),
            Self::LastUsed => Some(SortColumn::LastUsed),
            Self::Families => Some(SortColumn::Families),
            Self::Scopes | Self::Refresh => None,
        }
    }

    fn cell(self, client: &ClientInfo) -> String {
        match self {
            Self::Name => clean(&client.name),
            Self::Id => client.client_id.clone(),
            Self::Status => client.status.to_string(),
            Self::Scopes => scopes(client),
            Self::Refresh => if client.refresh_tokens { "on" } else { "off" }.to_owned(),
            Self::Created => short_time(client.created_at),
            Self::LastUsed => client.last_used_at.map_or_else(|| "never".to_owned(), short_time),
            Self::Families => client.active_refresh_families.to_string(),
        }
    }
}

/// The narrowest the name column gets while the ID is shown.
const NAME_MIN: u16 = 10;
/// The name keeps at least this much before an optional column is added.
const NAME_COMFORT: u16 = 24;
/// Columns beyond name, ID and status, most useful first; each is shown
/// only if the name keeps [`NAME_COMFORT`] columns beside it.
const OPTIONAL: [Col; 5] = [Col::Families, Col::Refresh, Col::LastUsed, Col::Scopes, Col::Created];
/// The order columns are shown in.
const ORDER: [Col; 8] =
    [Col::Name, Col::Id, Col::Status, Col::Scopes, Col::Refresh, Col::Created, Col::LastUsed, Col::Families];
/// Borders (2) and the selection marker `▶ ` (2), always reserved.
const TABLE_CHROME: u16 = 4;

/// The columns and their exact widths for a table `width` columns wide
/// (borders included): every fixed column at its full width, so a client
/// ID is shown whole or, below about 70 columns, not at all; the name takes
/// what is left.
fn layout(width: u16) -> Vec<(Col, u16)> {
    let avail = width.saturating_sub(TABLE_CHROME);
    // Fixed columns plus one space before each.
    let cost = |cols: &[Col]| cols.iter().map(|c| c.fixed_width() + 1).sum::<u16>();
    let mut chosen = vec![Col::Status];
    if avail >= NAME_MIN + cost(&[Col::Id, Col::Status]) {
        chosen.push(Col::Id);
    }
    for col in OPTIONAL {
        let mut with = chosen.clone();
        with.push(col);
        if avail >= NAME_COMFORT + cost(&with) {
            chosen = with;
        }
    }
    let name = avail.saturating_sub(cost(&chosen));
    ORDER
        .iter()
        .filter_map(|col| match col {
            Col::Name => Some((Col::Name, name)),
            col if chosen.contains(col) => Some((*col, col.fixed_width())),
            _ => None,
        })
        .collect()
}

/// `text` in at most `width` terminal columns: whole if it fits, else cut
/// with an ellipsis.
fn fit(text: &str, width: u16) -> String {
    let width = usize::from(width);
    let char_width = |c: char| Span::raw(c.to_string()).width();
    if Span::raw(text).width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// A secret that expires within this many seconds is highlighted, so the
/// operator rotates it before the client breaks.
pub const SECRET_EXPIRY_WARNING: u64 = 7 * 24 * 3600;

/// Whether the client's secret expires (or expired) within a week of `now`.
fn secret_expires_soon(client: &ClientInfo, now: u64) -> bool {
    now > 0 && client.secret_expires_at.is_some_and(|at| at <= now.saturating_add(SECRET_EXPIRY_WARNING))
}

fn secret_expiry_line<'a>(app: &App, client: &ClientInfo, label: Span<'a>) -> Line<'a> {
    let Some(at) = client.secret_expires_at else { return Line::from(vec![label, Span::raw("never")]) };
    let text = if app.now > 0 && at <= app.now {
        format!("expired {} (rotate the secret)", short_time(at))
    } else if secret_expires_soon(client, app.now) {
        format!("{} (within a week: rotate the secret)", short_time(at))
    } else {
        short_time(at)
    };
    let role = if secret_expires_soon(client, app.now) { Role::Alert } else { Role::Dim };
    Line::from(vec![label, Span::styled(text, theme::style(app, role))])
}

fn scopes(client: &ClientInfo) -> String {
    if client.scopes.is_empty() { "(any)".to_owned() } else { clean(&client.scopes.join(" ")) }
}

fn render_table(app: &App, visible: &[&ClientInfo], frame: &mut Frame, area: Rect) {
    let cols = layout(area.width);
    let arrow = if app.sort_desc { "▼" } else { "▲" };
    let header = Row::new(cols.iter().map(|(c, width)| {
        let mark = if c.sorted_by() == Some(app.sort) { arrow } else { "" };
        Cell::from(fit(&format!("{}{mark}", c.header()), *width))
    }))
    .style(theme::style(app, Role::Header));
    let rows = visible.iter().map(|client| {
        let row = Row::new(cols.iter().map(|(c, width)| Cell::from(fit(&c.cell(client), *width))));
        if client.status == ClientStatus::Revoked {
            row.style(theme::style(app, Role::Error))
        } else if secret_expires_soon(client, app.now) {
            row.style(theme::style(app, Role::Alert))
        } else {
            row
        }
    });
    let title = if app.filter_editing || !app.filter.is_empty() {
        let cursor = if app.filter_editing { "▏" } else { "" };
        format!(" Clients {}/{} · filter: {}{cursor} ", visible.len(), app.clients.len(), clean(&app.filter))
    } else {
        format!(" Clients ({}) · sorted by {} ", app.clients.len(), app.sort.label())
    };
    let table = Table::new(rows, cols.iter().map(|(_, width)| Constraint::Length(*width)))
        .header(header)
        .highlight_spacing(HighlightSpacing::Always)
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(theme::style(app, Role::Selected))
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(app.selected_index(visible));
    frame.render_stateful_widget(table, area, &mut state);
    if visible.is_empty() {
        let hint = if !app.clients_loaded {
            "Loading…"
        } else if app.clients.is_empty() {
            "No clients yet. Press n to create one."
        } else {
            "No client matches the filter. Esc clears it."
        };
        let inner = Rect { x: area.x + 2, y: area.y + 2, width: area.width.saturating_sub(4), height: 1 };
        if area.height > 3 {
            frame.render_widget(Paragraph::new(Span::styled(hint, theme::style(app, Role::Dim))), inner);
        }
    }
}

fn render_detail(app: &App, frame: &mut Frame, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(" Details ");
    let Some(client) = app.selected_client() else {
        frame.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let label = |text: &'static str| Span::styled(format!("{text:<15}"), theme::style(app, Role::Dim));
    let status_role = if client.status == ClientStatus::Active { Role::Ok } else { Role::Error };
    let grace = client
        .previous_secret_valid_until
        .map(|t| format!(" (previous secret works until {})", short_time(t)))
        .unwrap_or_default();
    let lines = vec![
        Line::from(vec![label("client ID"), Span::raw(client.client_id.clone())]),
        Line::from(vec![
            label("name"),
            Span::raw(clean(&client.name)),
            Span::raw("   "),
            Span::styled(client.status.to_string(), theme::style(app, status_role)),
        ]),
        Line::from(vec![
            label("scopes"),
            Span::raw(scopes(client)),
            Span::raw("   refresh tokens "),
            Span::raw(if client.refresh_tokens { "on" } else { "off" }),
            Span::raw(format!("   live families {}", client.active_refresh_families)),
        ]),
        Line::from(vec![
            label("created"),
            Span::raw(short_time(client.created_at)),
            Span::raw("   last used "),
            Span::raw(client.last_used_at.map_or_else(|| "never".to_owned(), short_time)),
        ]),
        // A key client has no secret: its two lines tell how it authenticates.
        if client.auth_method == AuthMethod::PrivateKeyJwt {
            Line::from(vec![label("auth"), Span::raw("private_key_jwt (no secret)")])
        } else {
            Line::from(vec![label("secret set"), Span::raw(short_time(client.secret_set_at)), Span::raw(grace)])
        },
        if client.auth_method == AuthMethod::PrivateKeyJwt {
            Line::from(vec![label("keys"), Span::raw(clean(&client.key_thumbprints.join(" ")))])
        } else {
            secret_expiry_line(app, client, label("secret expiry"))
        },
        Line::from(vec![
            label("token ttl"),
            Span::raw(client.access_token_ttl_seconds.map_or_else(|| "server's".to_owned(), |s| format!("{s} s"))),
            Span::raw("   audiences "),
            Span::raw(if client.audiences.is_empty() {
                "server's".to_owned()
            } else {
                clean(&client.audiences.join(" "))
            }),
        ]),
        Line::from(vec![
            label("DPoP"),
            Span::raw(if client.require_dpop { "required (tokens bound to the client's key)" } else { "optional" }),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
