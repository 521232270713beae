//! Styles by role. Without colour (`NO_COLOR`), roles fall back to bold,
//! reversed and underlined text, so the console stays readable.

use ratatui::style::{Color, Modifier, Style};

use crate::console::app::App;

/// What a piece of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The product name in the tab bar.
    Title,
    /// An inactive tab.
    Tab,
    /// The visible screen's tab.
    TabActive,
    /// Table headers.
    Header,
    /// The selected row.
    Selected,
    /// Something fine (online, active).
    Ok,
    /// Something wrong (offline, revoked, a failure).
    Error,
    /// The offline banner.
    Banner,
    /// A security event.
    Alert,
    /// Secondary text.
    Dim,
    /// A key name in the footer.
    Key,
    /// The focused form field.
    Focus,
    /// A secret or ID to copy.
    Secret,
}

/// The style for `role`, in colour or not as the app says.
pub fn style(app: &App, role: Role) -> Style {
    if app.color { colored(role) } else { plain(role) }
}

fn colored(role: Role) -> Style {
    let s = Style::default();
    match role {
        Role::Title => s.fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD),
        Role::Tab => s.fg(Color::Gray),
        Role::TabActive => s.fg(Color::Black).bg(Color::White).add_modifier(Modifier::BOLD),
        Role::Header => s.fg(Color::Cyan).add_modifier(Modifier::BOLD),
        Role::Selected => s.bg(Color::DarkGray).add_modifier(Modifier::BOLD),
        Role::Ok => s.fg(Color::Green),
        Role::Error => s.fg(Color::Red).add_modifier(Modifier::BOLD),
        Role::Banner => s.fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
        Role::Alert => s.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Role::Dim => s.fg(Color::Gray),
        Role::Key => s.fg(Color::Black).bg(Color::Gray),
        Role::Focus => s.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Role::Secret => s.fg(Color::Green).add_modifier(Modifier::BOLD),
    }
}

fn plain(role: Role) -> Style {
    let s = Style::default();
    match role {
        Role::Title | Role::Header | Role::Error | Role::Alert | Role::Secret => s.add_modifier(Modifier::BOLD),
        Role::TabActive | Role::Selected | Role::Banner | Role::Key => s.add_modifier(Modifier::REVERSED),
        Role::Focus => s.add_modifier(Modifier::UNDERLINED),
        Role::Tab | Role::Ok | Role::Dim => s,
    }
}
