//! The real `tessera-admin` binary, run as a process: against no server at
//! all, and against a fake admin server that checks what it is sent.

mod util;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use util::{FakeServer, ID, ID2, Route, SECRET, admin, client_info, run};

/// Asserts the failure contract: a non-zero exit, nothing on stdout, and
/// exactly one line on stderr, which is returned without its prefix.
fn failure_line(run: &util::Run) -> &str {
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    run.stderr
        .strip_prefix("tessera-admin: ")
        .and_then(|line| line.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("not a tessera-admin error line: {:?}", run.stderr))
}

#[test]
fn without_a_server_says_so_and_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(admin().arg("--data-dir").arg(dir.path()).args(["clients", "list"]));
    assert_eq!(
        failure_line(&out),
        format!(
            "tessera-server is not running: no admin socket listening at {}",
            dir.path().join("admin.sock").display()
        )
    );
}

#[test]
fn the_default_data_dir_is_tessera_data_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    // The child resolves its working directory through any symlink.
    let cwd = dir.path().canonicalize().unwrap();
    let out = run(admin().current_dir(&cwd).args(["keys", "list"]));
    let expected = cwd.join("tessera-data").join("admin.sock");
    assert!(failure_line(&out).ends_with(&format!("at {}", expected.display())), "{out:?}");
}

#[test]
fn the_data_dir_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(admin().env("TESSERA_DATA_DIR", dir.path()).args(["clients", "show", ID]));
    assert!(failure_line(&out).ends_with(&format!("at {}", dir.path().join("admin.sock").display())), "{out:?}");
}

#[test]
fn socket_overrides_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("elsewhere.sock");
    let out = run(admin().args(["--data-dir", "/nonexistent"]).arg("--socket").arg(&socket).args(["keys", "list"]));
    assert!(failure_line(&out).ends_with(&format!("at {}", socket.display())), "{out:?}");
}

#[test]
fn no_subcommand_without_a_terminal_refuses_to_open_the_console() {
    // Without a subcommand the console opens, but only on a terminal: a
    // script gets a usage error instead of a screen it cannot drive.
    let out = run(&mut admin());
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "tessera-admin: no command given and no terminal for the console; see `tessera-admin --help`\n"
    );
}

#[test]
fn a_malformed_client_id_is_refused_without_asking_the_server() {
    let server = FakeServer::start(vec![]);
    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args(["clients", "delete", "../keys"]));
    assert!(failure_line(&out).starts_with("not a Tessera client ID: \"../keys\""), "{out:?}");
    assert_eq!(server.seen(), []);
}

#[test]
fn create_json_prints_the_credentials_object() {
    let credentials = json!({
        "client_id": ID,
        "client_secret": SECRET,
        "name": "billing",
        "scopes": ["read", "write"],
        "refresh_tokens": false,
        "auth_method": "client_secret",
    });
    let expected_body = json!({
        "name": "billing",
        "scopes": ["read", "write"],
        "refresh_tokens": false,
    });
    let server = FakeServer::start(vec![Route {
        status: StatusCode::CREATED,
        ..Route::ok(Method::POST, "/v1/clients", Some(expected_body.clone()), credentials.clone())
    }]);

    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args([
        "clients",
        "create",
        "--name",
        "billing",
        "--scope",
        "read",
        "--scope",
        "write",
        "--no-refresh",
        "--json",
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed, credentials);
    assert_eq!(server.seen().len(), 1);
    assert_eq!(server.seen()[0].body, Some(expected_body));
}

#[test]
fn create_for_people_shows_the_secret_once_with_a_warning() {
    let server = FakeServer::start(vec![Route::ok(
        Method::POST,
        "/v1/clients",
        Some(json!({"name": "ops", "scopes": [], "refresh_tokens": true})),
        json!({
            "client_id": ID,
            "client_secret": SECRET,
            "name": "ops",
            "scopes": [],
            "refresh_tokens": true,
        }),
    )]);
    let out = run(admin().arg("--socket").arg(server.socket()).args(["clients", "create", "--name", "ops"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(&format!("client ID:      {ID}\n")), "{out:?}");
    assert!(out.stdout.contains(&format!("client secret:  {SECRET}\n")), "{out:?}");
    assert!(out.stdout.contains("will not be shown again"), "{out:?}");
}

#[test]
fn list_prints_json_or_a_table_without_secrets() {
    let clients = json!([client_info(ID, "billing"), client_info(ID2, "reports")]);
    let server = FakeServer::start(vec![Route::ok(Method::GET, "/v1/clients", None, clients.clone())]);

    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args(["clients", "list", "--json"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed, clients);

    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args(["clients", "list"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].starts_with("CLIENT ID"), "{out:?}");
    assert!(lines[1].starts_with(ID) && lines[1].contains("billing"), "{out:?}");
    assert!(lines[2].starts_with(ID2) && lines[2].contains("2023-11-14T22:13:20Z"));
    assert!(!out.stdout.to_lowercase().contains("secret"), "{out:?}");

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.method == Method::GET && s.path == "/v1/clients" && s.body.is_none()));
}

#[test]
fn show_of_a_missing_client_reports_the_servers_message() {
    let message = format!("no client with ID {ID}");
    let server = FakeServer::start(vec![Route {
        status: StatusCode::NOT_FOUND,
        ..Route::ok(Method::GET, &format!("/v1/clients/{ID}"), None, json!({"error": "not_found", "message": message}))
    }]);
    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args(["clients", "show", ID]));
    assert_eq!(failure_line(&out), message);
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn rotate_secret_sends_the_grace_period() {
    let credentials = json!({
        "client_id": ID,
        "client_secret": SECRET,
        "name": "billing",
        "scopes": [],
        "refresh_tokens": true,
        "previous_secret_valid_until": 1_700_000_030,
        "auth_method": "client_secret",
    });
    let server = FakeServer::start(vec![Route::ok(
        Method::POST,
        &format!("/v1/clients/{ID}/rotate-secret"),
        Some(json!({"grace_seconds": 30})),
        credentials.clone(),
    )]);
    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args([
        "clients",
        "rotate-secret",
        ID,
        "--grace",
        "30",
        "--json",
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed, credentials);
}

#[test]
fn revoke_family_posts_to_the_clients_families() {
    let server = FakeServer::start(vec![Route::ok(
        Method::POST,
        &format!("/v1/clients/{ID}/revoke-families"),
        None,
        json!({"client_id": ID, "revoked_families": 2}),
    )]);
    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args(["tokens", "revoke-family", "--client", ID]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("Revoked 2 refresh-token families of client {ID}.\n"));
}

#[test]
fn an_unexpected_request_fails_loudly() {
    // Guards the fake itself: a route it does not know must not pass.
    let server = FakeServer::start(vec![]);
    let out = run(admin().arg("--data-dir").arg(server.data_dir()).args(["keys", "list"]));
    assert!(failure_line(&out).starts_with("fake admin server: unexpected GET /v1/keys"), "{out:?}");
}
