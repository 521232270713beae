//! The life of a signing key as typed states: next → active → retiring →
//! retired (and next → retired for a next key replaced before it signed).
//!
//! Each state is its own type and each transition consumes it, so an
//! illegal order (a retired key signing again, an active key skipping
//! retirement) cannot be written. Two transitions skip the waiting, for
//! emergencies only: [`KeySet::rotate_now`] (the next key signs before every
//! cached JWKS holds it) and [`KeySet::revoke`] (a key leaves the JWKS at
//! once and its tokens stop verifying). Resource servers whose cached JWKS
//! lacks a new `kid` refetch it, as Tessera's verifier does. [`KeySet`] holds one installation's keys
//! with exactly one active and one next key; [`plan`] decides, from the set
//! and `now` alone, what is due.
//!
//! The timing that keeps every verification working, for a resource server
//! that caches the JWKS for `jwks_max_age` seconds:
//! - a next key may start signing only once it has been published for more
//!   than one cache interval ([`NextKey::ready_at`]), so every cached JWKS
//!   already holds it;
//! - a retiring key stays published until every token it signed has expired
//!   plus one cache interval ([`Timing::published_for`]), which also covers
//!   the verifier's clock-skew leeway.

use tessera_shared::admin::KeyState;
use tessera_shared::utc::rfc3339;

use crate::clock::UnixTime;
use crate::store::records::KeyRecord;

/// The intervals the lifecycle depends on, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Scheduled rotation period of the active key.
    pub rotate_every: u64,
    /// Access-token lifetime: how long a token signed by a key stays valid.
    pub access_token_ttl: u64,
    /// The `max-age` the JWKS is served with: how stale a resource server's
    /// copy may be.
    pub jwks_max_age: u64,
}

impl Timing {
    /// How long a key stays published after it stops signing.
    pub fn published_for(&self) -> u64 {
        self.access_token_ttl.saturating_add(self.jwks_max_age)
    }
}

/// Published, not signing yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextKey(KeyRecord);

/// The one key that signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKey(KeyRecord);

/// No longer signing, published until its tokens have expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiringKey(KeyRecord);

/// Out of the JWKS, private part wiped, kept for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey(KeyRecord);

impl NextKey {
    /// A freshly made or imported key; it is published from `record.created_at`.
    pub fn new(mut record: KeyRecord) -> Self {
        record.state = KeyState::Next;
        record.activated_at = None;
        record.deactivated_at = None;
        record.published_until = None;
        record.retired_at = None;
        record.rotation_requested_at = None;
        Self(record)
    }

    /// When an operator asked for a rotation that this key's age did not
    /// allow yet; it then signs from [`NextKey::ready_at`].
    pub fn rotation_requested_at(&self) -> Option<UnixTime> {
        self.0.rotation_requested_at
    }

    /// The first second at which it may sign: it has then been in every
    /// JWKS served for more than one cache interval. The extra second covers
    /// `created_at` being rounded down from the instant it was published.
    pub fn ready_at(&self, timing: &Timing) -> UnixTime {
        self.0.created_at.saturating_add(timing.jwks_max_age).saturating_add(1)
    }

    /// The stored record.
    pub fn record(&self) -> &KeyRecord {
        &self.0
    }

    fn activate(mut self, now: UnixTime) -> ActiveKey {
        self.0.state = KeyState::Active;
        self.0.activated_at = Some(now);
        self.0.rotation_requested_at = None;
        ActiveKey(self.0)
    }

    /// It never signed, so it may leave the JWKS at once.
    fn discard(mut self, now: UnixTime) -> RetiredKey {
        self.0.published_until = Some(now);
        RetiringKey(self.0).retire(now)
    }
}

impl ActiveKey {
    /// The stored record.
    pub fn record(&self) -> &KeyRecord {
        &self.0
    }

    /// When it started signing (creation for keys of old databases).
    pub fn active_since(&self) -> UnixTime {
        self.0.activated_at.unwrap_or(self.0.created_at)
    }

    /// Revoked: out of the JWKS at once, so its tokens stop verifying.
    fn revoke(mut self, now: UnixTime) -> RetiredKey {
        self.0.deactivated_at = Some(now);
        self.0.published_until = Some(now);
        RetiringKey(self.0).retire(now)
    }

    fn deactivate(mut self, now: UnixTime, timing: &Timing) -> RetiringKey {
        self.0.state = KeyState::Retiring;
        self.0.deactivated_at = Some(now);
        self.0.published_until = Some(now.saturating_add(timing.published_for()));
        RetiringKey(self.0)
    }
}

impl RetiringKey {
    /// The stored record.
    pub fn record(&self) -> &KeyRecord {
        &self.0
    }

    /// The first second at which it may leave the JWKS.
    pub fn leaves_at(&self) -> UnixTime {
        // A retiring key without the date (impossible unless edited by hand)
        // stays published: failing open here only costs a longer JWKS.
        self.0.published_until.unwrap_or(UnixTime::MAX)
    }

    fn retire(mut self, now: UnixTime) -> RetiredKey {
        self.0.state = KeyState::Retired;
        self.0.retired_at = Some(now);
        self.0.private_pkcs8.clear();
        self.0.sealed_pkcs8 = None;
        RetiredKey(self.0)
    }
}

impl RetiredKey {
    /// The stored record.
    pub fn record(&self) -> &KeyRecord {
        &self.0
    }
}

/// Proof, from [`KeySet::check_ready`], that the next key may sign at `now`.
/// Only that check makes one, so a rotation cannot skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    now: UnixTime,
}

/// Why a rotation cannot happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the next key has been published only since {}; resource servers may cache the JWKS for {max_age} s, \
     so it may sign from {} on",
    rfc3339(*.published_at),
    rfc3339(*.ready_at)
)]
pub struct NotReady {
    /// When the next key was published.
    pub published_at: UnixTime,
    /// The JWKS cache interval.
    pub max_age: u64,
    /// The first second a rotation is allowed.
    pub ready_at: UnixTime,
}

/// Why a key cannot be revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// No key has that kid.
    #[error("no signing key has the kid {0}")]
    Unknown(String),
    /// The key already left the JWKS.
    #[error("the key {0} is already retired: it is not in the JWKS")]
    AlreadyRetired(String),
    /// Revoking the active or the next key needs a key to take its place.
    #[error("revoking the key {0} needs a new next key")]
    NoReplacement(String),
}

/// Every key of an installation, with exactly one active and one next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    active: ActiveKey,
    next: NextKey,
    retiring: Vec<RetiringKey>,
    retired: Vec<RetiredKey>,
}

impl KeySet {
    /// A first set: `active` signs at once (there was no JWKS before it, so
    /// no cache can lack it), `next` is published beside it.
    pub fn first(active: KeyRecord, next: KeyRecord, now: UnixTime) -> Self {
        Self {
            active: NextKey::new(active).activate(now),
            next: NextKey::new(next),
            retiring: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// Sorts stored records into their states.
    ///
    /// # Errors
    /// A description if there is not exactly one active and one next key.
    pub fn from_records(records: Vec<KeyRecord>) -> Result<Self, &'static str> {
        let (mut active, mut next, mut retiring, mut retired) = (None, None, Vec::new(), Vec::new());
        for record in records {
            match record.state {
                KeyState::Active if active.is_some() => return Err("more than one active key"),
                KeyState::Active => active = Some(ActiveKey(record)),
                KeyState::Next if next.is_some() => return Err("more than one next key"),
                KeyState::Next => next = Some(NextKey(record)),
                KeyState::Retiring => retiring.push(RetiringKey(record)),
                KeyState::Retired => retired.push(RetiredKey(record)),
            }
        }
        let active = active.ok_or("no active key")?;
        let next = next.ok_or("no next key")?;
        Ok(Self { active, next, retiring, retired })
    }

    /// The key that signs.
    pub fn active(&self) -> &ActiveKey {
        &self.active
    }

    /// The key that signs after the next rotation.
    pub fn next(&self) -> &NextKey {
        &self.next
    }

    /// Keys still published that no longer sign.
    pub fn retiring(&self) -> &[RetiringKey] {
        &self.retiring
    }

    /// Keys gone from the JWKS.
    pub fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    /// Every record, active first, then next, retiring, retired.
    pub fn records(&self) -> impl Iterator<Item = &KeyRecord> {
        std::iter::once(self.active.record())
            .chain(std::iter::once(self.next.record()))
            .chain(self.retiring.iter().map(RetiringKey::record))
            .chain(self.retired.iter().map(RetiredKey::record))
    }

    /// The published records: active, next, then retiring.
    pub fn published(&self) -> impl Iterator<Item = &KeyRecord> {
        self.records().filter(|k| k.state != KeyState::Retired)
    }

    /// Whether the next key may start signing at `now`; the answer is the
    /// proof [`KeySet::rotate`] asks for.
    ///
    /// # Errors
    /// [`NotReady`] while it has been published for one cache interval or less.
    pub fn check_ready(&self, now: UnixTime, timing: &Timing) -> Result<Ready, NotReady> {
        let ready_at = self.next.ready_at(timing);
        if now >= ready_at {
            Ok(Ready { now })
        } else {
            Err(NotReady { published_at: self.next.record().created_at, max_age: timing.jwks_max_age, ready_at })
        }
    }

    /// Rotation at the time `ready` was checked for: the next key signs,
    /// `new_next` is published, the old active key retires.
    pub fn rotate(self, ready: Ready, new_next: NextKey, timing: &Timing) -> Self {
        self.rotate_at(ready.now, new_next, timing)
    }

    /// Rotation at once, without the proof that every cached JWKS holds the
    /// next key (a lost or compromised active key): the next key signs,
    /// `new_next` is published, the old active key retires as usual. A
    /// resource server whose cached JWKS predates the next key refetches it
    /// on the unknown `kid`.
    pub fn rotate_now(self, now: UnixTime, new_next: NextKey, timing: &Timing) -> Self {
        self.rotate_at(now, new_next, timing)
    }

    fn rotate_at(self, now: UnixTime, new_next: NextKey, timing: &Timing) -> Self {
        let Self { active, next, mut retiring, retired } = self;
        retiring.push(active.deactivate(now, timing));
        Self { active: next.activate(now), next: new_next, retiring, retired }
    }

    /// Records an operator's request to rotate as soon as it is safe: the
    /// next key then signs from its [`NextKey::ready_at`] (see [`plan`]).
    /// A second request keeps the first one's time.
    pub fn schedule_rotation(mut self, now: UnixTime) -> Self {
        self.next.0.rotation_requested_at.get_or_insert(now);
        self
    }

    /// When the requested rotation happens: the next key's first safe second.
    pub fn scheduled_rotation(&self, timing: &Timing) -> Option<UnixTime> {
        self.next.rotation_requested_at().map(|_| self.next.ready_at(timing))
    }

    /// Replaces the next key (it never signed) with `new_next`, e.g. an
    /// imported key or one of a newly configured algorithm. A requested
    /// rotation stays requested, for the new key's first safe moment.
    pub fn replace_next(self, mut new_next: NextKey, now: UnixTime) -> Self {
        let Self { active, next, retiring, mut retired } = self;
        new_next.0.rotation_requested_at = next.rotation_requested_at();
        retired.push(next.discard(now));
        Self { active, next: new_next, retiring, retired }
    }

    /// The state of the key `kid`, if there is one.
    pub fn state_of(&self, kid: &str) -> Option<KeyState> {
        self.records().find(|k| k.kid == kid).map(|k| k.state)
    }

    /// Takes `kid` out of the JWKS at once; its tokens stop verifying.
    /// - the active key: the next key signs from `now` (whether or not every
    ///   cached JWKS holds it) and `replacement` becomes the next key;
    /// - the next key: `replacement` takes its place;
    /// - a retiring key: it retires now.
    ///
    /// # Errors
    /// [`RevokeError`] for an unknown or retired key, or a missing
    /// replacement for the active or next key.
    pub fn revoke(self, kid: &str, replacement: Option<NextKey>, now: UnixTime) -> Result<Self, RevokeError> {
        let Self { active, next, mut retiring, mut retired } = self;
        if active.record().kid == kid {
            let Some(new_next) = replacement else { return Err(RevokeError::NoReplacement(kid.to_owned())) };
            retired.push(active.revoke(now));
            return Ok(Self { active: next.activate(now), next: new_next, retiring, retired });
        }
        if next.record().kid == kid {
            let Some(mut new_next) = replacement else { return Err(RevokeError::NoReplacement(kid.to_owned())) };
            new_next.0.rotation_requested_at = next.rotation_requested_at();
            retired.push(next.discard(now));
            return Ok(Self { active, next: new_next, retiring, retired });
        }
        if let Some(position) = retiring.iter().position(|k| k.record().kid == kid) {
            let key = retiring.remove(position);
            let mut record = key.0;
            record.published_until = Some(now);
            retired.push(RetiringKey(record).retire(now));
            return Ok(Self { active, next, retiring, retired });
        }
        if retired.iter().any(|k| k.record().kid == kid) {
            return Err(RevokeError::AlreadyRetired(kid.to_owned()));
        }
        Err(RevokeError::Unknown(kid.to_owned()))
    }

    /// Retires every retiring key whose publication period is over.
    pub fn retire_due(self, now: UnixTime) -> Self {
        let Self { active, next, retiring, mut retired } = self;
        let (due, kept): (Vec<_>, Vec<_>) = retiring.into_iter().partition(|k| now >= k.leaves_at());
        retired.extend(due.into_iter().map(|k| k.retire(now)));
        Self { active, next, retiring: kept, retired }
    }
}

/// What is due at a given time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The next key is ready, and the active key's period is over or an
    /// operator asked for a rotation.
    pub rotate: bool,
    /// Retiring keys (by kid) whose publication period is over.
    pub retire: Vec<String>,
}

impl Plan {
    /// Whether anything is due.
    pub fn is_empty(&self) -> bool {
        !self.rotate && self.retire.is_empty()
    }
}

/// Decides what is due at `now`. Pure: the caller applies it.
pub fn plan(set: &KeySet, now: UnixTime, timing: &Timing) -> Plan {
    let period_over = now >= set.active.active_since().saturating_add(timing.rotate_every);
    let requested = set.next.rotation_requested_at().is_some();
    Plan {
        rotate: (period_over || requested) && set.check_ready(now, timing).is_ok(),
        retire: set.retiring.iter().filter(|k| now >= k.leaves_at()).map(|k| k.record().kid.clone()).collect(),
    }
}

#[cfg(test)]
mod tests;
