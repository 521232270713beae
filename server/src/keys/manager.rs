//! The key manager: the service layer of the key life cycle. It reads the
//! clock, generates keys, asks [`lifecycle`](super::lifecycle) what is due,
//! stores the result and swaps in the new [`KeyRing`].
//!
//! Changes are serialised by one async mutex (rotations are rare; the token
//! endpoint never takes it). The store is written before the ring is
//! swapped, so what is served is always what survives a crash.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use tessera_shared::admin::{AuditKind, KeyInfo, KeyState};
use tessera_shared::jwk::Algorithm;
use tessera_shared::utc::rfc3339;
use tokio_util::sync::CancellationToken;

use super::lifecycle::{self, KeySet, NextKey, Timing};
use super::{KeyError, KeyHandle, KeyRing, private_pkcs8};
use crate::audit::{Audit, AuditEntry};
use crate::clock::{Clock, UnixTime};
use crate::crypto::CryptoError;
use crate::crypto::seal::Kek;
use crate::crypto::signing::{JwtSigner, detect_algorithm, generate_pkcs8};
use crate::store::Store;
use crate::store::records::KeyRecord;

/// Longest pause between two checks of the schedule.
const MAX_CHECK_INTERVAL: u64 = 60;
/// Starts that may lose the race to store the first keys to another
/// instance before giving up (each loss means another instance succeeded).
const MAX_START_ATTEMPTS: u32 = 5;
/// Pause before re-reading the shared keys after a failed read.
pub const FOLLOW_RETRY: Duration = Duration::from_secs(1);

/// What [`KeyManager::rotate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The next key signs from `at` (now).
    Rotated {
        /// When.
        at: UnixTime,
    },
    /// The next key signs from `at`, its first safe second.
    Scheduled {
        /// When.
        at: UnixTime,
    },
}

/// What the manager needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySettings {
    /// Algorithm of the keys it generates.
    pub alg: Algorithm,
    /// Rotation period and the intervals that make rotation safe.
    pub timing: Timing,
}

/// Loads, rotates, imports and retires signing keys. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KeyManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: KeySettings,
    kek: Option<Kek>,
    handle: KeyHandle,
    /// The set as stored; held while changing it so that a scheduled and
    /// an on-demand rotation cannot interleave.
    set: tokio::sync::Mutex<KeySet>,
    /// Where every key change is recorded, with the kid.
    audit: Audit,
    /// Wakes the maintenance loop when a rotation is scheduled, so that it
    /// sleeps until exactly the scheduled second.
    wake: tokio::sync::Notify,
}

impl KeyManager {
    /// Loads the stored keys, or creates the first active and next keys.
    /// Also at start: replaces a generated next key whose algorithm is no
    /// longer the configured one (it never signed), seals plain keys when a
    /// KEK is given, and retires keys whose time is up.
    ///
    /// # Errors
    /// [`KeyError`] if storage fails, a key does not parse, or the KEK is
    /// missing or wrong for sealed keys.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: KeySettings,
        kek: Option<Kek>,
        audit: Audit,
    ) -> Result<Self, KeyError> {
        // Several instances may start at once on a shared store: each
        // prepares its change from what it read, exactly one change is
        // stored, and the others start over from what that one stored.
        let mut attempts = 0;
        let (set, ring) = loop {
            attempts += 1;
            let stored = store.keys().await?;
            let (set, ring) = prepare(&stored, clock.as_ref(), settings, kek.as_ref()).await?;
            let changed: Vec<KeyRecord> = set.records().filter(|r| !stored.contains(r)).cloned().collect();
            if changed.is_empty() {
                break (set, ring);
            }
            if store.replace_keys(&stored, &changed).await? {
                for (kind, detail) in start_changes(&stored, &set) {
                    audit.record(AuditEntry::global(kind, detail)).await;
                }
                break (set, ring);
            }
            if attempts >= MAX_START_ATTEMPTS {
                return Err(KeyError::Changed);
            }
        };
        let handle = KeyHandle::new(ring);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                settings,
                kek,
                handle,
                set: tokio::sync::Mutex::new(set),
                audit,
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Records `kind` in the audit trail.
    async fn audit(&self, kind: AuditKind, detail: String) {
        self.inner.audit.record(AuditEntry::global(kind, detail)).await;
    }

    /// The handle the token and JWKS endpoints read.
    pub fn handle(&self) -> KeyHandle {
        self.inner.handle.clone()
    }

    /// The settings in force.
    pub fn settings(&self) -> KeySettings {
        self.inner.settings
    }

    /// Every key, without private parts.
    pub fn infos(&self) -> Vec<KeyInfo> {
        self.inner.handle.current().infos().to_vec()
    }

    /// An operator's rotation, which never refuses: if the next key has
    /// been published for more than one JWKS cache interval it signs now
    /// (a new next key of the configured algorithm is published, the active
    /// key retires); otherwise the rotation is stored as scheduled and
    /// [`KeyManager::run`] performs it at the next key's first safe second.
    ///
    /// # Errors
    /// Storage or key-generation errors.
    pub async fn rotate(&self, reason: &'static str) -> Result<Rotation, KeyError> {
        let mut set = self.inner.set.lock().await;
        self.sync_locked(&mut set).await?;
        let now = self.inner.clock.now();
        let timing = self.inner.settings.timing;
        if set.check_ready(now, &timing).is_ok() {
            let at = self.rotate_locked(&mut set, reason).await?;
            return Ok(Rotation::Rotated { at });
        }
        let at = set.next().ready_at(&timing);
        if set.next().rotation_requested_at().is_none() {
            let updated = set.clone().schedule_rotation(now);
            self.commit(&mut set, updated).await?;
            let next = set.next().record().kid.clone();
            let when = rfc3339(at);
            tracing::info!(event = "key_rotation_scheduled", next = %next, at = %when, "signing-key rotation scheduled");
            let detail = format!(
                "{reason}: rotation scheduled for {when}, when {next} will have been published for one JWKS \
                 cache lifetime ({} s)",
                timing.jwks_max_age
            );
            self.audit(AuditKind::KeyRotationScheduled, detail).await;
        }
        self.inner.wake.notify_one();
        Ok(Rotation::Scheduled { at })
    }

    /// Rotates at once, even if resource servers may not have the next key
    /// in their cached JWKS yet (a lost or compromised active key): they
    /// refetch the JWKS on its unknown `kid`. The old active key stays
    /// published until its tokens have expired, as in any rotation. Returns
    /// the second from which the new active key signs.
    ///
    /// # Errors
    /// Storage or key-generation errors.
    pub async fn rotate_now(&self, reason: &'static str) -> Result<UnixTime, KeyError> {
        let mut set = self.inner.set.lock().await;
        self.sync_locked(&mut set).await?;
        let fresh = self.fresh_next().await?;
        let now = self.inner.clock.now();
        let old_active = set.active().record().kid.clone();
        let updated = set.clone().rotate_now(now, NextKey::new(fresh), &self.inner.settings.timing);
        let (new_active, new_next) = (updated.active().record().kid.clone(), updated.next().record().kid.clone());
        self.commit(&mut set, updated).await?;
        tracing::warn!(
            event = "key_rotated",
            reason,
            retiring = %old_active,
            active = %new_active,
            next = %new_next,
            "signing keys rotated at once, before every cached JWKS may hold the new active key"
        );
        let detail = format!(
            "{reason}, at once: {old_active} now retiring, {new_active} signs, {new_next} is next; resource \
             servers with an older JWKS refetch it on the new kid"
        );
        self.audit(AuditKind::KeyRotated, detail).await;
        Ok(now)
    }

    /// Takes `kid` out of the JWKS at once; tokens it signed stop
    /// verifying. Revoking the active key makes the next key sign from now
    /// and publishes a new next key; revoking the next key replaces it.
    ///
    /// # Errors
    /// [`KeyError::Revoke`] for an unknown or already retired key; storage
    /// or key-generation errors.
    pub async fn revoke(&self, kid: &str) -> Result<(), KeyError> {
        let mut set = self.inner.set.lock().await;
        self.sync_locked(&mut set).await?;
        let state = set.state_of(kid);
        let replacement = match state {
            Some(KeyState::Active | KeyState::Next) => Some(NextKey::new(self.fresh_next().await?)),
            _ => None,
        };
        let now = self.inner.clock.now();
        let updated = set.clone().revoke(kid, replacement, now)?;
        let (active, next) = (updated.active().record().kid.clone(), updated.next().record().kid.clone());
        self.commit(&mut set, updated).await?;
        let was = state.map_or_else(String::new, |s| s.to_string());
        tracing::warn!(event = "key_revoked", kid, was = %was, active = %active, next = %next, "a signing key was revoked");
        let detail = match state {
            Some(KeyState::Active) => format!(
                "{kid} (active) revoked: out of the JWKS, its tokens stop verifying; {active} signs from now, \
                 {next} is next"
            ),
            Some(KeyState::Next) => format!("{kid} (next) revoked: out of the JWKS; {next} is next"),
            _ => format!("{kid} ({was}) revoked: out of the JWKS, its tokens stop verifying"),
        };
        self.audit(AuditKind::KeyRevoked, detail).await;
        Ok(())
    }

    /// When a scheduled rotation happens, if one is.
    pub fn scheduled_rotation(&self) -> Option<UnixTime> {
        self.inner.handle.current().infos().iter().find_map(|k| k.rotation_scheduled_at)
    }

    /// A new next key of the configured algorithm, created now.
    async fn fresh_next(&self) -> Result<KeyRecord, KeyError> {
        let fresh = generate(self.inner.settings.alg, self.inner.clock.now(), self.inner.kek.as_ref()).await?;
        // Read the clock after generating: the new key is published from
        // the moment it is stored, not from when generation began.
        Ok(KeyRecord { created_at: self.inner.clock.now(), ..fresh })
    }

    /// Imports an operator's PKCS#8 PEM private key as the next key; it
    /// signs from the rotation after next cache interval. The next key it
    /// replaces never signed and leaves the JWKS.
    ///
    /// # Errors
    /// [`KeyError::Import`] if the PEM is not a usable key, or it is already known.
    pub async fn import(&self, pem: &str) -> Result<Vec<KeyInfo>, KeyError> {
        let (label, der) = parse_pem(pem).map_err(|e| KeyError::Import(format!("not a PEM document: {e}")))?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::Import(format!(
                "the PEM is a {label:?}, not a PKCS#8 \"PRIVATE KEY\" (convert it with `openssl pkcs8 -topk8 -nocrypt`)"
            )));
        }
        let alg = detect_algorithm(&der).ok_or_else(|| {
            KeyError::Import("not an RSA (2048 bits or more), P-256 or Ed25519 private key that ring accepts".into())
        })?;
        let mut set = self.inner.set.lock().await;
        self.sync_locked(&mut set).await?;
        let now = self.inner.clock.now();
        let mut record = key_record(alg, der, now, self.inner.kek.as_ref())?;
        if set.records().any(|k| k.kid == record.kid) {
            return Err(KeyError::Import(format!("the key {} is already known", record.kid)));
        }
        record.imported = true;
        let kid = record.kid.clone();
        let updated = set.clone().replace_next(NextKey::new(record), now);
        self.commit(&mut set, updated).await?;
        tracing::info!(event = "key_imported", kid = %kid, alg = %alg, "a signing key was imported as the next key");
        self.audit(AuditKind::KeyImported, format!("{kid} ({alg}) imported as the next key")).await;
        Ok(self.infos())
    }

    /// Applies what the schedule says is due now: a rotation, retirements.
    ///
    /// # Errors
    /// [`KeyError`] if storage or key generation fails.
    pub async fn tick(&self) -> Result<(), KeyError> {
        match self.tick_once().await {
            // Another instance did what was due first; its keys are served now.
            Err(KeyError::Changed) => Ok(()),
            other => other,
        }
    }

    async fn tick_once(&self) -> Result<(), KeyError> {
        let mut set = self.inner.set.lock().await;
        self.sync_locked(&mut set).await?;
        let now = self.inner.clock.now();
        let plan = lifecycle::plan(&set, now, &self.inner.settings.timing);
        if plan.is_empty() {
            return Ok(());
        }
        if !plan.retire.is_empty() {
            let updated = set.clone().retire_due(now);
            self.commit(&mut set, updated).await?;
            for kid in &plan.retire {
                tracing::info!(event = "key_retired", kid = %kid, "a retired signing key left the JWKS");
                self.audit(AuditKind::KeyRetired, format!("{kid} left the JWKS; its private key is wiped")).await;
            }
        }
        if plan.rotate {
            let reason = if set.next().rotation_requested_at().is_some() {
                "rotation scheduled by an operator"
            } else {
                "schedule"
            };
            self.rotate_locked(&mut set, reason).await?;
        }
        Ok(())
    }

    /// Runs [`KeyManager::tick`] now, then regularly and at the second a
    /// scheduled rotation is due, until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let timing = self.inner.settings.timing;
        // Often enough that a retirement or a due periodic rotation is at
        // most a fraction of a cache interval late.
        let every = (timing.jwks_max_age / 2).clamp(1, MAX_CHECK_INTERVAL);
        loop {
            if let Err(error) = self.tick().await {
                tracing::error!(%error, "signing-key maintenance failed; will retry");
            }
            let wait = match self.scheduled_rotation() {
                // A failed rotation retries at the regular pace, not in a spin.
                Some(at) => at.saturating_sub(self.inner.clock.now()).clamp(1, every),
                None => every,
            };
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(wait)) => {}
                () = self.inner.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Re-reads the stored keys whenever `changes` says they may have
    /// changed, until `shutdown` is cancelled: with a shared store, a
    /// rotation through one instance is served by all as soon as its
    /// notification arrives. A failed read is retried every
    /// [`FOLLOW_RETRY`] until it succeeds.
    pub async fn follow(self, mut changes: tokio::sync::watch::Receiver<u64>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
            changes.borrow_and_update();
            while let Err(error) = self.sync().await {
                tracing::error!(%error, "cannot read the shared signing keys; will retry");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(FOLLOW_RETRY) => {}
                }
            }
        }
    }

    /// Serves the stored key set if another instance changed it; returns
    /// whether it had.
    ///
    /// # Errors
    /// [`KeyError`] if storage fails or the stored keys do not make a ring.
    pub async fn sync(&self) -> Result<bool, KeyError> {
        let mut set = self.inner.set.lock().await;
        self.sync_locked(&mut set).await
    }

    async fn sync_locked(&self, set: &mut KeySet) -> Result<bool, KeyError> {
        if !self.inner.store.is_shared() {
            // Nobody else writes the keys: what is held is what is stored.
            return Ok(false);
        }
        let mut stored = self.inner.store.keys().await?;
        stored.sort_by(|a, b| a.kid.cmp(&b.kid));
        let mut held: Vec<KeyRecord> = set.records().cloned().collect();
        held.sort_by(|a, b| a.kid.cmp(&b.kid));
        if stored == held {
            return Ok(false);
        }
        let updated = KeySet::from_records(stored).map_err(KeyError::Inconsistent)?;
        let ring = KeyRing::build(&updated, self.inner.kek.as_ref(), &self.inner.settings.timing)?;
        *set = updated;
        self.inner.handle.replace(ring);
        tracing::info!(event = "keys_reloaded", "serving signing keys changed by another instance");
        Ok(true)
    }

    /// Rotates; returns the second from which the new active key signs.
    async fn rotate_locked(&self, set: &mut KeySet, reason: &'static str) -> Result<UnixTime, KeyError> {
        let alg = self.inner.settings.alg;
        let fresh = self.fresh_next().await?;
        let now = fresh.created_at;
        let old_active = set.active().record().kid.clone();
        let timing = &self.inner.settings.timing;
        let ready = set.check_ready(now, timing)?;
        let updated = set.clone().rotate(ready, NextKey::new(fresh), timing);
        let new_active = updated.active().record().kid.clone();
        let new_next = updated.next().record().kid.clone();
        self.commit(set, updated).await?;
        tracing::info!(
            event = "key_rotated",
            reason,
            retiring = %old_active,
            active = %new_active,
            next = %new_next,
            next_alg = %alg,
            "signing keys rotated"
        );
        let detail = format!("{reason}: {old_active} now retiring, {new_active} signs, {new_next} ({alg}) is next");
        self.audit(AuditKind::KeyRotated, detail).await;
        Ok(now)
    }

    /// Stores `updated`, then serves it. The store takes it only if it
    /// still holds `set` (compare-and-swap); if another instance changed
    /// the keys meanwhile, its change is served instead and
    /// [`KeyError::Changed`] returned.
    async fn commit(&self, set: &mut KeySet, updated: KeySet) -> Result<(), KeyError> {
        let ring = KeyRing::build(&updated, self.inner.kek.as_ref(), &self.inner.settings.timing)?;
        let changed: Vec<KeyRecord> =
            updated.records().filter(|r| !set.records().any(|old| old == *r)).cloned().collect();
        let expected: Vec<KeyRecord> = set.records().cloned().collect();
        if !self.inner.store.replace_keys(&expected, &changed).await? {
            self.sync_locked(set).await?;
            return Err(KeyError::Changed);
        }
        *set = updated;
        self.inner.handle.replace(ring);
        Ok(())
    }
}

/// What starting changed in the stored keys, for the audit trail: a next
/// key replaced by one of a newly configured algorithm, retiring keys
/// whose time was up while the server was stopped. (The first keys of a
/// new installation change nothing that was there, and are not recorded.)
fn start_changes(stored: &[KeyRecord], set: &KeySet) -> Vec<(AuditKind, String)> {
    let next = set.next().record();
    let mut changes = Vec::new();
    for old in stored {
        let Some(now) = set.records().find(|r| r.kid == old.kid) else { continue };
        match (old.state, now.state) {
            (KeyState::Next, KeyState::Retired) => changes.push((
                AuditKind::KeyRetired,
                format!(
                    "{} ({}, next, never signed) replaced by {} ({}): signing.alg changed",
                    old.kid, old.alg, next.kid, next.alg
                ),
            )),
            (KeyState::Retiring, KeyState::Retired) => changes
                .push((AuditKind::KeyRetired, format!("{} left the JWKS at start; its private key is wiped", old.kid))),
            _ => {}
        }
    }
    changes
}

/// The key set to start with, from the stored records: the first keys of
/// a new installation, a next key of the configured algorithm, seals for
/// plain keys, retirements due.
async fn prepare(
    stored: &[KeyRecord],
    clock: &dyn Clock,
    settings: KeySettings,
    kek: Option<&Kek>,
) -> Result<(KeySet, KeyRing), KeyError> {
    let now = clock.now();
    let mut set = if stored.is_empty() {
        let active = generate(settings.alg, now, kek).await?;
        let next = generate(settings.alg, now, kek).await?;
        KeySet::first(active, next, now)
    } else {
        KeySet::from_records(stored.to_vec()).map_err(KeyError::Inconsistent)?
    };
    // Open every private key now, so that a wrong or missing KEK stops
    // the server at start rather than at the next rotation.
    for record in set.published() {
        private_pkcs8(record, kek)?;
    }
    let next = set.next().record();
    if next.alg != settings.alg && !next.imported {
        let old_alg = next.alg;
        let now = clock.now();
        set = set.replace_next(NextKey::new(generate(settings.alg, now, kek).await?), now);
        tracing::info!(
            event = "next_key_replaced",
            from = %old_alg,
            to = %settings.alg,
            "signing.alg changed: the next key now uses the new algorithm and signs from the next rotation"
        );
    }
    set = set.retire_due(now);
    if let Some(kek) = kek {
        set = seal_plain(set, kek)?;
    }
    let ring = KeyRing::build(&set, kek, &settings.timing)?;
    Ok((set, ring))
}

/// Generates a key off the async threads (an RSA key takes a while).
async fn generate(alg: Algorithm, now: UnixTime, kek: Option<&Kek>) -> Result<KeyRecord, KeyError> {
    let pkcs8 = tokio::task::spawn_blocking(move || generate_pkcs8(alg, &SystemRandom::new()))
        .await
        .map_err(|_| CryptoError::Key("key generation was interrupted".into()))??;
    key_record(alg, pkcs8, now, kek)
}

/// A next-key record for `pkcs8`, sealed when a KEK is given.
fn key_record(alg: Algorithm, pkcs8: Vec<u8>, now: UnixTime, kek: Option<&Kek>) -> Result<KeyRecord, KeyError> {
    let signer = JwtSigner::from_pkcs8(alg, &pkcs8, SystemRandom::new())?;
    let kid = signer.kid().to_owned();
    let (private_pkcs8, sealed_pkcs8) = match kek {
        Some(kek) => (Vec::new(), Some(kek.seal(&kid, &pkcs8)?)),
        None => (pkcs8, None),
    };
    Ok(KeyRecord {
        kid,
        alg,
        state: tessera_shared::admin::KeyState::Next,
        created_at: now,
        private_pkcs8,
        public_jwk: signer.public_jwk().clone(),
        sealed_pkcs8,
        imported: false,
        activated_at: None,
        deactivated_at: None,
        published_until: None,
        retired_at: None,
        rotation_requested_at: None,
    })
}

/// The label and contents of a PEM document (RFC 7468), read leniently:
/// any line length, surrounding text and blank lines are accepted, since
/// operators paste keys from many tools.
pub(crate) fn parse_pem(text: &str) -> Result<(String, Vec<u8>), &'static str> {
    use base64::Engine as _;
    let mut lines = text.lines().map(str::trim).skip_while(|l| !l.starts_with("-----BEGIN "));
    let begin = lines.next().ok_or("no -----BEGIN line")?;
    let label =
        begin.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")).ok_or("a malformed BEGIN line")?;
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            let der = base64::engine::general_purpose::STANDARD.decode(&body).map_err(|_| "the body is not base64")?;
            return Ok((label.to_owned(), der));
        }
        if line.contains(':') {
            return Err("PEM headers (an encrypted legacy key?) are not supported");
        }
        body.push_str(line);
    }
    Err("no matching -----END line")
}

/// Seals every key still stored in plain text (a KEK given to an
/// installation that had none).
fn seal_plain(set: KeySet, kek: &Kek) -> Result<KeySet, KeyError> {
    let mut records = Vec::new();
    let mut sealed = 0;
    for record in set.records() {
        let mut record = record.clone();
        if record.sealed_pkcs8.is_none() && !record.private_pkcs8.is_empty() {
            record.sealed_pkcs8 = Some(kek.seal(&record.kid, &record.private_pkcs8)?);
            record.private_pkcs8.clear();
            sealed += 1;
        }
        records.push(record);
    }
    if sealed > 0 {
        tracing::info!(
            keys = sealed,
            "signing keys stored in plain text are now encrypted with the key-encryption key"
        );
    }
    KeySet::from_records(records).map_err(KeyError::Inconsistent)
}

#[cfg(test)]
mod tests;
