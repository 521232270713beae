//! The documents a resource server or client reads: the JWKS, the RFC 8414
//! metadata, and the health check.

use bytes::Bytes;
use http::StatusCode;
use http::header::{CACHE_CONTROL, HeaderValue, InvalidHeaderValue};
use tessera_shared::wire::AuthorizationServerMetadata;

use super::App;
use super::response::{self, HttpResponse};

/// The JWKS `Cache-Control`: how long a resource server may cache it. A
/// next key is published longer than this before it signs, so caches always
/// know it in time (see `keys::lifecycle`).
///
/// # Errors
/// Never in practice (digits only).
pub fn jwks_cache_control(max_age: u64) -> Result<HeaderValue, InvalidHeaderValue> {
    HeaderValue::from_str(&format!("public, max-age={max_age}"))
}

/// `GET /.well-known/jwks.json`: the ring current at this instant.
pub fn jwks(app: &App) -> HttpResponse {
    let mut response = response::json_bytes(StatusCode::OK, app.keys.current().jwks_json());
    response.headers_mut().insert(CACHE_CONTROL, app.jwks_cache_control.clone());
    response
}

/// `GET /.well-known/oauth-authorization-server`.
pub fn metadata(app: &App) -> HttpResponse {
    response::json_bytes(StatusCode::OK, app.metadata_json.clone())
}

/// `GET /healthz`: 200 when storage answers, 503 otherwise.
pub async fn health(app: &App) -> HttpResponse {
    match app.store.health().await {
        Ok(()) => response::json(StatusCode::OK, &serde_json::json!({ "status": "ok", "storage": "ok" })),
        Err(error) => {
            tracing::error!(%error, "health check: storage failing");
            response::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "status": "unavailable", "storage": "failing" }),
            )
        }
    }
}

/// The metadata document for `issuer`.
///
/// # Errors
/// If it does not serialise (it always does).
pub fn metadata_document(issuer: &str) -> Result<Bytes, serde_json::Error> {
    let base = issuer.trim_end_matches('/');
    let metadata = AuthorizationServerMetadata {
        issuer: issuer.to_owned(),
        token_endpoint: format!("{base}/oauth2/token"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        grant_types_supported: vec!["client_credentials".into(), "refresh_token".into()],
        token_endpoint_auth_methods_supported: vec!["client_secret_basic".into(), "client_secret_post".into()],
        revocation_endpoint: None,
        introspection_endpoint: None,
        response_types_supported: Vec::new(),
    };
    serde_json::to_vec(&metadata).map(Bytes::from)
}
