//! What Tessera's server, its console and the resource servers that trust its
//! tokens must agree on.
//!
//! - [`wire`]: the JSON of the token endpoint (success and RFC 6749 §5.2
//!   errors) and the RFC 8414 metadata document.
//! - [`claims`]: the RFC 9068 access-token header and claims.
//! - [`dpop`]: DPoP proofs (RFC 9449), checked by the server and the verifier.
//! - [`jwk`]: JSON Web Keys, key sets and RFC 7638 thumbprints.
//! - [`introspection`]: the RFC 7662 introspection response.
//! - [`ids`]: the shapes of client IDs, secrets and refresh tokens.
//! - [`admin`]: the request and response bodies of the admin API that the
//!   server serves on its Unix socket and `tessera-admin` calls.
//! - [`utc`]: times as RFC 3339 UTC for every message a person reads.
//! - [`verify`]: the offline verifier a resource server uses to check an
//!   access token with the issuer's public keys alone.

#![forbid(unsafe_code)]

pub mod admin;
pub mod claims;
pub mod dpop;
pub mod ids;
pub mod introspection;
pub mod jwk;
pub mod utc;
pub mod verify;
pub mod wire;
