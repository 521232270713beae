//! The real terminal: raw mode and the alternate screen on the way in,
//! restored on the way out, on panic (ratatui's hook, installed by
//! [`ratatui::try_init`]) and on SIGTERM/SIGHUP (turned into
//! [`Input::Terminate`] by [`spawn_signals`]). Key input is read on a
//! thread of its own and sent to the loop as [`Input`].

use std::io::{self, Write};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crossterm::event::{self, Event as TermEvent, KeyEventKind};
use tokio::sync::mpsc;

use super::Host;

/// What the input side sends to the loop.
#[derive(Debug, Clone)]
pub enum Input {
    /// A key press.
    Key(crossterm::event::KeyEvent),
    /// The terminal was resized.
    Resize,
    /// Stop: a signal, or the input side failed.
    Terminate,
}

/// How long the input thread waits for a key before checking whether the
/// console is still there.
const INPUT_POLL: Duration = Duration::from_millis(200);

/// Reads terminal events on a thread of its own until the receiver is
/// dropped. Only key presses pass: releases and repeats are dropped here,
/// so terminals that report them do not act twice.
pub fn spawn_input(tx: mpsc::Sender<Input>) {
    std::thread::spawn(move || {
        loop {
            if tx.is_closed() {
                return;
            }
            let input = match event::poll(INPUT_POLL) {
                Ok(false) => continue,
                Ok(true) => match event::read() {
                    Ok(TermEvent::Key(key)) if key.kind == KeyEventKind::Press => Input::Key(key),
                    Ok(TermEvent::Resize(_, _)) => Input::Resize,
                    Ok(_) => continue,
                    Err(_) => Input::Terminate,
                },
                Err(_) => Input::Terminate,
            };
            let stop = matches!(input, Input::Terminate);
            if tx.blocking_send(input).is_err() || stop {
                return;
            }
        }
    });
}

/// Turns SIGTERM and SIGHUP into [`Input::Terminate`], so the loop ends and
/// the terminal is restored instead of the process dying in raw mode.
///
/// # Errors
/// If the signal handlers cannot be installed.
pub fn spawn_signals(tx: mpsc::Sender<Input>) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(Input::Terminate).await;
    });
    Ok(())
}

/// The real terminal's side effects: OSC 52 for the clipboard.
#[derive(Debug, Default)]
pub struct Terminal;

impl Host for Terminal {
    fn copy_to_clipboard(&mut self, text: &str) -> io::Result<()> {
        let mut out = io::stdout();
        write!(out, "\x1b]52;c;{}\x07", STANDARD.encode(text))?;
        out.flush()
    }
}
