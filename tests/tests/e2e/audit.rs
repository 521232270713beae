//! The audit trail through `tessera-admin audit`: admin actions and
//! security events as JSON Lines, and `--follow` until the server goes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tessera_shared::admin::{AuditEvent, AuditKind, ClientCredentials};

use crate::util::{Server, TokenCall, binary, expect_error, expect_refresh_token, expect_token};

fn events(server: &Server) -> Vec<AuditEvent> {
    let stdout = server.admin_ok(&["audit", "--json"]);
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn with_secret(client: &ClientCredentials, secret: &str) -> ClientCredentials {
    ClientCredentials { client_secret: secret.to_owned(), ..client.clone() }
}

#[tokio::test]
async fn admin_actions_and_security_events_are_in_the_trail() {
    let server = Server::start(&[]);
    let client = server.create_client("audited", &[]);
    let id = client.client_id.as_str();
    let rotated: ClientCredentials = server.admin_json(&["clients", "rotate-secret", id, "--grace", "60", "--json"]);

    // Refresh-token reuse: one event, the family revoked.
    let cc = || TokenCall::new().basic_creds(&rotated).q("grant_type", "client_credentials");
    let (_, first) = expect_refresh_token(&cc().send(&server).await, "grant");
    let refresh =
        |rt: &str| TokenCall::new().basic_creds(&rotated).q("grant_type", "refresh_token").q("refresh_token", rt);
    expect_refresh_token(&refresh(&first).send(&server).await, "first refresh");
    expect_error(&refresh(&first).send(&server).await, 400, "invalid_grant", "reuse");

    // Twelve wrong secrets: one burst event, not twelve.
    let wrong = with_secret(&rotated, &"w".repeat(40));
    for _ in 0..12 {
        let resp = TokenCall::new().basic_creds(&wrong).q("grant_type", "client_credentials").send(&server).await;
        expect_error(&resp, 401, "invalid_client", "wrong secret");
    }
    server.admin_ok(&["clients", "revoke", id]);
    server.admin_ok(&["clients", "reactivate", id]);
    expect_token(&cc().send(&server).await, "after re-activation");

    let trail = events(&server);
    let kinds: Vec<AuditKind> = trail.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::ClientCreated,
            AuditKind::SecretRotated,
            AuditKind::RefreshTokenReuse,
            AuditKind::AuthFailureBurst,
            AuditKind::ClientRevoked,
            AuditKind::ClientReactivated,
        ],
        "{trail:?}"
    );
    assert!(trail.iter().all(|e| e.client_id.as_deref() == Some(id)));
    assert!(trail.windows(2).all(|w| w[0].seq < w[1].seq));
    let all = serde_json::to_string(&trail).unwrap();
    for secret in [&client.client_secret, &rotated.client_secret, &first] {
        assert!(!all.contains(secret.as_str()), "no secret or token in the trail");
    }

    // The text form, for people.
    let text = server.admin_ok(&["audit"]);
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.contains("refresh_token_reuse") && text.contains("auth_failure_burst"), "{text}");
    assert!(server.admin_ok(&["audit", "--last", "1"]).contains("client_reactivated"));
}

#[tokio::test]
async fn follow_prints_new_events_and_ends_when_the_server_goes() {
    let mut server = Server::start(&[]);
    let mut follow = Command::new(binary("tessera-admin"))
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["audit", "--json", "--follow"])
        .env_remove("TESSERA_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let created = server.create_client("followed", &[]);
    let line = rx.recv_timeout(Duration::from_secs(15)).expect("the follower prints the new event");
    let event: AuditEvent = serde_json::from_str(&line).unwrap();
    assert_eq!((event.kind, event.client_id.as_deref()), (AuditKind::ClientCreated, Some(created.client_id.as_str())));

    server.terminate();
    let finished = crate::util::run_to_exit_child(follow, Duration::from_secs(15));
    assert_eq!(finished.0.code(), Some(1), "stderr: {}", finished.1);
    assert!(finished.1.starts_with("tessera-admin: the server went away"), "{}", finished.1);
    reader.join().unwrap();
}
