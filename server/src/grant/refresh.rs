//! What to do with a presented refresh token: the rotation rules of
//! RFC 6749 §6 and the reuse detection of RFC 9700 §4.14.2.

use crate::clock::UnixTime;
use crate::store::RefreshTransition;
use crate::store::records::{FamilyRecord, RefreshRecord, RefreshState};

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
    /// The change the store applies.
    pub fn transition(self) -> RefreshTransition {
        match self {
            Self::Rotate => RefreshTransition::Rotate,
            Self::Refuse(_) => RefreshTransition::Refuse,
            Self::RevokeFamily => RefreshTransition::RevokeFamily,
        }
    }

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

/// Decides what to do with `token` of `family`.
pub fn judge(token: &RefreshRecord, family: &FamilyRecord, request: &Presentation<'_>) -> Verdict {
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
