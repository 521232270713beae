//! `POST /oauth2/token`: the token endpoint, through the shared
//! [`client_request`](super::client_request) flow to
//! [`Issuer::token`](crate::issuer::Issuer::token).

use http::Request;
use hyper::body::Incoming;

use super::response::{self, HttpResponse};
use super::{App, RequestNote, client_request};
use crate::grant::request::TokenRequest;

/// Answers a token request and notes what the access log may say of it.
pub async fn handle(app: &App, request: Request<Incoming>) -> (HttpResponse, RequestNote) {
    client_request::handle(
        app,
        request,
        "the token endpoint",
        TokenRequest::parse,
        |typed| app.issuer.token(typed),
        |body| response::token_success(&body),
    )
    .await
}
