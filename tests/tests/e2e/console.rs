//! The operator console in a real pseudo-terminal: `tessera-admin` runs in
//! a detached tmux session of fixed size on a private tmux server; the test
//! types into it with `send-keys` and reads the screen with `capture-pane`.
//!
//! One test walks the operator's main path: create a client by typing, read
//! its ID and secret off the screen, get a token with them, revoke the
//! client from the console and see the next token request refused; then
//! leave with `q` and check the process ended (the console restored the
//! terminal and exited rather than hanging). Another performs a scheduled
//! key rotation and a key revocation from the Keys screen.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tessera_shared::admin::{ClientCredentials, KeyInfo, KeyState};

use crate::util::{Server, TokenCall, binary, expect_error, expect_token, pause};

/// How long the screen may take to show what the test waits for.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A detached tmux session on a tmux server of its own (`-L`), so the
/// test neither sees nor disturbs any other tmux; killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Whether tmux can be run here.
    fn available() -> bool {
        Command::new("tmux").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    fn start(command: &str, width: u16, height: u16) -> Self {
        // Unique per session: the tests of this file run in parallel in one process.
        static SESSIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("tessera-e2e-{}-{}-{n}", std::process::id(), crate::util::now_unix());
        let tmux = Self { socket };
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-s", "console", "-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command)
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed: {status}");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket, "-f", "/dev/null"]).stdin(Stdio::null());
        cmd
    }

    /// Sends tmux key names (`Enter`, `Tab`) or, with `literal`, text.
    fn send(&self, keys: &str, literal: bool) {
        let mut cmd = self.cmd();
        cmd.args(["send-keys", "-t", "console"]);
        if literal {
            cmd.arg("-l");
        }
        let status = cmd.arg(keys).status().expect("tmux send-keys runs");
        assert!(status.success(), "tmux send-keys {keys:?} failed");
    }

    fn capture(&self) -> Option<String> {
        let out = self.cmd().args(["capture-pane", "-p", "-t", "console"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Polls the screen until `ready` holds; fails with the last screen after
    /// [`SCREEN_TIMEOUT`].
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(screen) = self.capture() {
                if ready(&screen) {
                    return screen;
                }
                last = screen;
            }
            pause(Duration::from_millis(100));
        }
        panic!("the console did not show {what} within {SCREEN_TIMEOUT:?}; last screen:\n{last}");
    }

    fn session_alive(&self) -> bool {
        self.cmd().args(["has-session", "-t", "console"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// The value after `label` on the screen line that holds it, with the
/// dialog's border cut off.
fn value_after(screen: &str, label: &str) -> String {
    let line = screen.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label:?} on\n{screen}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace().next().unwrap_or_default().trim_end_matches('│').to_owned()
}

#[tokio::test]
async fn create_use_and_revoke_a_client_from_the_console() {
    if !Tmux::available() {
        crate::util::skip_or_fail(
            crate::util::Requirement::Tmux,
            "create_use_and_revoke_a_client_from_the_console",
            "tmux is not installed",
        );
        return;
    }
    let server = Server::start(&[]);
    let command = format!(
        "env -u TESSERA_DATA_DIR NO_COLOR=1 '{}' --data-dir '{}'",
        binary("tessera-admin").display(),
        server.data_dir().display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    tmux.wait_for("the empty client list, online", |s| s.contains("● online") && s.contains("No clients yet"));

    // Create a client by typing into the form.
    tmux.send("n", true);
    tmux.wait_for("the create form", |s| s.contains("New client"));
    tmux.send("console e2e", true);
    tmux.send("Tab", false);
    tmux.send("read", true);
    tmux.send("Enter", false);
    let screen =
        tmux.wait_for("the secret dialog", |s| s.contains("client secret") && s.contains("will not be shown again"));

    // Read the credentials off the screen and use them.
    let creds = ClientCredentials {
        client_id: value_after(&screen, "client ID      "),
        client_secret: value_after(&screen, "client secret  "),
        name: "console e2e".into(),
        scopes: vec!["read".into()],
        refresh_tokens: true,
        previous_secret_valid_until: None,
        secret_expires_at: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        auth_method: tessera_shared::admin::AuthMethod::ClientSecret,
        key_thumbprints: Vec::new(),
    };
    assert!(tessera_shared::ids::is_client_id(&creds.client_id), "ID read off the screen: {:?}", creds.client_id);
    assert_eq!(creds.client_secret.len(), 40, "secret read off the screen: {:?}", creds.client_secret);
    let call = || TokenCall::new().basic_creds(&creds).q("grant_type", "client_credentials");
    let token = expect_token(&call().send(&server).await, "credentials read off the console");
    assert_eq!(token.scope.as_deref(), Some("read"));

    // Close the dialog: the client is in the table, selected.
    tmux.send("Enter", false);
    tmux.wait_for("the client in the table", |s| s.contains("▶ console e2e") && !s.contains("client secret"));

    // Revoke it: a confirmation first, then the table says revoked.
    tmux.send("x", true);
    tmux.wait_for("the confirmation", |s| s.contains("Revoke client \"console e2e\"?"));
    tmux.send("y", true);
    tmux.wait_for("the revoked status", |s| s.contains("Revoked \"console e2e\".") && s.contains("revoked "));
    expect_error(&call().send(&server).await, 401, "invalid_client", "a token request after revocation");

    // The audit trail shows both actions on the Activity screen.
    tmux.send("3", true);
    tmux.wait_for("the audit trail", |s| s.contains("client_created") && s.contains("client_revoked"));

    // Leave: the process ends, and with it the session.
    tmux.send("q", true);
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    while tmux.session_alive() {
        assert!(Instant::now() < deadline, "the console did not exit after q");
        pause(Duration::from_millis(100));
    }
}

/// The Keys screen in a real terminal: `r` on a fresh server schedules the
/// rotation (the next key is younger than the JWKS cache lifetime) and says
/// when in UTC, the server performs it by itself, and `x` on the retiring
/// key takes it out of the JWKS after a confirmation that says what breaks.
/// The screen's words in order, without the dialog borders, so a sentence
/// wrapped over several rows reads as one.
fn flatten(screen: &str) -> String {
    screen.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn a_scheduled_rotation_and_a_revocation_from_the_console() {
    if !Tmux::available() {
        crate::util::skip_or_fail(
            crate::util::Requirement::Tmux,
            "a_scheduled_rotation_and_a_revocation_from_the_console",
            "tmux is not installed",
        );
        return;
    }
    let server = Server::start(&["--jwks-max-age", "10", "--signing-rotate-every", "3600"]);
    let keys = || server.admin_json::<Vec<KeyInfo>>(&["keys", "list", "--json"]);
    let kid_in = |keys: &[KeyInfo], state: KeyState| keys.iter().find(|k| k.state == state).unwrap().kid.clone();
    let before = keys();
    let (old_active, next) = (kid_in(&before, KeyState::Active), kid_in(&before, KeyState::Next));
    let command = format!(
        "env -u TESSERA_DATA_DIR NO_COLOR=1 '{}' --data-dir '{}'",
        binary("tessera-admin").display(),
        server.data_dir().display()
    );
    let tmux = Tmux::start(&command, 120, 32);
    tmux.wait_for("the console, online", |s| s.contains("● online"));
    tmux.send("2", true);
    tmux.wait_for("the Keys screen", |s| s.contains("Signing keys (2)") && s.contains(&next));

    // r: a confirmation, then the rotation is scheduled, said in UTC.
    tmux.send("r", true);
    tmux.wait_for("the rotation confirmation", |s| s.contains("Rotate the signing keys?") && s.contains("scheduled"));
    tmux.send("y", true);
    let screen = tmux.wait_for("the scheduled rotation", |s| s.contains("Rotation scheduled for"));
    let flat = flatten(&screen);
    // The next key's first safe second: published, plus the 10 s cache lifetime, plus one.
    let at = before.iter().find(|k| k.kid == next).unwrap().created_at + 10 + 1;
    let when = tessera_shared::utc::rfc3339(at);
    assert!(flat.contains(&format!("Rotation scheduled for {when}: {next} signs from then on.")), "{flat}");
    assert!(!flat.contains(&at.to_string()), "no raw Unix seconds: {flat}");

    // The server rotates by itself; the screen follows.
    let deadline = Instant::now() + Duration::from_secs(20);
    while kid_in(&keys(), KeyState::Active) != next {
        assert!(Instant::now() < deadline, "the scheduled rotation did not happen within 20 s");
        pause(Duration::from_millis(200));
    }
    tmux.wait_for("the retiring key on the Keys screen", |s| s.contains("Signing keys (3)") && s.contains("retiring"));

    // x on the retiring key (active, next, retiring: the third row).
    tmux.send("Down", false);
    tmux.send("Down", false);
    tmux.send("x", true);
    let question = format!("Revoke the retiring key {old_active}?");
    tmux.wait_for("the revocation confirmation", |s| {
        let flat = flatten(s);
        flat.contains(&question) && flat.contains("stops verifying")
    });
    tmux.send("y", true);
    tmux.wait_for("the revocation", |s| s.contains(&format!("Revoked {old_active}")));
    let served = crate::util::jwks(&server).await;
    assert!(served.find(&old_active).is_none(), "out of the JWKS");
    assert!(served.find(&next).is_some());

    // Both are in the audit trail on the Activity screen.
    tmux.send("3", true);
    tmux.wait_for("the key events in the audit trail", |s| {
        s.contains("key_rotation_scheduled") && s.contains("key_rotated") && s.contains("key_revoked")
    });
    tmux.send("q", true);
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    while tmux.session_alive() {
        assert!(Instant::now() < deadline, "the console did not exit after q");
        pause(Duration::from_millis(100));
    }
}
