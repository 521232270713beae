//! The console's state. Plain data: [`super::update`] changes it,
//! [`super::ui`] draws it, neither does I/O.

use std::collections::VecDeque;

use tessera_shared::admin::{AuditEvent, ClientInfo, KeyInfo, Stats};

/// Audit events kept in memory for the Activity screen.
pub const AUDIT_KEPT: usize = 500;
/// Samples kept per sparkline (one a second).
pub const RATE_SAMPLES: usize = 120;

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The client table and detail pane.
    Clients,
    /// The signing keys.
    Keys,
    /// Live audit trail and token rates.
    Activity,
}

impl Screen {
    /// Every screen, in tab order.
    pub const ALL: [Screen; 3] = [Screen::Clients, Screen::Keys, Screen::Activity];

    /// The tab title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Clients => "Clients",
            Self::Keys => "Keys",
            Self::Activity => "Activity",
        }
    }
}

/// Whether the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// No answer yet.
    Connecting,
    /// The last call reached it.
    Online,
    /// The last call could not reach it.
    Offline {
        /// Why, in the client's words.
        message: String,
        /// When it was first noticed (wall clock), if known.
        since: Option<u64>,
    },
}

/// The columns the client table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// Client name, case-insensitive.
    Name,
    /// Client ID.
    ClientId,
    /// Active first.
    Status,
    /// Creation time.
    Created,
    /// Last use (never used first).
    LastUsed,
    /// Live refresh families.
    Families,
}

impl SortColumn {
    /// The next column in the `s` cycle.
    pub fn next(self) -> Self {
        match self {
            Self::Name => Self::ClientId,
            Self::ClientId => Self::Status,
            Self::Status => Self::Created,
            Self::Created => Self::LastUsed,
            Self::LastUsed => Self::Families,
            Self::Families => Self::Name,
        }
    }

    /// How the column is called in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::ClientId => "client ID",
            Self::Status => "status",
            Self::Created => "created",
            Self::LastUsed => "last used",
            Self::Families => "families",
        }
    }
}

/// Which field of the create form has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateField {
    /// The client name.
    Name,
    /// Space-separated scopes.
    Scopes,
    /// Whether it receives refresh tokens.
    Refresh,
    /// Whether its token requests must carry a DPoP proof.
    Dpop,
    /// A public key file: the client authenticates with private_key_jwt.
    PublicKey,
}

/// The "new client" form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateForm {
    /// The name typed so far.
    pub name: String,
    /// Scopes, separated by spaces.
    pub scopes: String,
    /// Whether the client receives refresh tokens.
    pub refresh_tokens: bool,
    /// Whether its token requests must carry a DPoP proof (`--require-dpop`).
    pub require_dpop: bool,
    /// The path of a public key file; empty: the client gets a secret.
    pub public_key: String,
    /// The field with the cursor.
    pub focus: CreateField,
    /// Why the last submission failed.
    pub error: Option<String>,
    /// A submission is on its way: further Enters are ignored.
    pub busy: bool,
}

impl Default for CreateForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            scopes: String::new(),
            refresh_tokens: true,
            require_dpop: false,
            public_key: String::new(),
            focus: CreateField::Name,
            error: None,
            busy: false,
        }
    }
}

/// The "rotate secret" form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateForm {
    /// The client.
    pub client_id: String,
    /// Its name, to say which one.
    pub name: String,
    /// The grace period typed so far, in seconds (digits only).
    pub grace: String,
    /// Why the last submission failed.
    pub error: Option<String>,
    /// A submission is on its way.
    pub busy: bool,
}

/// A secret shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretShown {
    /// "Client created" or "Secret rotated".
    pub title: String,
    /// The client's name.
    pub name: String,
    /// The client ID.
    pub client_id: String,
    /// The secret, held only while this modal is open.
    pub client_secret: String,
    /// Until when the previous secret still works, after a rotation.
    pub previous_valid_until: Option<u64>,
    /// What was last copied to the clipboard, to say so.
    pub copied: Option<&'static str>,
}

/// An action waiting for the operator's yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// The question.
    pub question: String,
    /// What it will do, in a sentence.
    pub consequence: String,
    /// What to send on yes.
    pub request: super::action::Request,
}

/// A dialog over the screen; it takes all keys while open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    /// The new-client form.
    Create(CreateForm),
    /// The rotate-secret form.
    Rotate(RotateForm),
    /// A one-time secret.
    Secret(SecretShown),
    /// A yes/no question before something destructive.
    Confirm(Confirm),
    /// The full key help.
    Help,
}

/// A one-line outcome shown above the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sentence.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// Tokens per second, from the deltas of successive [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rates {
    /// The last counters seen.
    pub last: Option<Stats>,
    /// Issued per poll, oldest first.
    pub issued: VecDeque<u64>,
    /// Refreshed per poll.
    pub refreshed: VecDeque<u64>,
    /// Failed authentications per poll.
    pub failed: VecDeque<u64>,
}

impl Rates {
    /// Adds the deltas from the previous sample. A counter that went down
    /// means the server restarted: that sample counts as zero.
    pub fn push(&mut self, stats: Stats) {
        if let Some(last) = self.last {
            let restarted = stats.started_at != last.started_at;
            let delta = |now: u64, before: u64| if restarted { 0 } else { now.saturating_sub(before) };
            for (series, value) in [
                (&mut self.issued, delta(stats.tokens_issued, last.tokens_issued)),
                (&mut self.refreshed, delta(stats.tokens_refreshed, last.tokens_refreshed)),
                (&mut self.failed, delta(stats.failed_authentications, last.failed_authentications)),
            ] {
                series.push_back(value);
                while series.len() > RATE_SAMPLES {
                    series.pop_front();
                }
            }
        }
        self.last = Some(stats);
    }
}

/// Everything the console shows.
#[derive(Debug, Clone)]
pub struct App {
    /// The admin socket, for the header and the banner.
    pub socket: String,
    /// Whether to use colours (`NO_COLOR` unset).
    pub color: bool,
    /// The wall clock at the last tick.
    pub now: u64,
    /// The visible screen.
    pub screen: Screen,
    /// Whether the server answers.
    pub connection: Connection,
    /// Clients as last fetched.
    pub clients: Vec<ClientInfo>,
    /// Whether clients were fetched at least once.
    pub clients_loaded: bool,
    /// Keys as last fetched.
    pub keys: Vec<KeyInfo>,
    /// The newest audit events, oldest first, at most [`AUDIT_KEPT`].
    pub audit: VecDeque<AuditEvent>,
    /// The last audit sequence number fetched.
    pub audit_cursor: Option<u64>,
    /// Counters and their rates.
    pub rates: Rates,
    /// The selected client, by ID, so a refresh keeps the selection.
    pub selected: Option<String>,
    /// The filter on name or ID.
    pub filter: String,
    /// Whether keys go into the filter.
    pub filter_editing: bool,
    /// The sort column.
    pub sort: SortColumn,
    /// Descending instead of ascending.
    pub sort_desc: bool,
    /// The selected key row.
    pub key_selected: usize,
    /// How many of the newest audit events are scrolled past.
    pub audit_scroll: usize,
    /// The open dialog.
    pub modal: Option<Modal>,
    /// The last outcome.
    pub message: Option<Message>,
    /// A poll is on its way; ticks do not start another.
    pub poll_in_flight: bool,
    /// Ticks since start, to fetch clients and keys every other second.
    pub ticks: u64,
    /// Clients and keys should be fetched at the next poll.
    pub refresh_wanted: bool,
    /// The loop should end.
    pub should_quit: bool,
}

impl App {
    /// A console for `socket`, nothing loaded yet.
    pub fn new(socket: impl Into<String>, color: bool) -> Self {
        Self {
            socket: socket.into(),
            color,
            now: 0,
            screen: Screen::Clients,
            connection: Connection::Connecting,
            clients: Vec::new(),
            clients_loaded: false,
            keys: Vec::new(),
            audit: VecDeque::new(),
            audit_cursor: None,
            rates: Rates::default(),
            selected: None,
            filter: String::new(),
            filter_editing: false,
            sort: SortColumn::Name,
            sort_desc: false,
            key_selected: 0,
            audit_scroll: 0,
            modal: None,
            message: None,
            poll_in_flight: false,
            ticks: 0,
            refresh_wanted: true,
            should_quit: false,
        }
    }

    /// The clients the table shows: filtered and sorted.
    pub fn visible_clients(&self) -> Vec<&ClientInfo> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&ClientInfo> = self
            .clients
            .iter()
            .filter(|c| {
                needle.is_empty()
                    || c.name.to_lowercase().contains(&needle)
                    || c.client_id.to_lowercase().contains(&needle)
            })
            .collect();
        rows.sort_by(|a, b| {
            let order = match self.sort {
                SortColumn::Name => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
                SortColumn::ClientId => a.client_id.cmp(&b.client_id),
                SortColumn::Status => a.status.to_string().cmp(&b.status.to_string()),
                SortColumn::Created => a.created_at.cmp(&b.created_at),
                SortColumn::LastUsed => a.last_used_at.cmp(&b.last_used_at),
                SortColumn::Families => a.active_refresh_families.cmp(&b.active_refresh_families),
            }
            .then_with(|| a.client_id.cmp(&b.client_id));
            if self.sort_desc { order.reverse() } else { order }
        });
        rows
    }

    /// The index of the selected client among [`App::visible_clients`].
    pub fn selected_index(&self, visible: &[&ClientInfo]) -> Option<usize> {
        let id = self.selected.as_deref()?;
        visible.iter().position(|c| c.client_id == id)
    }

    /// The selected client, if it is visible.
    pub fn selected_client(&self) -> Option<&ClientInfo> {
        let visible = self.visible_clients();
        self.selected_index(&visible).map(|i| visible[i])
    }
}
