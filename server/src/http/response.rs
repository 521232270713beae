//! Building responses. [`token_error`] is the one place where a
//! [`TokenError`] becomes a status, headers and a JSON body.

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tessera_shared::wire::{ErrorCode, ErrorResponse, TokenResponse};

use crate::grant::error::TokenError;

/// Every response Tessera sends.
pub type HttpResponse = Response<Full<Bytes>>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
/// RFC 6749 §5.2: a 401 names the scheme the client should use.
const BASIC_CHALLENGE: HeaderValue = HeaderValue::from_static("Basic realm=\"tessera\"");

/// A response with a JSON body.
pub fn json_bytes(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

/// A response with `value` serialised as JSON.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    // Sized for a token response, so serialising it does not regrow.
    let mut body = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => json_bytes(status, Bytes::from(body)),
        Err(_) => json_bytes(StatusCode::INTERNAL_SERVER_ERROR, Bytes::from_static(b"{\"error\":\"server_error\"}")),
    }
}

/// Token responses must never be cached (RFC 6749 §5.1).
fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, NO_STORE);
    headers.insert(PRAGMA, NO_CACHE);
    response
}

/// `value` as JSON with the no-store headers (introspection, RFC 7662 §2.2).
pub fn no_store_json<T: Serialize>(value: &T) -> HttpResponse {
    no_store(json(StatusCode::OK, value))
}

/// An empty body with the no-store headers (revocation, RFC 7009 §2.2).
pub fn no_store_empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    no_store(response)
}

/// 200 with the token JSON.
pub fn token_success(body: &TokenResponse) -> HttpResponse {
    no_store(json(StatusCode::OK, body))
}

/// The response for a failed token request.
pub fn token_error(error: &TokenError) -> HttpResponse {
    let status = match error.code() {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    oauth_error(status, error.code(), &error.to_string())
}

/// An RFC 6749 §5.2 error body with the no-store headers, and the Basic
/// challenge on every 401.
pub fn oauth_error(status: StatusCode, code: ErrorCode, description: &str) -> HttpResponse {
    let body = ErrorResponse { error: code, error_description: description.to_owned() };
    let mut response = no_store(json(status, &body));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(WWW_AUTHENTICATE, BASIC_CHALLENGE);
    }
    response
}

/// 429 with `Retry-After` (whole seconds, at least 1) and the OAuth error
/// `temporarily_unavailable`: the client failed to authenticate too often.
pub fn rate_limited(retry_after: std::time::Duration) -> HttpResponse {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut response = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TemporarilyUnavailable,
        "too many failed client authentications; retry later",
    );
    response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// 405 (or 400 for the token endpoint) with the allowed methods.
pub fn with_allow(mut response: HttpResponse, allowed: &'static str) -> HttpResponse {
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
    response
}

/// A JSON error for requests outside the OAuth endpoints.
pub fn plain_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": error, "error_description": description }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::wire::INVALID_CLIENT_DESCRIPTION;

    #[test]
    fn invalid_client_is_401_with_a_basic_challenge() {
        let response = token_error(&TokenError::InvalidClient);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Basic realm=\"tessera\"");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[PRAGMA], "no-cache");
        assert_eq!(TokenError::InvalidClient.to_string(), INVALID_CLIENT_DESCRIPTION);
    }

    #[test]
    fn other_client_errors_are_400_without_a_challenge() {
        for error in [
            TokenError::InvalidRequest("x"),
            TokenError::InvalidGrant("x"),
            TokenError::UnauthorizedClient("x"),
            TokenError::UnsupportedGrantType,
            TokenError::InvalidScope("x"),
            TokenError::InvalidDpopProof("x"),
        ] {
            let response = token_error(&error);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{error:?}");
            assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        }
    }

    /// RFC 9449 §5: a refresh token bound to a DPoP key, presented without
    /// a proof of that key, is 400 `invalid_dpop_proof`.
    #[test]
    fn a_dpop_key_mismatch_is_400_invalid_dpop_proof() {
        let error = TokenError::InvalidDpopProof("the refresh token is bound to another DPoP key");
        assert_eq!(error.code().as_str(), "invalid_dpop_proof");
        let response = token_error(&error);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }

    #[test]
    fn storage_failures_are_500_and_say_nothing_inside() {
        let error = TokenError::Storage(crate::store::StoreError::internal("write", "disk /secret/path full"));
        let response = token_error(&error);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.to_string().contains("/secret/path"));
    }
}
