//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect`
//! (RFC 7662), through the shared [`client_request`](super::client_request)
//! flow, so they authenticate, limit, log and count exactly as the token
//! endpoint does. Both answers carry `Cache-Control: no-store`.

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::response::{self, HttpResponse};
use super::{App, RequestNote, client_request};
use crate::grant::revoke_introspect::RevokeIntrospectRequest;

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth2/revoke`.
    Revoke,
    /// `POST /oauth2/introspect`.
    Introspect,
}

/// Answers a revocation or introspection request and notes what the
/// access log may say of it.
pub async fn handle(app: &App, endpoint: Endpoint, request: Request<Incoming>) -> (HttpResponse, RequestNote) {
    match endpoint {
        // RFC 7009 §2.2: 200 with an empty body, whatever the token was.
        Endpoint::Revoke => {
            client_request::handle(
                app,
                request,
                "the revocation endpoint",
                RevokeIntrospectRequest::parse,
                |typed| app.issuer.revoke(typed),
                |()| response::no_store_empty(StatusCode::OK),
            )
            .await
        }
        Endpoint::Introspect => {
            client_request::handle(
                app,
                request,
                "the introspection endpoint",
                RevokeIntrospectRequest::parse,
                |typed| app.issuer.introspect(typed),
                |body| response::no_store_json(&body),
            )
            .await
        }
    }
}
