//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect`
//! (RFC 7662): HTTP framing only. The request is read exactly as the token
//! endpoint reads it ([`super::token::read_params`]), errors are answered
//! by the same [`response::token_error`], and both answers carry
//! `Cache-Control: no-store`.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use tessera_shared::ids::is_client_id;

use super::response::{self, HttpResponse};
use super::token::{Rejection, limit, no_credentials, peer_of, read_params, record_authentication};
use super::{App, RequestNote};
use crate::grant::error::TokenError;
use crate::grant::revoke_introspect::RevokeIntrospectRequest;

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth2/revoke`.
    Revoke,
    /// `POST /oauth2/introspect`.
    Introspect,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Self::Revoke => "the revocation endpoint",
            Self::Introspect => "the introspection endpoint",
        }
    }
}

/// Answers a revocation or introspection request and notes what the
/// access log may say of it.
pub async fn handle(app: &App, endpoint: Endpoint, request: Request<Incoming>) -> (HttpResponse, RequestNote) {
    let mut note = RequestNote::default();
    let peer = peer_of(&request);
    let parsed = match read_params(app, request).await {
        Ok((params, authorization)) => {
            RevokeIntrospectRequest::parse(&params, authorization, app.parse_policy).map_err(Rejection::Token)
        }
        Err(rejection) => Err(rejection),
    };
    // Client authentication here is as guessable as at the token
    // endpoint, so the same limiter guards it.
    let request = match parsed {
        Ok(request) => request,
        Err(Rejection::Token(TokenError::InvalidClient)) => return (no_credentials(app, peer, &mut note), note),
        Err(rejection) => return (rejection.into_response_for(endpoint.name()), note),
    };
    // Only a well-formed ID is logged, as at the token endpoint.
    if is_client_id(&request.credentials.client_id) {
        note.client_id = Some(request.credentials.client_id.clone());
    }
    let client_id = note.client_id.clone();
    if let Some(refused) = limit(app, peer, client_id.as_deref(), &mut note) {
        return (refused, note);
    }
    let response = match endpoint {
        // RFC 7009 §2.2: 200 with an empty body, whatever the token was.
        Endpoint::Revoke => {
            let result = app.issuer.revoke(request).await;
            record_authentication(app, peer, client_id.as_deref(), &result);
            result.map(|()| response::no_store_empty(StatusCode::OK))
        }
        Endpoint::Introspect => {
            let result = app.issuer.introspect(request).await;
            record_authentication(app, peer, client_id.as_deref(), &result);
            result.map(|body| response::no_store_json(&body))
        }
    };
    let response = response.unwrap_or_else(|error: TokenError| {
        if let Some(cause) = error.internal_cause() {
            tracing::error!(%cause, "revocation or introspection failed inside the server");
        }
        response::token_error(&error)
    });
    (response, note)
}
