//! The public HTTP interface: routing, framing and the access log.
//!
//! - [`server`]: the accept loop, connection bounds and graceful shutdown.
//! - [`client_request`]: the one request flow of the three
//!   client-authenticated endpoints (framing, limiter, log, metrics).
//! - [`token`]: `POST /oauth2/token`.
//! - [`revoke_introspect`]: `POST /oauth2/revoke` and `POST /oauth2/introspect`.
//! - [`well_known`]: JWKS, RFC 8414 metadata and health.
//! - [`metrics_endpoint`]: `GET /metrics`.
//! - [`params`], [`basic`]: strict decoders for parameters and Basic credentials.
//! - [`response`]: building responses; the one mapping of errors to HTTP.

pub mod basic;
pub mod client_request;
pub mod metrics_endpoint;
pub mod params;
pub mod response;
pub mod revoke_introspect;
pub mod server;
pub mod token;
pub mod well_known;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use crate::config::Limits;
use crate::grant::request::ParsePolicy;
use crate::issuer::Issuer;
use crate::keys::KeyHandle;
use crate::metrics::Metrics;
use crate::ratelimit::AuthLimiter;
use crate::store::Store;
use response::HttpResponse;

/// Everything a request handler needs. Shared by all connections.
#[derive(Debug)]
pub struct App {
    /// The token service.
    pub issuer: Issuer,
    /// The current signing keys, for the JWKS.
    pub keys: KeyHandle,
    /// The JWKS `Cache-Control` (`public, max-age=<jwks_max_age>`).
    pub jwks_cache_control: http::HeaderValue,
    /// Storage, for the health check.
    pub store: Arc<dyn Store>,
    /// The RFC 8414 document, serialised once.
    pub metadata_json: Bytes,
    /// Request bounds.
    pub limits: Limits,
    /// Token request parsing options.
    pub parse_policy: ParsePolicy,
    /// The limiter of failed client authentications.
    pub limiter: AuthLimiter,
    /// Request counters and latencies.
    pub metrics: Metrics,
    /// Whether `GET /metrics` is served.
    pub serve_metrics: bool,
    /// Whether every background task still runs, for the health check.
    pub tasks: crate::supervise::TaskHealth,
}

/// What a handler tells the access log beyond method, path and status.
/// Holds nothing secret by construction.
#[derive(Debug, Default, Clone)]
pub struct RequestNote {
    /// The grant type, once the request parsed.
    pub grant_type: Option<&'static str>,
    /// The client ID, if well-formed.
    pub client_id: Option<String>,
    /// The OAuth error code (or `rate_limited`) of a failed request, for
    /// the metrics.
    pub error: Option<&'static str>,
}

/// The routes, as logged. Any other path is logged as `other`, since a
/// path could carry anything, a token included.
const ROUTES: [&str; 7] = [
    "/oauth2/token",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/healthz",
    "/oauth2/revoke",
    "/oauth2/introspect",
    "/metrics",
];

/// Routes a request and writes its access-log line.
pub async fn route(app: Arc<App>, request: Request<Incoming>) -> Result<HttpResponse, std::convert::Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = ROUTES.iter().copied().find(|route| *route == request.uri().path());
    let (response, note) = match (path, &method) {
        (Some("/oauth2/token"), _) => token::handle(&app, request).await,
        (Some("/oauth2/revoke"), _) => {
            revoke_introspect::handle(&app, revoke_introspect::Endpoint::Revoke, request).await
        }
        (Some("/oauth2/introspect"), _) => {
            revoke_introspect::handle(&app, revoke_introspect::Endpoint::Introspect, request).await
        }
        (Some("/.well-known/jwks.json"), &Method::GET) => (well_known::jwks(&app, &request), RequestNote::default()),
        (Some("/.well-known/oauth-authorization-server"), &Method::GET) => {
            (well_known::metadata(&app), RequestNote::default())
        }
        (Some("/healthz"), &Method::GET) => (well_known::health(&app).await, RequestNote::default()),
        (Some("/metrics"), _) if !app.serve_metrics => {
            (response::plain_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"), RequestNote::default())
        }
        (Some("/metrics"), &Method::GET) => (metrics_endpoint::scrape(&app), RequestNote::default()),
        (Some(_), _) => (
            response::with_allow(
                response::plain_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET"),
                "GET",
            ),
            RequestNote::default(),
        ),
        (None, _) => {
            (response::plain_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"), RequestNote::default())
        }
    };
    let elapsed = started.elapsed();
    let outcome = match response.status().as_u16() {
        status if status < 400 => "success",
        status => note.error.unwrap_or(if status < 500 { "client_error" } else { "server_error" }),
    };
    app.metrics.observe_request(path.unwrap_or("other"), note.grant_type.unwrap_or("none"), outcome, elapsed);
    tracing::info!(
        target: crate::telemetry::batched::BATCHED_TARGET,
        method = %method,
        path = path.unwrap_or("other"),
        status = response.status().as_u16(),
        grant_type = note.grant_type,
        client_id = note.client_id.as_deref(),
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}
