//! An example resource server that trusts Tessera's access tokens.
//!
//! It serves one protected endpoint, `GET /api/v1/organization`, which needs
//! a valid access token with the scope `organization:read` (configurable):
//!
//! - no token: 401 with `WWW-Authenticate: Bearer`;
//! - a bad token (forged, expired, wrong issuer or audience, ...): 401 with
//!   `WWW-Authenticate: Bearer error="invalid_token", ...`;
//! - a good token without the scope: 403 with
//!   `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`;
//! - a DPoP-bound token (RFC 9449) must come as `Authorization: DPoP` with
//!   a `DPoP` proof of its key for this request; as a bearer token, or with
//!   a bad proof, it gets 401 with `WWW-Authenticate: DPoP error=..., algs=...`;
//! - otherwise 200 with the organization as JSON.
//!
//! ```text
//! resource-server --jwks http://127.0.0.1:8080/.well-known/jwks.json \
//!     --issuer http://127.0.0.1:8080 [--audience AUD] [--scope SCOPE] [--listen 127.0.0.1:9090] \
//!     [--max-stale SECONDS] [--public-url URL]
//! ```
//!
//! `--public-url` is the base URL clients reach it at (behind a proxy, say),
//! which DPoP proofs name in `htu`; default `http://ADDR` of the listener.
//!
//! `--jwks` takes a URL (fetched and cached; `https://`, or plain HTTP to a
//! loopback address) or a JWKS file. The keys are refreshed in the
//! background; keys that could not be refreshed for `--max-stale` seconds
//! (default 86400) past their max-age are no longer trusted. When ready it
//! prints `listening on http://ADDR` on stdout.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tessera_shared::verify::{FetchOptions, Verifier};

/// The settings from the command line.
#[derive(Debug)]
struct Settings {
    jwks: String,
    issuer: String,
    audience: Option<String>,
    scope: String,
    listen: SocketAddr,
    /// How long past their max-age unrefreshable keys are still used.
    max_stale: Option<std::time::Duration>,
    /// The base URL clients reach this server at, for DPoP's `htu`.
    public_url: Option<String>,
}

const USAGE: &str = "usage: resource-server --jwks URL|FILE --issuer URL [--audience AUD] [--scope SCOPE] [--listen ADDR] \
     [--max-stale SECONDS] [--public-url URL]";

fn settings(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let (mut jwks, mut issuer, mut audience, mut max_stale, mut public_url) = (None, None, None, None, None);
    let mut scope = "organization:read".to_owned();
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9090));
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value; {USAGE}"));
        match flag.as_str() {
            "--jwks" => jwks = Some(value()?),
            "--issuer" => issuer = Some(value()?),
            "--audience" => audience = Some(value()?),
            "--scope" => scope = value()?,
            "--public-url" => public_url = Some(value()?.trim_end_matches('/').to_owned()),
            "--listen" => listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--max-stale" => {
                let seconds: u64 = value()?.parse().map_err(|e| format!("--max-stale: {e}"))?;
                max_stale = Some(std::time::Duration::from_secs(seconds));
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(Settings {
        jwks: jwks.ok_or_else(|| format!("--jwks is required; {USAGE}"))?,
        issuer: issuer.ok_or_else(|| format!("--issuer is required; {USAGE}"))?,
        audience,
        scope,
        listen,
        max_stale,
        public_url,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("resource-server: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings(std::env::args().skip(1))?;
    // Tessera's default audience is the issuer itself.
    let audience = settings.audience.clone().unwrap_or_else(|| settings.issuer.clone());
    let verifier = if settings.jwks.starts_with("http://") || settings.jwks.starts_with("https://") {
        let mut options = FetchOptions::default();
        if let Some(max_stale) = settings.max_stale {
            options.max_stale = max_stale;
        }
        Verifier::from_jwks_url_with(&settings.jwks, &settings.issuer, audience, options).await?
    } else {
        Verifier::from_jwks_file(&settings.jwks, &settings.issuer, audience)?
    };
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let local = listener.local_addr()?;
    let public_url = settings.public_url.unwrap_or_else(|| format!("http://{local}"));
    let state = Arc::new(State { verifier, scope: settings.scope, public_url });
    println!("listening on http://{local}");
    loop {
        let (stream, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            // A client that goes away mid-request is not our concern.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// What every request needs.
struct State {
    verifier: Verifier,
    scope: String,
    /// `scheme://host[:port]` as clients reach this server.
    public_url: String,
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if request.uri().path() != "/api/v1/organization" || request.method() != Method::GET {
        return Ok(json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "not_found" })));
    }
    // The whole of the protection: one call, for Bearer and DPoP tokens.
    let url = format!("{}{}", state.public_url, request.uri().path());
    let method = request.method().as_str();
    match state.verifier.authorize_request(request.headers(), method, &url, &[state.scope.as_str()]).await {
        Ok(claims) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "organization": { "id": 1, "name": "Example Org" },
                "client_id": claims.client_id,
            }),
        )),
        Err(error) => {
            let mut response = json(
                error.status(),
                &serde_json::json!({ "error": error.error_code().unwrap_or("unauthorized"), "error_description": error.description() }),
            );
            response.headers_mut().insert(WWW_AUTHENTICATE, error.www_authenticate());
            Ok(response)
        }
    }
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}
