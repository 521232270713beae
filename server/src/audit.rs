//! The audit trail: what operators did to clients and keys, and the
//! security events the server detected, kept in the store with bounded
//! retention.
//!
//! Code that has something to record holds an [`Audit`] (cheap to clone)
//! and calls [`Audit::record`] with an [`AuditEntry`]. Recording never
//! fails the operation it describes: a storage failure is logged and the
//! operation's own answer stands. [`retain`] is the background task that
//! keeps the trail within [`Retention`].

use std::sync::Arc;
use std::time::Duration;

use tessera_shared::admin::{AuditEvent, AuditKind};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, UnixTime};
use crate::store::{Store, StoreError};

/// Events removed per purge batch; the task yields between batches.
const PURGE_BATCH: usize = 1000;

/// Something worth recording, before the store numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// What happened.
    pub kind: AuditKind,
    /// The client concerned, if any.
    pub client_id: Option<String>,
    /// A sentence for the operator. Never a secret or a token.
    pub detail: String,
}

impl AuditEntry {
    /// An entry about one client.
    pub fn client(kind: AuditKind, client_id: &str, detail: impl Into<String>) -> Self {
        Self { kind, client_id: Some(client_id.to_owned()), detail: detail.into() }
    }

    /// An entry about no client in particular.
    pub fn global(kind: AuditKind, detail: impl Into<String>) -> Self {
        Self { kind, client_id: None, detail: detail.into() }
    }
}

/// How much of the trail is kept: at most `max_events` operators' actions
/// and, apart, at most `max_events` security events (so an outsider who
/// triggers security events cannot push operators' actions out), none older
/// than `max_age_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest events kept of each class.
    pub max_events: usize,
    /// The age beyond which events are removed.
    pub max_age_seconds: u64,
}

impl Default for Retention {
    /// 10 000 events of each class, 90 days.
    fn default() -> Self {
        Self { max_events: 10_000, max_age_seconds: 90 * 24 * 3600 }
    }
}

/// The handle through which events are recorded. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Audit {
    /// An audit trail kept in `store`, timed by `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Records `entry` now. Returns the stored event, or `None` when storage
    /// failed (which is logged: the audited operation itself succeeded).
    pub async fn record(&self, entry: AuditEntry) -> Option<AuditEvent> {
        let event = AuditEvent {
            seq: 0,
            at: self.clock.now(),
            kind: entry.kind,
            client_id: entry.client_id,
            detail: entry.detail,
        };
        match self.store.append_audit(&event).await {
            Ok(stored) => Some(stored),
            Err(error) => {
                tracing::error!(%error, kind = %event.kind, "could not record an audit event");
                None
            }
        }
    }

    /// Up to `limit` events after `after`, or the newest `limit` when
    /// `after` is `None`; oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on storage failure.
    pub async fn page(&self, after: Option<u64>, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        match after {
            Some(after) => self.store.audit_after(after, limit).await,
            None => self.store.audit_latest(limit).await,
        }
    }

    /// Removes what `retention` no longer keeps; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] on storage failure.
    pub async fn purge(&self, retention: Retention, shutdown: &CancellationToken) -> Result<u64, StoreError> {
        let before: UnixTime = self.clock.now().saturating_sub(retention.max_age_seconds);
        let mut total = 0;
        while !shutdown.is_cancelled() {
            let removed = self.store.purge_audit(retention.max_events, before, PURGE_BATCH).await?;
            total += removed;
            if removed < PURGE_BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(total)
    }
}

/// Keeps the trail within `retention`, checking every `interval` until
/// `shutdown` is cancelled.
pub async fn retain(audit: Audit, retention: Retention, interval: Duration, shutdown: CancellationToken) {
    crate::periodic::every(interval, &shutdown, || async {
        match audit.purge(retention, &shutdown).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "purged old audit events"),
            Err(error) => tracing::error!(%error, "audit purge failed; will retry"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
