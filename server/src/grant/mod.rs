//! The OAuth rules, as pure functions that know neither HTTP nor storage.
//!
//! - [`request`]: turns the parameters of a token request into a typed
//!   [`request::TokenRequest`], or the RFC 6749 error it deserves.
//! - [`scope`]: scope syntax, subsets and narrowing.
//! - [`audience`]: the token's `aud`, picked by RFC 8707 `resource`.
//! - [`dpop`]: a token request's DPoP proof and the key it binds tokens to.
//! - [`refresh`]: what to do with a presented refresh token, and the
//!   token's format ([`refresh::token`]: it names its family and generation).
//! - [`revoke_introspect`]: the requests of revocation (RFC 7009) and
//!   introspection (RFC 7662).
//! - [`error`]: [`error::TokenError`], one variant a failure, each mapping
//!   to exactly one RFC 6749 §5.2 error code.

pub mod audience;
pub mod dpop;
pub mod error;
pub mod refresh;
pub mod request;
pub mod revoke_introspect;
pub mod scope;
