//! Helpers for the CLI tests: running the real binary, and a fake admin
//! server that answers canned JSON on a Unix socket.
//!
//! The fake is strict so that a passing test means something: it answers a
//! route only when the method, path, `Host` header and JSON body are exactly
//! the ones expected, and otherwise answers 500 with an admin error naming
//! what it got, which the binary then reports on stderr.

// clippy's allow-unwrap-in-tests covers #[test] functions, not the helpers
// they share; here, as there, a failure should panic the test.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::UnixListener;
use tokio::runtime::Runtime;

/// A well-formed client ID.
pub const ID: &str = "oa2-client-id_zmNtW-D0Toqpz4AZnBLCIlklBrz9ynU-";
/// Another one.
pub const ID2: &str = "oa2-client-id_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/// A well-formed secret.
pub const SECRET: &str = "Esiu5g_OVc0ZxoH_F3X-4-lIoMvcU3yJjBN4QoQq";

/// The binary under test, with no data dir inherited from the environment
/// and no terminal to prompt on.
pub fn admin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera-admin"));
    command.env_remove("TESSERA_DATA_DIR").stdin(Stdio::null());
    command
}

/// What a run produced, as text.
#[derive(Debug)]
pub struct Run {
    /// The exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

/// Runs `command` to completion.
pub fn run(command: &mut Command) -> Run {
    let Output { status, stdout, stderr } = command.output().unwrap();
    Run { code: status.code(), stdout: String::from_utf8(stdout).unwrap(), stderr: String::from_utf8(stderr).unwrap() }
}

/// One request the fake answers.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method it must use.
    pub method: Method,
    /// The path it must ask for.
    pub path: String,
    /// The JSON body it must carry; None: it must carry none.
    pub body: Option<Value>,
    /// The status of the answer.
    pub status: StatusCode,
    /// The JSON of the answer.
    pub answer: Value,
}

impl Route {
    /// A route answering 200 with `answer`.
    pub fn ok(method: Method, path: &str, body: Option<Value>, answer: Value) -> Self {
        Self { method, path: path.to_owned(), body, status: StatusCode::OK, answer }
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// The body, parsed as JSON, if there was one.
    pub body: Option<Value>,
}

/// A fake admin server on `<temp dir>/admin.sock`, stopped on drop.
pub struct FakeServer {
    /// The data dir holding the socket.
    dir: TempDir,
    /// Every request received, in order.
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Runs the accept loop; dropping it stops the server.
    _runtime: Runtime,
}

impl FakeServer {
    /// Starts serving `routes`.
    pub fn start(routes: Vec<Route>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(async { UnixListener::bind(&socket) }).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        runtime.spawn(serve(listener, routes, Arc::clone(&seen)));
        Self { dir, seen, _runtime: runtime }
    }

    /// The data dir to pass as `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(listener: UnixListener, routes: Arc<Vec<Route>>, seen: Arc<Mutex<Vec<Seen>>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let routes = Arc::clone(&routes);
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let routes = Arc::clone(&routes);
                let seen = Arc::clone(&seen);
                async move { Ok::<_, Infallible>(answer(request, &routes, &seen).await) }
            });
            // A client hanging up is the client's business, and the test's.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: Request<Incoming>, routes: &[Route], seen: &Mutex<Vec<Seen>>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let json_body = (!body.is_empty()).then(|| serde_json::from_slice::<Value>(&body));
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let path = parts.uri.path_and_query().map_or_else(String::new, ToString::to_string);
    let parsed_body = match &json_body {
        Some(Ok(value)) => Some(value.clone()),
        _ => None,
    };
    seen.lock().unwrap().push(Seen { method: parts.method.clone(), path: path.clone(), body: parsed_body.clone() });

    let route = routes.iter().find(|r| {
        r.method == parts.method
            && r.path == path
            && host == Some("localhost")
            && match (&r.body, &json_body) {
                (None, None) => true,
                (Some(expected), Some(Ok(got))) => content_type == Some("application/json") && expected == got,
                _ => false,
            }
    });
    let (status, answer) = match route {
        Some(route) => (route.status, route.answer.clone()),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "error": "internal",
                "message": format!(
                    "fake admin server: unexpected {} {path} host={host:?} content-type={content_type:?} body={}",
                    parts.method,
                    String::from_utf8_lossy(&body)
                ),
            }),
        ),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(answer.to_string())))
        .unwrap()
}

/// A `ClientInfo` as the server sends it.
pub fn client_info(id: &str, name: &str) -> Value {
    json!({
        "client_id": id,
        "name": name,
        "status": "active",
        "scopes": ["read"],
        "refresh_tokens": true,
        "created_at": 1_700_000_000,
        "secret_set_at": 1_700_000_000,
        "active_refresh_families": 0,
        "auth_method": "client_secret",
    })
}
