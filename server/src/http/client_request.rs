//! The request flow of every client-authenticated endpoint (token,
//! revocation, introspection), written once so the three cannot drift:
//!
//! 1. read a POST's parameters from the query string and a form body,
//!    within their bounds, and its `Authorization` header;
//! 2. parse them into the endpoint's typed request;
//! 3. ask the [`AuthLimiter`](crate::ratelimit::AuthLimiter) whether the
//!    source may try to authenticate;
//! 4. hand the request to the service, tell the limiter how authentication
//!    went, and map the result, noting its OAuth error code for the access
//!    log and the metrics.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tessera_shared::ids::is_client_id;
use tessera_shared::wire::ErrorCode;

use super::response::{self, HttpResponse};
use super::server::PeerAddr;
use super::{App, RequestNote, basic, params};
use crate::client_auth::{AuthorizationHeader, Presented};
use crate::grant::error::TokenError;
use crate::grant::request::{Param, ParsePolicy, Source, TokenRequest};
use crate::grant::revoke_introspect::RevokeIntrospectRequest;
use crate::ratelimit::Admission;

/// A typed request of a client-authenticated endpoint.
pub trait ClientRequest {
    /// The credentials it presents.
    fn credentials(&self) -> &Presented;

    /// The grant type, for the access log and metrics; `None` where there
    /// is no grant.
    fn grant_type(&self) -> Option<&'static str> {
        None
    }
}

impl ClientRequest for TokenRequest {
    fn credentials(&self) -> &Presented {
        &self.credentials
    }

    fn grant_type(&self) -> Option<&'static str> {
        Some(self.grant.name())
    }
}

impl ClientRequest for RevokeIntrospectRequest {
    fn credentials(&self) -> &Presented {
        &self.credentials
    }
}

/// Parses an endpoint's request from its parameters and Authorization header.
pub type Parse<R> = fn(&[Param], AuthorizationHeader, ParsePolicy) -> Result<R, TokenError>;

/// Answers one request of a client-authenticated endpoint: `parse` types
/// it, `serve` runs it (authentication included), `respond` frames a
/// success. `endpoint` names it in the wrong-method error.
pub async fn handle<R, T, Fut>(
    app: &App,
    request: Request<Incoming>,
    endpoint: &str,
    parse: Parse<R>,
    serve: impl FnOnce(R) -> Fut,
    respond: impl FnOnce(T) -> HttpResponse,
) -> (HttpResponse, RequestNote)
where
    R: ClientRequest,
    Fut: Future<Output = Result<T, TokenError>>,
{
    let mut note = RequestNote::default();
    let peer = peer_of(&request);
    let parsed = match read_params(app, request).await {
        Ok((params, authorization)) => parse(&params, authorization, app.parse_policy).map_err(Rejection::Token),
        Err(rejection) => Err(rejection),
    };
    let typed = match parsed {
        Ok(typed) => typed,
        // No usable credentials at all is a failed authentication too, of
        // the address only.
        Err(Rejection::Token(TokenError::InvalidClient)) => return (no_credentials(app, peer, &mut note), note),
        Err(rejection) => {
            note.error = Some(rejection.code().as_str());
            return (rejection.into_response_for(endpoint), note);
        }
    };
    note.grant_type = typed.grant_type();
    // Only a well-formed ID is logged: a caller could put anything (a
    // secret by mistake) in the client_id field.
    if is_client_id(typed.credentials().client_id()) {
        note.client_id = Some(typed.credentials().client_id().to_owned());
    }
    let client_id = note.client_id.clone();
    if let Some(refused) = limit(app, peer, client_id.as_deref(), &mut note) {
        return (refused, note);
    }
    let result = serve(typed).await;
    record_authentication(app, peer, client_id.as_deref(), &result);
    let response = match result {
        Ok(answer) => respond(answer),
        Err(error) => {
            if let Some(cause) = error.internal_cause() {
                tracing::error!(%cause, endpoint, "request failed inside the server");
            }
            note.error = Some(error.code().as_str());
            response::token_error(&error)
        }
    };
    (response, note)
}

/// The source address the limiter keys on.
fn peer_of(request: &Request<Incoming>) -> IpAddr {
    // Without the extension (never in the server) all requests share one key.
    request.extensions().get::<PeerAddr>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip())
}

/// Answers a request without usable client credentials: a failed
/// authentication of the address, or a 429 if it is already limited.
fn no_credentials(app: &App, peer: IpAddr, note: &mut RequestNote) -> HttpResponse {
    if let Some(refused) = limit(app, peer, None, note) {
        return refused;
    }
    app.limiter.failure(peer, None, Instant::now());
    note.error = Some(ErrorCode::InvalidClient.as_str());
    response::token_error(&TokenError::InvalidClient)
}

/// The 429 for a source the limiter refuses, if it does.
fn limit(app: &App, peer: IpAddr, client_id: Option<&str>, note: &mut RequestNote) -> Option<HttpResponse> {
    match app.limiter.check(peer, client_id, Instant::now()) {
        Admission::Allowed => None,
        Admission::Limited { scope, retry_after } => {
            app.metrics.rate_limited(scope.as_str());
            note.error = Some("rate_limited");
            Some(response::rate_limited(retry_after))
        }
    }
}

/// Tells the limiter whether the client authenticated: every error after
/// authentication (grant, scope, ...) means it did.
fn record_authentication<T>(app: &App, peer: IpAddr, client_id: Option<&str>, result: &Result<T, TokenError>) {
    let now = Instant::now();
    match (result, client_id) {
        (Err(TokenError::InvalidClient), _) => app.limiter.failure(peer, client_id, now),
        (Err(TokenError::Storage(_) | TokenError::Crypto(_) | TokenError::InvalidRequest(_)), _) => {}
        (_, Some(client_id)) => app.limiter.success(peer, client_id, now),
        (_, None) => {}
    }
}

/// A request refused before it reached the service.
#[derive(Debug)]
enum Rejection {
    /// Malformed framing: `invalid_request` with this status.
    Framing(StatusCode, &'static str),
    /// Not a POST: `invalid_request` with `Allow: POST`.
    NotPost,
    /// The parameters do not make a request of this endpoint.
    Token(TokenError),
}

impl Rejection {
    fn malformed(description: &'static str) -> Self {
        Self::Framing(StatusCode::BAD_REQUEST, description)
    }

    /// The OAuth error code it is answered with.
    fn code(&self) -> ErrorCode {
        match self {
            Self::Framing(..) | Self::NotPost => ErrorCode::InvalidRequest,
            Self::Token(error) => error.code(),
        }
    }

    /// The response, naming `endpoint` when the method is wrong.
    fn into_response_for(self, endpoint: &str) -> HttpResponse {
        match self {
            Self::Framing(status, description) => response::oauth_error(status, ErrorCode::InvalidRequest, description),
            Self::NotPost => response::with_allow(
                response::oauth_error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidRequest,
                    &format!("{endpoint} accepts only POST"),
                ),
                "POST",
            ),
            Self::Token(error) => response::token_error(&error),
        }
    }
}

impl From<params::ParamError> for Rejection {
    fn from(error: params::ParamError) -> Self {
        Self::malformed(error.description())
    }
}

/// The framing every client-authenticated endpoint shares: a POST whose
/// parameters come from the query string and a form body, within their
/// bounds, and its Authorization header.
async fn read_params(app: &App, request: Request<Incoming>) -> Result<(Vec<Param>, AuthorizationHeader), Rejection> {
    if request.method() != Method::POST {
        return Err(Rejection::NotPost);
    }
    let limits = &app.limits;
    let mut params: Vec<Param> = Vec::new();
    if let Some(query) = request.uri().query() {
        params::decode_bounded(
            query.as_bytes(),
            Source::Query,
            limits.max_params,
            limits.max_param_bytes,
            &mut params,
        )?;
    }
    let authorization = authorization(&request)?;
    let form = is_form(&request)?;
    let body = read_body(request, app).await?;
    if !body.is_empty() {
        if !form {
            return Err(Rejection::malformed("the body must be application/x-www-form-urlencoded"));
        }
        params::decode_bounded(&body, Source::Body, limits.max_params, limits.max_param_bytes, &mut params)?;
    }
    Ok((params, authorization))
}

fn authorization(request: &Request<Incoming>) -> Result<AuthorizationHeader, Rejection> {
    let mut values = request.headers().get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(AuthorizationHeader::Absent),
        (Some(value), None) => Ok(basic::parse(value.as_bytes())),
        (Some(_), Some(_)) => Err(Rejection::malformed("the Authorization header is repeated")),
    }
}

/// Whether the body is declared as a form; a missing Content-Type is
/// fine only for an empty body, which [`read_params`] checks.
fn is_form(request: &Request<Incoming>) -> Result<bool, Rejection> {
    let mut values = request.headers().get_all(CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(false),
        (Some(value), None) => {
            let media_type = value.as_bytes().split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
            Ok(media_type.eq_ignore_ascii_case(b"application/x-www-form-urlencoded"))
        }
        (Some(_), Some(_)) => Err(Rejection::malformed("the Content-Type header is repeated")),
    }
}

async fn read_body(request: Request<Incoming>, app: &App) -> Result<Bytes, Rejection> {
    let too_large = || Rejection::Framing(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large");
    let max = app.limits.max_body_bytes;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(request.into_body(), max).collect();
    match tokio::time::timeout(app.limits.request_timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Rejection::malformed("the request body could not be read")),
        Err(_) => Err(Rejection::Framing(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time")),
    }
}
