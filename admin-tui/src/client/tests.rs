//! Tests of the admin client against hand-written peers on real Unix sockets,
//! so that what goes over the wire is checked byte for byte.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

const ID: &str = "oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-";

/// Accepts one connection, reads one request (headers and a
/// `content-length` body), writes `response` and hands back the request.
fn one_shot(listener: UnixListener, response: String) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0_u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed before sending a whole request");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if request.len() >= end + 4 + length {
                    break;
                }
            }
        }
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        String::from_utf8(request).unwrap()
    })
}

fn json_response(status: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
}

fn socket_in(dir: &tempfile::TempDir) -> PathBuf {
    socket_path(dir.path())
}

#[test]
fn socket_is_in_the_data_dir() {
    assert_eq!(socket_path(Path::new("/var/lib/tessera")), PathBuf::from("/var/lib/tessera/admin.sock"));
    let client = AdminClient::for_data_dir(Path::new("data"));
    assert_eq!(client.socket(), Path::new("data/admin.sock"));
}

#[tokio::test]
async fn missing_socket_means_server_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let err = AdminClient::new(&socket).keys().await.unwrap_err();
    assert!(matches!(&err, Error::ServerNotRunning { socket: s } if *s == socket), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("tessera-server is not running: no admin socket listening at {}", socket.display())
    );
}

#[tokio::test]
async fn stale_socket_means_server_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    // A server killed with SIGKILL leaves its socket file behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let err = AdminClient::new(&socket).list_clients().await.unwrap_err();
    assert!(matches!(err, Error::ServerNotRunning { .. }), "{err:?}");
}

#[tokio::test]
async fn relative_socket_is_reported_absolute() {
    let err = AdminClient::new("no-such-dir-for-tessera-tests/admin.sock").keys().await.unwrap_err();
    let Error::ServerNotRunning { socket } = err else { panic!("{err:?}") };
    assert!(socket.is_absolute(), "{}", socket.display());
    assert!(socket.ends_with("no-such-dir-for-tessera-tests/admin.sock"));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    // Bound but never accepting: the kernel completes the connection and
    // takes the request into its buffer, then nothing ever answers.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let client = AdminClient::new(&socket).with_timeout(Duration::from_millis(200));
    let err = client.list_clients().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(200)), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");
}

#[tokio::test]
async fn create_client_sends_json_and_reads_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let answer = format!(
        r#"{{"client_id":"{ID}","client_secret":"s3cr3t","name":"billing","scopes":["read"],"refresh_tokens":false}}"#
    );
    let server = one_shot(UnixListener::bind(&socket).unwrap(), json_response("201 Created", &answer));

    let request = CreateClient {
        name: "billing".into(),
        scopes: vec!["read".into()],
        refresh_tokens: false,
        secret_ttl_seconds: None,
        access_token_ttl_seconds: None,
        audiences: Vec::new(),
        require_dpop: false,
        public_keys: Vec::new(),
    };
    let creds = AdminClient::new(&socket).create_client(&request).await.unwrap();
    assert_eq!(creds.client_id, ID);
    assert_eq!(creds.client_secret, "s3cr3t");

    let sent = server.await.unwrap();
    assert!(sent.starts_with("POST /v1/clients HTTP/1.1\r\n"), "{sent}");
    assert!(sent.contains("\r\nhost: localhost\r\n"), "{sent}");
    assert!(sent.contains("\r\ncontent-type: application/json\r\n"), "{sent}");
    let body = &sent[sent.find("\r\n\r\n").unwrap() + 4..];
    let body: CreateClient = serde_json::from_str(body).unwrap();
    assert_eq!(body, request);
}

#[tokio::test]
async fn rotate_secret_posts_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let answer = format!(
        r#"{{"client_id":"{ID}","client_secret":"new","name":"n","scopes":[],"refresh_tokens":true,"previous_secret_valid_until":1700000060}}"#
    );
    let server = one_shot(UnixListener::bind(&socket).unwrap(), json_response("200 OK", &answer));
    let creds = AdminClient::new(&socket)
        .rotate_secret(ID, RotateSecret { grace_seconds: 60, secret_ttl_seconds: None })
        .await
        .unwrap();
    assert_eq!(creds.previous_secret_valid_until, Some(1_700_000_060));
    let sent = server.await.unwrap();
    assert!(sent.starts_with(&format!("POST /v1/clients/{ID}/rotate-secret HTTP/1.1\r\n")), "{sent}");
    assert!(sent.ends_with(r#"{"grace_seconds":60}"#), "{sent}");
}

#[tokio::test]
async fn delete_uses_the_delete_method() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let answer = format!(r#"{{"client_id":"{ID}","refresh_families_revoked":2}}"#);
    let server = one_shot(UnixListener::bind(&socket).unwrap(), json_response("200 OK", &answer));
    let deleted = AdminClient::new(&socket).delete_client(ID).await.unwrap();
    assert_eq!(deleted.refresh_families_revoked, 2);
    let sent = server.await.unwrap();
    assert!(sent.starts_with(&format!("DELETE /v1/clients/{ID} HTTP/1.1\r\n")), "{sent}");
    assert!(!sent.contains("content-type"), "{sent}");
}

#[tokio::test]
async fn not_found_is_an_api_error_with_the_servers_message() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let server = one_shot(
        UnixListener::bind(&socket).unwrap(),
        json_response("404 Not Found", r#"{"error":"not_found","message":"no such client"}"#),
    );
    let err = AdminClient::new(&socket).client(ID).await.unwrap_err();
    let Error::Api { status, error } = &err else { panic!("{err:?}") };
    assert_eq!(*status, StatusCode::NOT_FOUND);
    assert_eq!(error.error, "not_found");
    assert_eq!(err.to_string(), "no such client");
    let sent = server.await.unwrap();
    assert!(sent.starts_with(&format!("GET /v1/clients/{ID} HTTP/1.1\r\n")), "{sent}");
}

#[tokio::test]
async fn an_oversized_answer_is_refused_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _server = one_shot(
        UnixListener::bind(&socket).unwrap(),
        "HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\n[".to_owned(),
    );
    let err = AdminClient::new(&socket).keys().await.unwrap_err();
    assert!(matches!(err, Error::Protocol(ProtocolError::TooLarge { limit: MAX_RESPONSE_BODY })), "{err:?}");
}

#[tokio::test]
async fn an_answer_cut_short_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _server =
        one_shot(UnixListener::bind(&socket).unwrap(), "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[".to_owned());
    let err = AdminClient::new(&socket).keys().await.unwrap_err();
    assert!(matches!(err, Error::Protocol(ProtocolError::Http(_))), "{err:?}");
}

#[tokio::test]
async fn malformed_ids_never_reach_the_socket() {
    // No server at all: a well-formed ID would give ServerNotRunning.
    let client = AdminClient::new("/nonexistent/admin.sock");
    for id in ["", "../keys", &format!("{ID}/revoke"), &format!("{ID}?x=1"), "oa2-client-id_short"] {
        let err = client.client(id).await.unwrap_err();
        assert!(matches!(err, Error::InvalidClientId(ref s) if s == id), "{err:?}");
    }
    let err = client.revoke_families("nope").await.unwrap_err();
    assert!(err.to_string().starts_with("not a Tessera client ID: \"nope\""), "{err}");
}

#[test]
fn decode_reads_success_and_failure_bodies() {
    let keys: Vec<KeyInfo> =
        decode(StatusCode::OK, br#"[{"kid":"k1","alg":"ES256","state":"active","created_at":1}]"#).unwrap();
    assert_eq!(keys[0].kid, "k1");

    let err = decode::<Vec<KeyInfo>>(StatusCode::OK, b"<html>").unwrap_err();
    assert!(matches!(err, Error::Protocol(ProtocolError::Decode { status: StatusCode::OK, .. })), "{err:?}");

    let err = decode::<Vec<KeyInfo>>(StatusCode::BAD_GATEWAY, b"Bad Gateway").unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::UnexpectedStatus { status: StatusCode::BAD_GATEWAY })),
        "{err:?}"
    );
}

#[test]
fn an_empty_server_message_falls_back_to_code_and_status() {
    let err = Error::Api {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: AdminError { error: "internal".into(), message: " ".into() },
    };
    assert_eq!(err.to_string(), "admin API error internal (HTTP 500 Internal Server Error)");
}
