//! What to do with a presented refresh token: the rotation rules of
//! RFC 6749 §6 and the reuse detection of RFC 9700 §4.14.2.
//!
//! [`decide`] is the one place these rules live. It is pure: given the
//! stored records, the request and its time, it returns the verdict and the
//! records as they must be written. Each store reads the records, calls it
//! and writes its result in one atomic step (a journal commit, a
//! transaction), so the rules are never spelt out twice and the verdict
//! comes back with the outcome instead of through a side channel.

use crate::clock::UnixTime;
use crate::store::records::{Digest32, FamilyRecord, NewRefreshToken, RefreshRecord, RefreshState};

use super::error::TokenError;
use super::scope;

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Issued to another client.
    OtherClient,
    /// Its family was revoked.
    FamilyRevoked,
    /// Past its expiry.
    Expired,
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
            Self::Refuse(Refusal::FamilyRevoked) => {
                Some(TokenError::InvalidGrant("the refresh token has been revoked"))
            }
            Self::Refuse(Refusal::Expired) => Some(TokenError::InvalidGrant("the refresh token has expired")),
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
    /// The current time.
    pub now: UnixTime,
    /// Seconds during which a just-rotated token may be presented again.
    pub reuse_grace: u64,
    /// The narrower scope asked for, if any.
    pub requested_scope: Option<&'a [String]>,
}

/// What a decision changes: the records the store writes, in the same
/// atomic step in which it read the ones decided on.
// Built once per request and consumed at once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writes {
    /// Nothing changes.
    Nothing,
    /// The family, revoked.
    Family(FamilyRecord),
    /// A rotation.
    Rotate {
        /// The presented token, now rotated to the successor.
        presented: RefreshRecord,
        /// The successor's digest, its key.
        successor_digest: Digest32,
        /// The successor, the family's new current token.
        successor: RefreshRecord,
        /// The family, advanced to the successor.
        family: FamilyRecord,
    },
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the client is told.
    pub verdict: Verdict,
    /// What the store writes.
    pub writes: Writes,
}

impl Decision {
    /// The family as it stands once [`Decision::writes`] are applied.
    pub fn family_after<'a>(&'a self, before: &'a FamilyRecord) -> &'a FamilyRecord {
        match &self.writes {
            Writes::Nothing => before,
            Writes::Family(family) | Writes::Rotate { family, .. } => family,
        }
    }
}

/// Decides what to do with the presented token (`digest`, stored as
/// `token`) of `family`, and what to write: on rotation, `successor`
/// becomes the family's current token.
///
/// - another client's token, a revoked family, an expired token: refused,
///   nothing changes;
/// - the family's current token: rotated;
/// - a token rotated less than the reuse grace ago whose successor is still
///   the family's current token (a retry after a lost response): rotated
///   again, and that unused successor is superseded;
/// - any other rotated token, or a superseded one (a token that is neither
///   rotated nor current was superseded by such a retry): reuse, the family
///   is revoked;
/// - a scope beyond the family's: refused, after reuse is ruled out.
pub fn decide(
    digest: &Digest32,
    token: &RefreshRecord,
    family: &FamilyRecord,
    successor: &NewRefreshToken,
    request: &Presentation<'_>,
) -> Decision {
    let verdict = judge(digest, token, family, request);
    let writes = match verdict {
        Verdict::Refuse(_) => Writes::Nothing,
        Verdict::RevokeFamily => Writes::Family(FamilyRecord { revoked_at: Some(request.now), ..family.clone() }),
        Verdict::Rotate => {
            // A retry within the grace keeps the first rotation time, so
            // the grace cannot be stretched by retrying.
            let at = match token.state {
                RefreshState::Rotated { at, .. } | RefreshState::Superseded { at } => at,
                RefreshState::Active => request.now,
            };
            Writes::Rotate {
                presented: RefreshRecord {
                    state: RefreshState::Rotated { at, successor: successor.digest },
                    ..token.clone()
                },
                successor_digest: successor.digest,
                successor: successor.active_record(family),
                family: FamilyRecord { current: successor.digest, expires_at: successor.expires_at, ..family.clone() },
            }
        }
    };
    Decision { verdict, writes }
}

/// The verdict of [`decide`].
fn judge(digest: &Digest32, token: &RefreshRecord, family: &FamilyRecord, request: &Presentation<'_>) -> Verdict {
    if token.client_id != request.client_id || family.client_id != request.client_id {
        return Verdict::Refuse(Refusal::OtherClient);
    }
    if family.revoked_at.is_some() {
        return Verdict::Refuse(Refusal::FamilyRevoked);
    }
    if request.now >= token.expires_at {
        return Verdict::Refuse(Refusal::Expired);
    }
    match token.state {
        // Never used, but no longer current: a retry within the grace
        // replaced it, so whoever presents it now is a second holder.
        RefreshState::Active if family.current != *digest => return Verdict::RevokeFamily,
        RefreshState::Active => {}
        RefreshState::Rotated { at, successor } => {
            // A retry of a request whose response was lost may present the
            // same token again, but only while its successor is still unused.
            let within_grace = request.now < at.saturating_add(request.reuse_grace);
            if !(within_grace && successor == family.current) {
                return Verdict::RevokeFamily;
            }
        }
        RefreshState::Superseded { .. } => return Verdict::RevokeFamily,
    }
    if request.requested_scope.is_some_and(|asked| !scope::is_subset(asked, &family.scope)) {
        return Verdict::Refuse(Refusal::ScopeWidened);
    }
    Verdict::Rotate
}

#[cfg(test)]
mod tests;
