//! The main loop with a `TestBackend`: real worker, scripted input.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;

use super::*;

#[derive(Default)]
struct Clipboard(Vec<String>);

impl Host for Clipboard {
    fn copy_to_clipboard(&mut self, text: &str) -> io::Result<()> {
        self.0.push(text.to_owned());
        Ok(())
    }
}

fn screen_text(terminal: &Terminal<TestBackend>) -> String {
    let buffer = terminal.backend().buffer();
    let area = buffer.area;
    (0..area.height)
        .map(|y| (0..area.width).map(|x| buffer[(x, y)].symbol().to_owned()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_loop_shows_an_unreachable_server_switches_screens_and_ends_on_terminate() {
    let dir = tempfile::tempdir().unwrap();
    let client = AdminClient::for_data_dir(dir.path()).with_timeout(CALL_TIMEOUT);
    let mut app = App::new(client.socket().display().to_string(), true);
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    let (input_tx, input_rx) = mpsc::channel(8);
    let (requests, replies) = worker::spawn(client);
    let script = tokio::spawn(async move {
        // The first tick polls at once; the socket is missing, so the
        // reply comes back quickly as "not running".
        tokio::time::sleep(Duration::from_millis(300)).await;
        input_tx.send(Input::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE))).await.unwrap();
        input_tx.send(Input::Resize).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        input_tx.send(Input::Terminate).await.unwrap();
    });
    let mut clipboard = Clipboard::default();
    let run = run_loop(&mut terminal, &mut app, input_rx, requests, replies, &mut clipboard);
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("the loop ends").unwrap();
    script.await.unwrap();
    let text = screen_text(&terminal);
    assert!(app.should_quit);
    assert!(text.contains("○ offline"), "{text}");
    assert!(text.contains("Server not running"), "{text}");
    assert!(text.contains("Signing keys (0)"), "switched to Keys: {text}");
}

#[tokio::test]
async fn copy_effects_reach_the_host() {
    let mut app = App::new("s", true);
    app.modal = Some(app::Modal::Secret(app::SecretShown {
        title: "Client created".into(),
        name: "n".into(),
        client_id: "id".into(),
        client_secret: "the-secret".into(),
        previous_valid_until: None,
        copied: None,
    }));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let (input_tx, input_rx) = mpsc::channel(8);
    let (requests, _request_rx) = mpsc::unbounded_channel();
    let (_reply_tx, replies) = mpsc::unbounded_channel();
    input_tx.send(Input::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE))).await.unwrap();
    input_tx.send(Input::Terminate).await.unwrap();
    let mut clipboard = Clipboard::default();
    let run = run_loop(&mut terminal, &mut app, input_rx, requests, replies, &mut clipboard);
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("the loop ends").unwrap();
    assert_eq!(clipboard.0, ["the-secret"]);
    assert!(screen_text(&terminal).contains("Copied the secret"));
}

/// Issue 16: the worker reads the key file of a create request; a file it
/// cannot read comes back as the form's error, before any call.
#[tokio::test]
async fn the_worker_reads_the_key_file_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let client = AdminClient::for_data_dir(dir.path()).with_timeout(CALL_TIMEOUT);
    let create = tessera_shared::admin::CreateClient {
        name: "m".into(),
        scopes: Vec::new(),
        refresh_tokens: true,
        secret_ttl_seconds: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        public_keys: Vec::new(),
    };
    let missing = dir.path().join("missing.pub");
    let reply = worker::handle(&client, Request::CreateWithKey(create.clone(), missing.clone())).await;
    let Reply::Created(Err(failure)) = reply else { panic!("{reply:?}") };
    assert!(failure.message.contains("cannot read") && failure.message.contains("missing.pub"), "{failure:?}");
    assert!(!failure.unreachable);
    // A readable file goes on to the server (not running here).
    std::fs::write(dir.path().join("k.pub"), "{}").unwrap();
    let reply = worker::handle(&client, Request::CreateWithKey(create, dir.path().join("k.pub"))).await;
    let Reply::Created(Err(failure)) = reply else { panic!("{reply:?}") };
    assert!(failure.unreachable, "{failure:?}");
}
