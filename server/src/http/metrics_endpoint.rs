//! `GET /metrics`: the Prometheus scrape, on the public listener.
//!
//! It carries no client ID, secret or token (see [`crate::metrics`]);
//! operators who do not want it public switch it off with
//! `--metrics false` or block the path at their proxy.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::App;
use super::response::HttpResponse;
use crate::clock::{Clock as _, SystemClock};

/// The scrape; the signing key's age is computed now.
pub fn scrape(app: &App) -> HttpResponse {
    let now = SystemClock.now();
    let ring = app.keys.current();
    let active = ring.infos().iter().find(|k| k.state == tessera_shared::admin::KeyState::Active);
    if let Some(key) = active {
        // Age as the signing key: since it became active (created, for the first key).
        app.metrics.set_signing_key_age(now.saturating_sub(key.activated_at.unwrap_or(key.created_at)));
    }
    let mut response = Response::new(Full::new(Bytes::from(app.metrics.encode())));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
