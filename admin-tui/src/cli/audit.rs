//! `tessera-admin audit [--json] [--follow] [--last N]`: the audit trail,
//! one event a line, oldest first.
//!
//! `--json` prints JSON Lines (one object per event and line), so that
//! `--follow` output can be piped into `jq` as it arrives. `--follow` polls
//! the server every [`FOLLOW_INTERVAL`] for events after the last one
//! printed; Ctrl-C ends it with exit 0, and a server that goes away ends it
//! with a one-line error.

use std::io::Write;
use std::time::Duration;

use tessera_shared::admin::AuditEvent;

use super::{Error, output, print};
use crate::client::AdminClient;

/// How often `--follow` asks for new events.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// Most events fetched per poll while following.
const FOLLOW_PAGE: usize = 1000;

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// JSON Lines instead of text.
    pub json: bool,
    /// Keep polling for new events.
    pub follow: bool,
    /// How many of the newest events to show first.
    pub last: usize,
}

/// Runs the command.
///
/// # Errors
///
/// [`Error::Admin`] if the first request fails, [`Error::ServerGone`] if
/// the server stops answering while following, [`Error::Output`] if
/// writing fails.
pub async fn run(client: &AdminClient, options: Options, out: &mut dyn Write) -> Result<(), Error> {
    let events = client.audit(None, options.last).await?;
    let mut cursor = events.last().map_or(0, |e| e.seq);
    if events.is_empty() && !options.json && !options.follow {
        return print(out, "no audit events\n");
    }
    print_events(out, &events, options.json)?;
    if !options.follow {
        return Ok(());
    }
    let mut ticker = tokio::time::interval(FOLLOW_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut interrupted => return Ok(()),
        }
        let events = client.audit(Some(cursor), FOLLOW_PAGE).await.map_err(Error::ServerGone)?;
        if let Some(last) = events.last() {
            cursor = last.seq;
        }
        print_events(out, &events, options.json)?;
    }
}

fn print_events(out: &mut dyn Write, events: &[AuditEvent], json: bool) -> Result<(), Error> {
    let mut text = String::new();
    for event in events {
        if json {
            let line = serde_json::to_string(event).map_err(|e| Error::Output(e.into()))?;
            text.push_str(&line);
            text.push('\n');
        } else {
            text.push_str(&line(event));
        }
    }
    if text.is_empty() { Ok(()) } else { print(out, &text) }
}

/// One event as a line of text.
pub fn line(event: &AuditEvent) -> String {
    format!(
        "{:>6}  {}  {:<20}  {}  {}\n",
        event.seq,
        output::timestamp(event.at),
        event.kind.to_string(),
        event.client_id.as_deref().map_or(std::borrow::Cow::Borrowed("-"), output::clean),
        output::clean(&event.detail)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::admin::AuditKind;

    #[test]
    fn a_line_cleans_what_the_server_sent() {
        let event = AuditEvent {
            seq: 7,
            at: 0,
            kind: AuditKind::ClientCreated,
            client_id: Some("oa2-client-id_x".into()),
            detail: "\"evil\x1b[2J\" created".into(),
        };
        let text = line(&event);
        assert!(text.starts_with("     7  "), "{text:?}");
        assert!(text.contains("client_created"));
        assert!(text.contains("oa2-client-id_x"));
        assert!(!text.contains('\x1b'), "{text:?}");
    }
}
