//! `POST /oauth2/token`: the token endpoint, through the shared
//! [`client_request`](super::client_request) flow to
//! [`Issuer::token_with_dpop`](crate::issuer::Issuer::token_with_dpop).

use http::{HeaderMap, Request};
use hyper::body::Incoming;
use tessera_shared::dpop::{DpopError, MAX_PROOF_LEN};

use super::response::{self, HttpResponse};
use super::{App, RequestNote, client_request};
use crate::grant::dpop::DpopHeader;
use crate::grant::request::TokenRequest;

/// Answers a token request and notes what the access log may say of it.
pub async fn handle(app: &App, request: Request<Incoming>) -> (HttpResponse, RequestNote) {
    let dpop = dpop_header(request.headers());
    client_request::handle(
        app,
        request,
        "the token endpoint",
        TokenRequest::parse,
        |typed| async move { app.issuer.token_with_dpop(typed, &dpop).await },
        |body| response::token_success(&body),
    )
    .await
}

/// The request's `DPoP` header (RFC 9449 §4.1): at most one, as text.
fn dpop_header(headers: &HeaderMap) -> DpopHeader {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (None, _) => DpopHeader::Absent,
        (Some(_), Some(_)) => DpopHeader::Invalid(DpopError::Repeated),
        (Some(value), None) => match value.to_str() {
            Ok(text) if text.len() <= MAX_PROOF_LEN => DpopHeader::Present(text.trim().to_owned()),
            _ => DpopHeader::Invalid(DpopError::Malformed),
        },
    }
}
