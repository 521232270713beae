//! Cryptography, all with ring: random values, secret digests, JWT signing,
//! encryption of private keys at rest.

pub mod random;
pub mod seal;
pub mod secret;
pub mod secret_key;
pub mod signing;

/// ring reports failures without detail; so do we.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A key could not be generated or parsed.
    #[error("signing key error: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}
