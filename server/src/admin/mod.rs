//! The admin API on the Unix socket `<data-dir>/admin.sock`: HTTP/1.1 with
//! JSON bodies, routes as documented in `tessera_shared::admin`.
//!
//! The socket is the access control: it is created with mode 0600 in the
//! data dir, so only the server's own user can connect.
//!
//! - [`service`]: the operations, without HTTP.
//! - [`socket`]: binding the socket safely and the accept loop.

pub mod service;
pub mod socket;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_shared::admin::{AdminError, CreateClient, ImportKey, RotateKeys, RotateSecret, SetKeys, paths};

use crate::http::response::{self, HttpResponse};
use service::{AdminFailure, AdminService};

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Routes one admin request.
pub async fn route(
    service: AdminService,
    request: Request<Incoming>,
) -> Result<HttpResponse, std::convert::Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let answer = dispatch(&service, &method, &path, request).await;
    Ok(match answer {
        Ok(response) => response,
        Err(failure) => failure_response(&failure),
    })
}

async fn dispatch(
    service: &AdminService,
    method: &Method,
    path: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, AdminFailure> {
    if path == paths::KEYS && method == Method::GET {
        return Ok(ok(&service.keys()));
    }
    if path == paths::AUDIT && method == Method::GET {
        let (after, limit) = audit_query(request.uri().query())?;
        return Ok(ok(&service.audit_events(after, limit).await?));
    }
    if path == paths::STATS && method == Method::GET {
        return Ok(ok(&service.stats()));
    }
    if path == paths::KEYS_ROTATE && method == Method::POST {
        let request: RotateKeys = read_json_or_default(request).await?;
        return Ok(ok(&service.rotate_keys(request).await?));
    }
    if let Some(kid) = path
        .strip_prefix(paths::KEYS)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_suffix("/revoke"))
        && method == Method::POST
    {
        return Ok(ok(&service.revoke_key(kid).await?));
    }
    if path == paths::KEYS_IMPORT && method == Method::POST {
        let import: ImportKey = read_json(request).await?;
        return Ok(ok(&service.import_key(&import.pem).await?));
    }
    if path == paths::JWKS && method == Method::GET {
        return Ok(ok(&service.jwks()));
    }
    if path == paths::CLIENTS {
        return match *method {
            Method::GET => Ok(ok(&service.list_clients().await?)),
            Method::POST => {
                let create: CreateClient = read_json(request).await?;
                Ok(response::json(StatusCode::CREATED, &service.create_client(create).await?))
            }
            _ => Err(method_not_allowed()),
        };
    }
    let Some(rest) = path.strip_prefix(paths::CLIENTS).and_then(|rest| rest.strip_prefix('/')) else {
        return Err(AdminFailure::BadRequest("no such admin route".into()));
    };
    match (rest.split_once('/'), method) {
        (None, &Method::GET) => Ok(ok(&service.client(rest).await?)),
        (None, &Method::DELETE) => Ok(ok(&service.delete_client(rest).await?)),
        (Some((id, "rotate-secret")), &Method::POST) => {
            let rotate: RotateSecret = read_json(request).await?;
            Ok(ok(&service.rotate_secret(id, rotate.grace_seconds, rotate.secret_ttl_seconds).await?))
        }
        (Some((id, "set-keys")), &Method::POST) => {
            let set: SetKeys = read_json(request).await?;
            Ok(ok(&service.set_keys(id, &set.public_keys).await?))
        }
        (Some((id, "revoke")), &Method::POST) => Ok(ok(&service.revoke_client(id).await?)),
        (Some((id, "revoke-families")), &Method::POST) => Ok(ok(&service.revoke_families(id).await?)),
        (Some((id, "reactivate")), &Method::POST) => Ok(ok(&service.reactivate_client(id).await?)),
        _ => Err(AdminFailure::BadRequest("no such admin route".into())),
    }
}

/// Audit events per page when the request names no `limit`.
const DEFAULT_AUDIT_LIMIT: usize = 100;

/// `after=SEQ&limit=N` of `GET /v1/audit`, both optional.
fn audit_query(query: Option<&str>) -> Result<(Option<u64>, usize), AdminFailure> {
    let mut after = None;
    let mut limit = DEFAULT_AUDIT_LIMIT;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let bad = || AdminFailure::BadRequest("audit parameters are after=SEQ and limit=N, both whole numbers".into());
        match pair.split_once('=') {
            Some(("after", value)) => after = Some(value.parse().map_err(|_| bad())?),
            Some(("limit", value)) => limit = value.parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        }
    }
    Ok((after, limit))
}

fn ok<T: Serialize>(value: &T) -> HttpResponse {
    response::json(StatusCode::OK, value)
}

fn method_not_allowed() -> AdminFailure {
    AdminFailure::BadRequest("method not allowed on this admin route".into())
}

async fn read_json<T: DeserializeOwned>(request: Request<Incoming>) -> Result<T, AdminFailure> {
    let body = read_body(request).await?;
    serde_json::from_slice(&body).map_err(|e| AdminFailure::BadRequest(format!("invalid request body: {e}")))
}

/// As [`read_json`], with `T::default()` for an empty body (an older
/// `tessera-admin` sends none).
async fn read_json_or_default<T: DeserializeOwned + Default>(request: Request<Incoming>) -> Result<T, AdminFailure> {
    let body = read_body(request).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| AdminFailure::BadRequest(format!("invalid request body: {e}")))
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, AdminFailure> {
    Ok(Limited::new(request.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|_| AdminFailure::BadRequest("the request body is unreadable or too large".into()))?
        .to_bytes())
}

pub(crate) fn failure_response(failure: &AdminFailure) -> HttpResponse {
    let (status, code) = match failure {
        AdminFailure::NotFound(_) | AdminFailure::KeyNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        AdminFailure::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        AdminFailure::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        AdminFailure::Store(_) | AdminFailure::Crypto(_) | AdminFailure::Keys(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %failure, "admin request failed inside the server");
    }
    response::json(status, &AdminError { error: code.to_owned(), message: failure.to_string() })
}
