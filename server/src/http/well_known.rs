//! The documents a resource server or client reads: the JWKS, the RFC 8414
//! metadata, and the health check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, ETAG, HeaderValue, IF_NONE_MATCH, InvalidHeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
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

/// `GET /.well-known/jwks.json`: the ring current at this instant, with an
/// `ETag` (a digest of the document) so a cache revalidates with
/// `If-None-Match` and gets a 304 while the keys are unchanged.
pub fn jwks<B>(app: &App, request: &Request<B>) -> HttpResponse {
    let body = app.keys.current().jwks_json();
    let etag = etag_of(&body);
    let mut response = if if_none_match(request.headers(), &etag) {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        response::json_bytes(StatusCode::OK, body)
    };
    response.headers_mut().insert(CACHE_CONTROL, app.jwks_cache_control.clone());
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// A strong entity tag: base64url of the first 16 bytes of the SHA-256 of
/// the document, quoted.
fn etag_of(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]))
}

/// Whether `If-None-Match` names `etag` or is `*` (RFC 9110 §13.1.2; weak
/// comparison, so `W/` prefixes match too).
fn if_none_match(headers: &http::HeaderMap, etag: &str) -> bool {
    headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

/// `GET /.well-known/oauth-authorization-server`.
pub fn metadata(app: &App) -> HttpResponse {
    response::json_bytes(StatusCode::OK, app.metadata_json.clone())
}

/// `GET /healthz`: 200 when storage answers and every background task
/// runs, 503 otherwise.
pub async fn health(app: &App) -> HttpResponse {
    let storage_ok = match app.store.health().await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(%error, "health check: storage failing");
            false
        }
    };
    let (status, body) = health_answer(storage_ok, &app.tasks.dead());
    response::json(status, &body)
}

/// The health answer: 503 if storage fails or a background task died (the
/// task names are logged when they die, not published here).
fn health_answer(storage_ok: bool, dead_tasks: &[&str]) -> (StatusCode, serde_json::Value) {
    let tasks_ok = dead_tasks.is_empty();
    let status = if storage_ok && tasks_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = |ok: bool| if ok { "ok" } else { "failing" };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
        "storage": word(storage_ok),
        "background_tasks": word(tasks_ok),
    });
    (status, body)
}

/// The metadata document for `issuer`.
///
/// # Errors
/// If it does not serialise (it always does).
pub fn metadata_document(issuer: &str) -> Result<Bytes, serde_json::Error> {
    let base = issuer.trim_end_matches('/');
    // One authentication layer serves the three endpoints alike.
    let auth_methods: Vec<String> =
        ["client_secret_basic", "client_secret_post", "private_key_jwt"].map(String::from).to_vec();
    let metadata = AuthorizationServerMetadata {
        issuer: issuer.to_owned(),
        token_endpoint: format!("{base}/oauth2/token"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        grant_types_supported: vec!["client_credentials".into(), "refresh_token".into()],
        dpop_signing_alg_values_supported: tessera_shared::dpop::SIGNING_ALGS.iter().map(|a| (*a).to_owned()).collect(),
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        token_endpoint_auth_signing_alg_values_supported: ["ES256", "EdDSA", "RS256", "PS256"]
            .map(String::from)
            .to_vec(),
        revocation_endpoint_auth_methods_supported: auth_methods.clone(),
        introspection_endpoint_auth_methods_supported: auth_methods,
        revocation_endpoint: Some(format!("{base}/oauth2/revoke")),
        introspection_endpoint: Some(format!("{base}/oauth2/introspect")),
        response_types_supported: Vec::new(),
    };
    serde_json::to_vec(&metadata).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &'static str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn if_none_match_compares_tags_weakly_and_accepts_a_list() {
        let etag = etag_of(b"{}");
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 24);
        let listed = format!("\"other\", W/{etag}");
        let mut h = http::HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(&listed).unwrap());
        assert!(if_none_match(&h, &etag));
        assert!(if_none_match(&headers("*"), &etag));
        assert!(!if_none_match(&headers("\"stale\""), &etag));
        assert!(!if_none_match(&http::HeaderMap::new(), &etag));
    }

    #[test]
    fn health_fails_when_storage_fails_or_a_background_task_died() {
        let (status, body) = health_answer(true, &[]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::json!({"status": "ok", "storage": "ok", "background_tasks": "ok"}));
        let (status, body) = health_answer(true, &["purge"]);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, serde_json::json!({"status": "unavailable", "storage": "ok", "background_tasks": "failing"}));
        let (status, body) = health_answer(false, &[]);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["storage"], "failing");
    }

    #[test]
    fn metadata_lists_revocation_and_introspection() {
        let doc: AuthorizationServerMetadata =
            serde_json::from_slice(&metadata_document("https://auth.test/").unwrap()).unwrap();
        assert_eq!(doc.revocation_endpoint.as_deref(), Some("https://auth.test/oauth2/revoke"));
        assert_eq!(doc.introspection_endpoint.as_deref(), Some("https://auth.test/oauth2/introspect"));
    }

    /// Issue 16: private_key_jwt and its algorithms, on all three endpoints.
    #[test]
    fn metadata_lists_private_key_jwt_and_its_algorithms() {
        let doc: AuthorizationServerMetadata =
            serde_json::from_slice(&metadata_document("https://auth.test").unwrap()).unwrap();
        let methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
        assert_eq!(doc.token_endpoint_auth_methods_supported, methods);
        assert_eq!(doc.revocation_endpoint_auth_methods_supported, methods);
        assert_eq!(doc.introspection_endpoint_auth_methods_supported, methods);
        assert_eq!(doc.token_endpoint_auth_signing_alg_values_supported, ["ES256", "EdDSA", "RS256", "PS256"]);
    }
}
