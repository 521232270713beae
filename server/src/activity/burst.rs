//! Detecting bursts of failed client authentication in bounded memory.
//!
//! Time is cut into fixed windows of `window` seconds, starting at the first
//! failure after the previous window ended. Within a window, the failures
//! of each client ID and of all requests together are counted; reaching a
//! threshold reports one [`Burst`], and that counter reports nothing more
//! until the next window. So a flood of failures yields at most one event
//! per client ID and one overall per window, never one per failure.
//!
//! At most `max_tracked` client IDs are counted per window: failures for
//! further IDs still count toward the total, so spraying random IDs cannot
//! grow memory and still trips the overall threshold.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;

/// Thresholds and bounds of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstPolicy {
    /// Window length in seconds.
    pub window: u64,
    /// Failures of one client ID in a window that make a burst.
    pub per_client: u32,
    /// Failures in total in a window that make a burst.
    pub total: u32,
    /// Most client IDs counted per window.
    pub max_tracked: usize,
}

impl Default for BurstPolicy {
    /// 10 failures of one client ID or 100 in total within a minute; 1024
    /// client IDs tracked.
    fn default() -> Self {
        Self { window: 60, per_client: 10, total: 100, max_tracked: 1024 }
    }
}

/// A burst just detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Burst {
    /// One client ID failed `failures` times within `window` seconds.
    Client {
        /// The client ID presented.
        client_id: String,
        /// Failures counted (the threshold).
        failures: u32,
        /// Window length in seconds.
        window: u64,
    },
    /// All requests together failed `failures` times within `window` seconds.
    Total {
        /// Failures counted (the threshold).
        failures: u32,
        /// Window length in seconds.
        window: u64,
    },
}

#[derive(Debug, Default)]
struct Window {
    started: UnixTime,
    total: u32,
    per_client: HashMap<String, u32>,
}

/// The detector. Its lock is held for a hash-map update only, and only on
/// the failure path (a std mutex is enough: nothing awaits under it).
#[derive(Debug)]
pub struct BurstDetector {
    policy: BurstPolicy,
    window: Mutex<Option<Window>>,
}

impl BurstDetector {
    /// A detector with no failures yet.
    pub fn new(policy: BurstPolicy) -> Self {
        Self { policy, window: Mutex::new(None) }
    }

    /// Counts one failure at `now` (for `client_id` when it is a well-formed
    /// one) and returns the bursts it completes: none, or one or two.
    pub fn failure(&self, client_id: Option<&str>, now: UnixTime) -> Vec<Burst> {
        let policy = self.policy;
        let mut bursts = Vec::new();
        // A poisoned lock only means another thread panicked mid-update;
        // the counts are still usable.
        let mut slot = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let expired = slot.as_ref().is_none_or(|w| now >= w.started.saturating_add(policy.window) || now < w.started);
        if expired {
            *slot = Some(Window { started: now, ..Window::default() });
        }
        let Some(window) = slot.as_mut() else { return bursts };
        window.total = window.total.saturating_add(1);
        if window.total == policy.total {
            bursts.push(Burst::Total { failures: window.total, window: policy.window });
        }
        if let Some(id) = client_id {
            let room = window.per_client.len() < policy.max_tracked;
            let count = if room || window.per_client.contains_key(id) {
                Some(window.per_client.entry(id.to_owned()).or_insert(0))
            } else {
                None
            };
            if let Some(count) = count {
                *count = count.saturating_add(1);
                if *count == policy.per_client {
                    bursts.push(Burst::Client { client_id: id.to_owned(), failures: *count, window: policy.window });
                }
            }
        }
        bursts
    }
}

#[cfg(test)]
mod tests;
