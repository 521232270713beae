//! HTTPS: a certificate generated in the test (rcgen), the `https://`
//! listening line and issuer, a token over TLS, plain HTTP refused, and
//! certificate reload on SIGHUP (a broken file keeps the old certificate).

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};

use crate::util::{
    HTTP_TIMEOUT, Resp, Server, basic, expect_refresh_token, jwt_parts, pause, raw_request, read_response,
};

/// Writes a fresh self-signed certificate for localhost and 127.0.0.1;
/// returns its DER for the client's trust store.
fn write_certificate(cert: &Path, key: &Path) -> CertificateDer<'static> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("rcgen makes a certificate");
    std::fs::write(cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(key, certified.key_pair.serialize_pem()).expect("write the key");
    certified.cert.der().clone()
}

/// One request over TLS, trusting only `trusted`.
fn tls_exchange(server: &Server, trusted: &CertificateDer<'static>, request: &[u8]) -> Result<Resp, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect_timeout(&server.addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream.write_all(request).map_err(|e| format!("TLS write: {e}"))?;
    read_response(&mut stream)
}

struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

fn files() -> Files {
    let dir = crate::util::private_tempdir();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    Files { _dir: dir, cert, key }
}

#[tokio::test]
async fn https_serves_tokens_and_reloads_its_certificate_on_sighup() {
    let files = files();
    let first = write_certificate(&files.cert, &files.key);
    let mut server = Server::start(&[
        "--tls-cert",
        files.cert.to_str().expect("utf-8 path"),
        "--tls-key",
        files.key.to_str().expect("utf-8 path"),
    ]);
    assert!(server.base.starts_with("https://127.0.0.1:"), "the listening line says https: {}", server.base);
    let client = server.create_client("tls", &[]);
    let token_request = raw_request(
        "POST",
        "/oauth2/token?grant_type=client_credentials",
        server.addr,
        &[("Authorization", &basic(&client.client_id, &client.client_secret))],
        b"",
    );

    let resp = tls_exchange(&server, &first, &token_request).expect("a response over TLS");
    let (token, _) = expect_refresh_token(&resp, "client_credentials over HTTPS");
    assert_eq!(jwt_parts(&token.access_token).1["iss"], server.base.as_str(), "the default issuer is https://ADDR");
    let metadata = tls_exchange(
        &server,
        &first,
        &raw_request("GET", "/.well-known/oauth-authorization-server", server.addr, &[], b""),
    )
    .expect("metadata over TLS");
    let metadata = metadata.json().expect("JSON metadata");
    assert_eq!(metadata["token_endpoint"], format!("{}/oauth2/token", server.base));

    // Plain HTTP on the TLS port gets no HTTP response.
    let plain = crate::util::raw_exchange(server.addr, &token_request);
    assert!(plain.is_err(), "plain HTTP must not be answered on the HTTPS port: {plain:?}");

    // A new certificate, then SIGHUP: new connections see it.
    let second = write_certificate(&files.cert, &files.key);
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(resp) = tls_exchange(&server, &second, &token_request) {
            expect_refresh_token(&resp, "a token with the reloaded certificate");
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was not served within 10 s of SIGHUP");
        pause(Duration::from_millis(100));
    }
    assert!(tls_exchange(&server, &first, &token_request).is_err(), "the old certificate is no longer served");

    // A broken file and SIGHUP: the previous certificate stays, and says so.
    std::fs::write(&files.cert, "not a certificate").expect("break the certificate");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr_now().contains("tls_reload_failed") {
        assert!(Instant::now() < deadline, "no log line about the failed reload:\n{}", server.stderr_now());
        pause(Duration::from_millis(50));
    }
    let resp = tls_exchange(&server, &second, &token_request).expect("still served after a failed reload");
    expect_refresh_token(&resp, "a token after the failed reload");

    assert!(server.is_running(), "SIGHUP does not stop the server");
    let status = server.terminate();
    let (_, stderr) = server.output();
    assert_eq!(status.code(), Some(0), "graceful exit; stderr:\n{stderr}");
    assert!(!stderr.contains(&client.client_secret), "no secret in the log");
}

#[tokio::test]
async fn unusable_tls_files_stop_the_server_at_start() {
    let files = files();
    write_certificate(&files.cert, &files.key);
    let cert = files.cert.to_str().expect("utf-8 path");
    let missing =
        Server::builder().args(&["--tls-cert", cert, "--tls-key", "/nonexistent/key.pem"]).run_expecting_exit();
    assert!(!missing.status.success());
    assert!(missing.stderr.contains("/nonexistent/key.pem"), "names the file: {}", missing.stderr);
    let alone = Server::builder().args(&["--tls-cert", cert]).run_expecting_exit();
    assert!(!alone.status.success());
    assert!(alone.stderr.contains("tls_cert and tls_key"), "{}", alone.stderr);
}

/// Without TLS, SIGHUP is logged and the server keeps serving (its default
/// action would end the process).
#[tokio::test]
async fn sighup_without_tls_changes_nothing() {
    let server = Server::start(&[]);
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr_now().contains("SIGHUP received") {
        assert!(Instant::now() < deadline, "SIGHUP not noticed:\n{}", server.stderr_now());
        pause(Duration::from_millis(50));
    }
    assert_eq!(crate::util::get(&server, "/healthz").await.status, 200);
}
