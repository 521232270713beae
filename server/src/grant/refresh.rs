//! What to do with a presented refresh token: the rotation rules of
//! RFC 6749 §6 and the reuse detection of RFC 9700 §4.14.2.
//!
//! [`decide`] is the one place these rules live. It is pure: given the
//! family's record, the presented token, the request and its time, it
//! returns the verdict and the record as it must be written. Each store
//! reads the one record, calls it and writes its result in one atomic step
//! (a journal commit, a conditional update), so the rules are never spelt
//! out twice and the verdict comes back with the outcome.
//!
//! [`token`] is the token's format: it names its family and generation.

pub mod token;

use crate::clock::UnixTime;
use crate::store::records::{FamilyRecord, NewRefreshToken, PreviousToken, Thumbprint, same_digest as same};

use super::error::TokenError;
use super::scope;
use token::RefreshToken;

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Issued to another client.
    OtherClient,
    /// The family is bound to a DPoP key the request did not prove.
    DpopKeyMismatch,
    /// Its family was revoked, or its client since.
    FamilyRevoked,
    /// Past its expiry.
    Expired,
    /// Not a token the family issued: an altered token, or a generation it
    /// never reached.
    NotIssued,
    /// Asks for scope beyond the original grant.
    ScopeWidened,
}

/// The decision about a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rotate: the successor becomes current.
    Rotate,
    /// Refuse without changing anything.
    Refuse(Refusal),
    /// The token was already rotated: theft is assumed and the family dies.
    RevokeFamily,
}

impl Verdict {
    /// The error to answer with, if any.
    pub fn error(self) -> Option<TokenError> {
        match self {
            Self::Rotate => None,
            Self::Refuse(Refusal::OtherClient) => {
                Some(TokenError::InvalidGrant("the refresh token was not issued to this client"))
            }
            Self::Refuse(Refusal::DpopKeyMismatch) => {
                Some(TokenError::InvalidDpopProof("the refresh token is bound to another DPoP key"))
            }
            Self::Refuse(Refusal::FamilyRevoked) => {
                Some(TokenError::InvalidGrant("the refresh token has been revoked"))
            }
            Self::Refuse(Refusal::Expired) => Some(TokenError::InvalidGrant("the refresh token has expired")),
            Self::Refuse(Refusal::NotIssued) => Some(TokenError::InvalidGrant("the refresh token is not valid")),
            Self::Refuse(Refusal::ScopeWidened) => {
                Some(TokenError::InvalidScope("the requested scope exceeds the scope originally granted"))
            }
            Self::RevokeFamily => {
                Some(TokenError::InvalidGrant("the refresh token was already used; its whole family has been revoked"))
            }
        }
    }
}

/// The facts of the request a verdict depends on.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    /// The client's [`crate::store::records::ClientRecord::family_epoch`]
    /// as authenticated: families of an older epoch are dead.
    pub client_epoch: u64,
    /// The current time.
    pub now: UnixTime,
    /// Seconds during which a just-rotated token may be presented again.
    pub reuse_grace: u64,
    /// The narrower scope asked for, if any.
    pub requested_scope: Option<&'a [String]>,
    /// The thumbprint of the DPoP key the request proved, if any.
    pub dpop_jkt: Option<Thumbprint>,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the client is told.
    pub verdict: Verdict,
    /// The family as it must be written; `None`: nothing changes.
    pub write: Option<FamilyRecord>,
}

impl Decision {
    /// The family as it stands once [`Decision::write`] is applied.
    pub fn family_after<'a>(&'a self, before: &'a FamilyRecord) -> &'a FamilyRecord {
        self.write.as_ref().unwrap_or(before)
    }
}

/// Decides what to do with `presented`, a token naming `family`, and what
/// to write: on rotation, `successor` becomes the family's current token
/// with the next generation.
///
/// - another client's family: refused, nothing changes;
/// - a family bound to a DPoP key the request did not prove: refused,
///   nothing changes (checked before reuse, so someone without the key can
///   never revoke the family);
/// - a revoked or dead family, an expired one: refused, nothing changes;
/// - the current generation with its digest: rotated;
/// - the previous generation with its digest, within the reuse grace of its
///   first rotation (a retry after a lost response; the current token is
///   then unused, or it would be the previous one): rotated again, and that
///   unused successor is superseded: it is an older generation from now on;
/// - any older generation, or the previous one after the grace: reuse, the
///   family is revoked;
/// - a known generation whose digest does not match (an altered token), or
///   a generation the family never reached: refused, nothing changes;
/// - a scope beyond the family's: refused, after reuse is ruled out.
pub fn decide(
    presented: &RefreshToken,
    family: &FamilyRecord,
    successor: &NewRefreshToken,
    request: &Presentation<'_>,
) -> Decision {
    let verdict = judge(presented, family, request);
    let write = match verdict {
        Verdict::Refuse(_) => None,
        Verdict::RevokeFamily => Some(FamilyRecord { revoked_at: Some(request.now), ..family.clone() }),
        Verdict::Rotate => Some(rotate(presented, family, successor, request.now)),
    };
    Decision { verdict, write }
}

/// `family` rotated from `presented` to `successor`.
fn rotate(presented: &RefreshToken, family: &FamilyRecord, successor: &NewRefreshToken, now: UnixTime) -> FamilyRecord {
    // A retry within the grace keeps the first rotation time, so the grace
    // cannot be stretched by retrying.
    let previous = match family.previous {
        Some(previous) if previous.generation == presented.generation => previous,
        _ => PreviousToken { generation: family.generation, digest: family.current, rotated_at: now },
    };
    let generation = family.generation.saturating_add(1);
    let next = RefreshToken { family_id: family.family_id, generation, secret: successor.secret };
    FamilyRecord {
        generation,
        current: next.digest(),
        issued_at: successor.issued_at,
        expires_at: successor.expires_at,
        previous: Some(previous),
        ..family.clone()
    }
}

/// The verdict of [`decide`].
fn judge(presented: &RefreshToken, family: &FamilyRecord, request: &Presentation<'_>) -> Verdict {
    if family.client_id != request.client_id || presented.family_id != family.family_id {
        return Verdict::Refuse(Refusal::OtherClient);
    }
    if family.dpop_jkt.is_some_and(|bound| request.dpop_jkt.is_none_or(|proved| !same(&bound, &proved))) {
        return Verdict::Refuse(Refusal::DpopKeyMismatch);
    }
    if family.revoked_at.is_some() || family.client_epoch < request.client_epoch {
        return Verdict::Refuse(Refusal::FamilyRevoked);
    }
    if request.now >= family.expires_at {
        return Verdict::Refuse(Refusal::Expired);
    }
    let digest = presented.digest();
    if presented.generation > family.generation {
        return Verdict::Refuse(Refusal::NotIssued);
    }
    if presented.generation == family.generation {
        if !same(&digest, &family.current) {
            return Verdict::Refuse(Refusal::NotIssued);
        }
    } else {
        match family.previous {
            Some(previous) if previous.generation == presented.generation => {
                if !same(&digest, &previous.digest) {
                    return Verdict::Refuse(Refusal::NotIssued);
                }
                // While it is the previous one, its successors are unused.
                if request.now >= previous.rotated_at.saturating_add(request.reuse_grace) {
                    return Verdict::RevokeFamily;
                }
            }
            // Every older generation, including a successor superseded by a
            // grace retry: whoever presents it holds a copy.
            _ => return Verdict::RevokeFamily,
        }
    }
    if request.requested_scope.is_some_and(|asked| !scope::is_subset(asked, &family.scope)) {
        return Verdict::Refuse(Refusal::ScopeWidened);
    }
    Verdict::Rotate
}

#[cfg(test)]
mod tests;
