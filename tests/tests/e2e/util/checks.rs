//! The checks every token-endpoint answer goes through, the [`Cases`]
//! table, and JWT and scope helpers.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_shared::wire::{INVALID_CLIENT_DESCRIPTION, TokenResponse};

use super::{Resp, Server, WWW_AUTHENTICATE, get};

fn has_directive(value: Option<&str>, directive: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case(directive)))
}

fn is_json_content_type(value: Option<&str>) -> bool {
    value
        .is_some_and(|v| v.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json")))
}

/// Checks a successful token response: 200, its headers, the JSON shape.
///
/// # Errors
/// What is wrong, for [`Cases`].
pub fn token_ok(resp: &Resp) -> Result<TokenResponse, String> {
    if resp.status != 200 {
        return Err(format!("expected 200, got {}", resp.summary()));
    }
    if !is_json_content_type(resp.header("content-type")) {
        return Err(format!("Content-Type is {:?}, not application/json", resp.header("content-type")));
    }
    if !has_directive(resp.header("cache-control"), "no-store") {
        return Err(format!("Cache-Control is {:?}, not no-store", resp.header("cache-control")));
    }
    if !resp.header("pragma").is_some_and(|v| v.trim().eq_ignore_ascii_case("no-cache")) {
        return Err(format!("Pragma is {:?}, not no-cache", resp.header("pragma")));
    }
    let token: TokenResponse =
        serde_json::from_slice(&resp.body).map_err(|e| format!("body is no token response ({e}): {}", resp.text()))?;
    if token.token_type != "Bearer" {
        return Err(format!("token_type is {:?}", token.token_type));
    }
    if token.access_token.split('.').count() != 3 {
        return Err(format!("access_token is no JWT: {:?}", token.access_token));
    }
    if let Some(rt) = &token.refresh_token
        && !tessera_shared::ids::is_refresh_token(rt)
    {
        return Err(format!("refresh_token {rt:?} is not 40 characters of [A-Za-z0-9_-]"));
    }
    if token.scope.as_deref() == Some("") {
        return Err("scope is present but empty".to_owned());
    }
    Ok(token)
}

/// [`token_ok`] or fail the test.
#[track_caller]
pub fn expect_token(resp: &Resp, context: &str) -> TokenResponse {
    token_ok(resp).unwrap_or_else(|e| panic!("{context}: {e}"))
}

/// [`expect_token`] and a refresh token.
#[track_caller]
pub fn expect_refresh_token(resp: &Resp, context: &str) -> (TokenResponse, String) {
    let token = expect_token(resp, context);
    let rt = token.refresh_token.clone().unwrap_or_else(|| panic!("{context}: no refresh_token in {}", resp.text()));
    (token, rt)
}

/// Checks an error response: status, `error`, a string
/// `error_description`, `Cache-Control: no-store`, a JSON content type, and
/// for `invalid_client` the 401 header and the page's exact description.
///
/// # Errors
/// What is wrong, for [`Cases`].
pub fn check_error(resp: &Resp, status: u16, code: &str) -> Result<(), String> {
    let body = resp.json();
    let got_code = body.as_ref().and_then(|b| b.get("error")).and_then(Value::as_str);
    if resp.status != status || got_code != Some(code) {
        return Err(format!("expected {status} {code}, got {}", resp.summary()));
    }
    let body = body.unwrap_or_default();
    let description = body.get("error_description").and_then(Value::as_str);
    if description.is_none_or(str::is_empty) {
        return Err(format!("no error_description: {}", resp.text()));
    }
    if !has_directive(resp.header("cache-control"), "no-store") {
        return Err(format!("Cache-Control is {:?}, not no-store", resp.header("cache-control")));
    }
    if !is_json_content_type(resp.header("content-type")) {
        return Err(format!("Content-Type is {:?}, not application/json", resp.header("content-type")));
    }
    if code == "invalid_client" {
        if resp.header_all("www-authenticate") != [WWW_AUTHENTICATE] {
            return Err(format!(
                "WWW-Authenticate is {:?}, not {WWW_AUTHENTICATE}",
                resp.header_all("www-authenticate")
            ));
        }
        if description != Some(INVALID_CLIENT_DESCRIPTION) {
            return Err(format!("error_description is {description:?}, not {INVALID_CLIENT_DESCRIPTION:?}"));
        }
    }
    for field in ["access_token", "refresh_token"] {
        if body.get(field).is_some() {
            return Err(format!("an error response carries {field}: {}", resp.text()));
        }
    }
    Ok(())
}

/// [`check_error`] or fail the test.
#[track_caller]
pub fn expect_error(resp: &Resp, status: u16, code: &str, context: &str) {
    if let Err(e) = check_error(resp, status, code) {
        panic!("{context}: {e}");
    }
}

/// Collects the outcome of named cases and fails once with all failures,
/// so one run reports every deviation of a table.
#[derive(Debug, Default)]
pub struct Cases {
    failures: Vec<String>,
    run: usize,
}

impl Cases {
    /// A new table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one case.
    pub fn check<T>(&mut self, name: &str, outcome: Result<T, String>) {
        self.run += 1;
        if let Err(e) = outcome {
            self.failures.push(format!("  case {name:?}: {e}"));
        }
    }

    /// Fails the test if any case failed.
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed:\n{}",
            self.failures.len(),
            self.run,
            self.failures.join("\n")
        );
    }
}

/// The decoded header and claims of a JWT, without verifying it.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let decode = |part: &str| -> Value {
        let bytes = URL_SAFE_NO_PAD.decode(part).unwrap_or_else(|e| panic!("JWT part {part:?} is not base64url: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {part:?} is not JSON: {e}"))
    };
    (decode(parts[0]), decode(parts[1]))
}

/// The scopes of a space-separated scope string, as a set.
pub fn scope_set(scope: Option<&str>) -> BTreeSet<String> {
    scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The set of the given scopes.
pub fn scopes(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The served JWKS.
pub async fn jwks(server: &Server) -> tessera_shared::jwk::JwkSet {
    let resp = get(server, "/.well-known/jwks.json").await;
    assert_eq!(resp.status, 200, "GET jwks: {}", resp.summary());
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("the JWKS does not parse ({e}): {}", resp.text()))
}
