//! DPoP on a token request (RFC 9449 §5): whether the request carries a
//! proof, whether the client needs one, and the key the tokens are bound to.
//!
//! The proof itself is checked by [`tessera_shared::dpop`], the code the
//! offline verifier uses too; the `jti` replay cache is this server's
//! ([`DpopPolicy`]), in memory, so on several instances a proof could be
//! replayed once against each within its 60-second window (a stolen proof
//! still only yields a token bound to the key the thief lacks).

use tessera_shared::dpop::{DEFAULT_IAT_WINDOW, DpopError, ProofChecker};

use super::error::TokenError;
use crate::clock::UnixTime;

/// At most this many proofs are remembered for replay detection: those of
/// the last two minutes (an `iat` may be 60 s either side of now). Past it,
/// proofs are refused until older ones expire (fail closed): about 2,000
/// DPoP token requests a second, sustained.
pub const REPLAY_CACHE_CAPACITY: usize = 262_144;

/// The `DPoP` header of a token request, as the HTTP layer found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DpopHeader {
    /// No `DPoP` header: the request costs nothing more.
    #[default]
    Absent,
    /// Exactly one, as text.
    Present(String),
    /// Repeated, not text, or too long to be a proof.
    Invalid(DpopError),
}

/// What the token endpoint checks proofs against. Cheap to share.
#[derive(Debug)]
pub struct DpopPolicy {
    /// `htu`: the token endpoint's URL as this server knows it.
    token_endpoint: String,
    checker: ProofChecker,
}

impl DpopPolicy {
    /// Proofs for `token_endpoint` (the issuer URL + `/oauth2/token`).
    pub fn new(token_endpoint: String) -> Self {
        Self { token_endpoint, checker: ProofChecker::new(REPLAY_CACHE_CAPACITY, DEFAULT_IAT_WINDOW) }
    }

    /// The key the request's tokens are bound to: the RFC 7638 thumbprint
    /// of the proof's key, or `None` without a proof where none is
    /// required. Writes nothing but the proof's `jti` to the replay cache.
    ///
    /// # Errors
    /// [`TokenError::InvalidDpopProof`] for a missing proof where
    /// `required`, or a proof that fails a check.
    pub fn bind(&self, header: &DpopHeader, required: bool, now: UnixTime) -> Result<Option<[u8; 32]>, TokenError> {
        let refused = |error: DpopError| TokenError::InvalidDpopProof(error.description());
        match header {
            DpopHeader::Absent if required => Err(refused(DpopError::Missing)),
            DpopHeader::Absent => Ok(None),
            DpopHeader::Invalid(error) => Err(refused(*error)),
            DpopHeader::Present(proof) => self
                .checker
                .check(proof, "POST", &self.token_endpoint, None, now)
                .map(|proof| Some(proof.thumbprint))
                .map_err(refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_shared::wire::ErrorCode;

    use super::*;

    const NOW: UnixTime = 1_700_000_000;

    fn policy() -> DpopPolicy {
        DpopPolicy::new("https://tessera.test/oauth2/token".into())
    }

    fn refusal(result: Result<Option<[u8; 32]>, TokenError>) -> (ErrorCode, String) {
        let error = result.expect_err("refused");
        (error.code(), error.to_string())
    }

    #[test]
    fn no_header_costs_nothing_unless_a_proof_is_required() {
        assert_eq!(policy().bind(&DpopHeader::Absent, false, NOW).ok(), Some(None));
        assert_eq!(
            refusal(policy().bind(&DpopHeader::Absent, true, NOW)),
            (ErrorCode::InvalidDpopProof, "a DPoP proof is required".to_owned())
        );
    }

    #[test]
    fn a_bad_header_or_proof_is_invalid_dpop_proof_whatever_the_client() {
        for required in [false, true] {
            assert_eq!(
                refusal(policy().bind(&DpopHeader::Invalid(DpopError::Repeated), required, NOW)),
                (ErrorCode::InvalidDpopProof, "exactly one DPoP header is allowed".to_owned())
            );
            assert_eq!(
                refusal(policy().bind(&DpopHeader::Present("a.b.c".into()), required, NOW)),
                (ErrorCode::InvalidDpopProof, "the DPoP proof is not a well-formed JWT".to_owned())
            );
        }
    }
}
