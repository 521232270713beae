use super::*;
use crate::client_auth::ClientCredentials;

const OPEN: ParsePolicy = ParsePolicy { allow_query_credentials: true };
const CLOSED: ParsePolicy = ParsePolicy { allow_query_credentials: false };

fn q(name: &str, value: &str) -> Param {
    Param { name: name.into(), value: value.into(), source: Source::Query }
}

fn b(name: &str, value: &str) -> Param {
    Param { name: name.into(), value: value.into(), source: Source::Body }
}

fn basic() -> AuthorizationHeader {
    AuthorizationHeader::Basic(ClientCredentials { client_id: "id".into(), client_secret: "secret".into() })
}

fn code_of(result: Result<TokenRequest, TokenError>) -> tessera_shared::wire::ErrorCode {
    result.expect_err("must fail").code()
}

use tessera_shared::wire::ErrorCode;

#[test]
fn blynk_basic_client_credentials() {
    let request = TokenRequest::parse(&[q("grant_type", "client_credentials")], basic(), OPEN).unwrap();
    assert_eq!(request.credentials.client_id(), "id");
    assert_eq!(request.grant, Grant::ClientCredentials { scope: None });
}

#[test]
fn blynk_query_refresh() {
    let request = TokenRequest::parse(
        &[q("grant_type", "refresh_token"), q("refresh_token", "r"), q("client_id", "id"), q("client_secret", "s")],
        AuthorizationHeader::Absent,
        OPEN,
    )
    .unwrap();
    assert!(matches!(&request.credentials, Presented::Secret(c) if c.client_secret == "s"));
    assert_eq!(request.grant, Grant::RefreshToken { refresh_token: "r".into(), scope: None });
}

#[test]
fn form_body_and_query_mix() {
    let request = TokenRequest::parse(
        &[q("grant_type", "client_credentials"), b("client_id", "id"), b("client_secret", "s"), b("scope", "a b")],
        AuthorizationHeader::Absent,
        CLOSED,
    )
    .unwrap();
    assert_eq!(request.grant, Grant::ClientCredentials { scope: Some(vec!["a".into(), "b".into()]) });
}

#[test]
fn repeats_are_invalid_requests_even_across_query_and_body() {
    let result = TokenRequest::parse(
        &[q("grant_type", "client_credentials"), b("grant_type", "client_credentials")],
        basic(),
        OPEN,
    );
    assert_eq!(code_of(result), ErrorCode::InvalidRequest);
    let result = TokenRequest::parse(&[q("grant_type", "client_credentials"), q("x", "1"), q("x", "2")], basic(), OPEN);
    assert_eq!(result.unwrap_err().to_string(), "a parameter is repeated");
}

#[test]
fn missing_parameters_are_invalid_requests() {
    assert_eq!(code_of(TokenRequest::parse(&[], basic(), OPEN)), ErrorCode::InvalidRequest);
    assert_eq!(
        code_of(TokenRequest::parse(&[q("grant_type", "refresh_token")], basic(), OPEN)),
        ErrorCode::InvalidRequest
    );
    // An empty value counts as omitted (RFC 6749 §3.1).
    assert_eq!(code_of(TokenRequest::parse(&[q("grant_type", "")], basic(), OPEN)), ErrorCode::InvalidRequest);
}

#[test]
fn credentials_in_two_places_are_invalid_requests() {
    let result = TokenRequest::parse(&[q("grant_type", "client_credentials"), q("client_id", "id")], basic(), OPEN);
    assert_eq!(code_of(result), ErrorCode::InvalidRequest);
}

#[test]
fn half_credentials_are_invalid_requests() {
    let result = TokenRequest::parse(
        &[q("grant_type", "client_credentials"), q("client_id", "id")],
        AuthorizationHeader::Absent,
        OPEN,
    );
    assert_eq!(code_of(result), ErrorCode::InvalidRequest);
}

#[test]
fn no_or_malformed_credentials_are_invalid_client() {
    let params = [q("grant_type", "client_credentials")];
    assert_eq!(code_of(TokenRequest::parse(&params, AuthorizationHeader::Absent, OPEN)), ErrorCode::InvalidClient);
    assert_eq!(code_of(TokenRequest::parse(&params, AuthorizationHeader::Malformed, OPEN)), ErrorCode::InvalidClient);
}

#[test]
fn query_credentials_can_be_switched_off() {
    let params = [q("grant_type", "client_credentials"), q("client_id", "id"), q("client_secret", "s")];
    assert_eq!(code_of(TokenRequest::parse(&params, AuthorizationHeader::Absent, CLOSED)), ErrorCode::InvalidRequest);
}

#[test]
fn unknown_grant_types_wait_for_authentication() {
    let request = TokenRequest::parse(&[q("grant_type", "password")], basic(), OPEN).unwrap();
    assert_eq!(request.grant, Grant::Unsupported);
}

#[test]
fn unknown_parameters_are_ignored() {
    let request =
        TokenRequest::parse(&[q("grant_type", "client_credentials"), q("audience", "x")], basic(), OPEN).unwrap();
    assert_eq!(request.grant.name(), "client_credentials");
}

#[test]
fn malformed_scope_is_invalid_scope() {
    let result = TokenRequest::parse(&[q("grant_type", "client_credentials"), q("scope", "a\"b")], basic(), OPEN);
    assert_eq!(code_of(result), ErrorCode::InvalidScope);
}

#[test]
fn debug_output_hides_secrets_and_tokens() {
    let request = TokenRequest::parse(
        &[q("grant_type", "refresh_token"), q("refresh_token", "REFRESH-VALUE")],
        AuthorizationHeader::Basic(ClientCredentials { client_id: "id".into(), client_secret: "SECRET-VALUE".into() }),
        OPEN,
    )
    .unwrap();
    let printed = format!("{request:?}");
    assert!(!printed.contains("SECRET-VALUE") && !printed.contains("REFRESH-VALUE"), "{printed}");
}
