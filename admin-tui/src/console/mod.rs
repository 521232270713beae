//! The operator console: `tessera-admin` without a subcommand.
//!
//! Laid out as ratatui's templates suggest:
//!
//! - [`app`]: the state, plain data.
//! - [`action`]: events in, requests and effects out.
//! - [`update`]: the state machine, no I/O.
//! - [`ui`]: `render(&App, &mut Frame)`, a pure function of the state.
//! - [`worker`]: the admin client in background tasks; replies come back
//!   as events, so a slow server never freezes a keystroke.
//! - [`tui`]: the real terminal (raw mode, restore on exit, panic and
//!   SIGTERM; the input thread; OSC 52).
//!
//! [`run_loop`] ties them together and is generic over the ratatui
//! [`Backend`], so tests drive whole screens through a `TestBackend`.

pub mod action;
pub mod app;
pub mod tui;
pub mod ui;
pub mod update;
pub mod worker;

use std::io;
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use crate::client::AdminClient;
use action::{Effect, Event, Reply, Request};
use app::App;
use tui::Input;

/// The console's limit on one admin call: short, because a poll runs every
/// second and an unanswered server should show as such quickly.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How often the console polls and redraws the rates.
pub const TICK: Duration = Duration::from_secs(1);

/// What the loop needs from the terminal besides drawing.
pub trait Host {
    /// Puts `text` on the clipboard.
    ///
    /// # Errors
    /// If the terminal cannot be written.
    fn copy_to_clipboard(&mut self, text: &str) -> io::Result<()>;
}

/// Seconds since the epoch, for "offline since" in the banner.
#[allow(clippy::disallowed_methods, reason = "the console's one wall-clock read, passed into update as an event")]
pub fn wall_clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether colours are wanted: <https://no-color.org>.
pub fn colors_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Opens the console on `client`'s server and runs it until the operator
/// leaves. The terminal is restored however it ends.
///
/// # Errors
/// If the runtime cannot start or the terminal fails.
pub fn run(client: AdminClient) -> io::Result<()> {
    // Two threads: the loop and the worker's calls never wait on each other.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let mut app = App::new(client.socket().display().to_string(), colors_wanted());
        let (input_tx, input_rx) = mpsc::channel(64);
        tui::spawn_signals(input_tx.clone())?;
        let mut terminal = ratatui::try_init()?;
        tui::spawn_input(input_tx);
        let (requests, replies) = worker::spawn(client);
        let result = run_loop(&mut terminal, &mut app, input_rx, requests, replies, &mut tui::Terminal).await;
        let restored = ratatui::try_restore();
        result.and(restored)
    })
}

/// The main loop: draw, wait for the next input, reply or tick, update,
/// carry out the effects; until the state says quit.
///
/// # Errors
/// If drawing fails.
pub async fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut inputs: mpsc::Receiver<Input>,
    requests: mpsc::UnboundedSender<Request>,
    mut replies: mpsc::UnboundedReceiver<Reply>,
    host: &mut dyn Host,
) -> io::Result<()> {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        terminal.draw(|frame| ui::render(app, frame))?;
        if app.should_quit {
            return Ok(());
        }
        let event = tokio::select! {
            input = inputs.recv() => match input {
                Some(Input::Key(key)) => Event::Key(key),
                Some(Input::Resize) => Event::Resize,
                Some(Input::Terminate) | None => Event::Terminate,
            },
            Some(reply) = replies.recv() => Event::Reply(reply),
            _ = ticker.tick() => Event::Tick { now: wall_clock() },
        };
        for effect in update::update(app, event) {
            match effect {
                Effect::Send(request) => {
                    // The worker lives as long as the loop; if it is gone,
                    // the next poll's missing reply shows as no update.
                    let _ = requests.send(request);
                }
                Effect::Copy(text) => {
                    app.message = Some(match host.copy_to_clipboard(&text) {
                        Ok(()) => app::Message { text: "Copied to the clipboard (OSC 52).".into(), error: false },
                        Err(e) => app::Message { text: format!("Copy failed: {e}"), error: true },
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
