//! What the token endpoint did, for the operator: cumulative counters
//! (tokens issued and refreshed, failed authentications) and the audit
//! events the endpoint itself raises (refresh-token reuse, bursts of failed
//! authentication).
//!
//! The counters are relaxed atomics: a success costs one uncontended
//! `fetch_add`, no lock. Only a failed authentication takes the burst
//! detector's short lock ([`burst`]).

pub mod burst;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tessera_shared::admin::{AuditKind, Stats};
use tessera_shared::ids::is_client_id;

use crate::audit::{Audit, AuditEntry};
use crate::clock::{Clock, UnixTime};
use burst::{Burst, BurstDetector, BurstPolicy};

/// The shared activity handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Activity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    audit: Audit,
    clock: Arc<dyn Clock>,
    started_at: UnixTime,
    issued: AtomicU64,
    refreshed: AtomicU64,
    failed: AtomicU64,
    bursts: BurstDetector,
}

impl Activity {
    /// Counters from zero, events into `audit`, bursts by `policy`.
    pub fn new(audit: Audit, clock: Arc<dyn Clock>, policy: BurstPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                audit,
                started_at: clock.now(),
                clock,
                issued: AtomicU64::new(0),
                refreshed: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                bursts: BurstDetector::new(policy),
            }),
        }
    }

    /// The audit trail this handle records into.
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// A client_credentials grant succeeded.
    pub fn token_issued(&self) {
        self.inner.issued.fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh grant succeeded.
    pub fn token_refreshed(&self) {
        self.inner.refreshed.fetch_add(1, Ordering::Relaxed);
    }

    /// A client failed to authenticate with `client_id` (as presented).
    /// Only the ID of a client that exists (`known`) is tracked per client:
    /// made-up IDs count toward the one aggregate burst only, so an
    /// outsider spraying IDs cannot write an event per ID. Records one
    /// audit event when this failure completes a burst.
    pub async fn authentication_failed(&self, client_id: &str, known: bool) {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
        let tracked = (known && is_client_id(client_id)).then_some(client_id);
        let bursts = self.inner.bursts.failure(tracked, self.inner.clock.now());
        for burst in bursts {
            let entry = match burst {
                Burst::Client { client_id, failures, window } => AuditEntry::client(
                    AuditKind::AuthFailureBurst,
                    &client_id,
                    format!("{failures} failed authentications for this client ID within {window} s"),
                ),
                Burst::Total { failures, window } => AuditEntry::global(
                    AuditKind::AuthFailureBurst,
                    format!("{failures} failed client authentications within {window} s"),
                ),
            };
            tracing::warn!(event = "auth_failure_burst", detail = %entry.detail, "burst of failed authentications");
            self.inner.audit.record(entry).await;
        }
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        Stats {
            started_at: self.inner.started_at,
            tokens_issued: self.inner.issued.load(Ordering::Relaxed),
            tokens_refreshed: self.inner.refreshed.load(Ordering::Relaxed),
            failed_authentications: self.inner.failed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
