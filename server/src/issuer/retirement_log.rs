//! The log line for refresh-token families retired at a client's cap, at
//! most one per client per [`LINE_EVERY`] seconds.
//!
//! A client that asks for a refresh token with every client_credentials
//! grant sits at its cap and retires a family with each grant: a line per
//! retirement would be thousands of lines a second, all saying the same.
//! Each line carries the retirements since the client's previous one; the
//! `tessera_refresh_families_retired` counter has every one as it happens.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;

/// Seconds between two lines about one client.
const LINE_EVERY: u64 = 60;

/// Most clients followed at once. Beyond it, a client whose last line is
/// older than [`LINE_EVERY`] is forgotten to make room; if none is, the
/// line is written without following the client (memory stays bounded;
/// the log is as it would be without this).
const MAX_FOLLOWED: usize = 1024;

#[derive(Debug)]
struct Followed {
    /// When its last line was written.
    line_at: UnixTime,
    /// Retirements since that line.
    unreported: u64,
}

/// When to write a line about retired families.
#[derive(Debug, Default)]
pub struct RetirementLog {
    clients: Mutex<HashMap<String, Followed>>,
}

impl RetirementLog {
    /// Counts `retired` families of `client_id` retired at `now`; returns
    /// the number the line should report if one is due now.
    pub fn retired(&self, client_id: &str, retired: u64, now: UnixTime) -> Option<u64> {
        // Only counts inside: a poisoned lock is taken as is.
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(followed) = clients.get_mut(client_id) {
            if now < followed.line_at.saturating_add(LINE_EVERY) {
                followed.unreported = followed.unreported.saturating_add(retired);
                return None;
            }
            let report = followed.unreported.saturating_add(retired);
            *followed = Followed { line_at: now, unreported: 0 };
            return Some(report);
        }
        if clients.len() >= MAX_FOLLOWED {
            clients.retain(|_, followed| now < followed.line_at.saturating_add(LINE_EVERY));
        }
        if clients.len() < MAX_FOLLOWED {
            clients.insert(client_id.to_owned(), Followed { line_at: now, unreported: 0 });
        }
        Some(retired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_700_000_000;

    #[test]
    fn one_line_per_client_per_minute_carries_the_retirements_between() {
        let log = RetirementLog::default();
        assert_eq!(log.retired("a", 1, NOW), Some(1), "the first is reported at once");
        for second in 1..LINE_EVERY {
            assert_eq!(log.retired("a", 1, NOW + second), None, "second {second}");
        }
        assert_eq!(log.retired("b", 2, NOW + 30), Some(2), "another client has its own minute");
        assert_eq!(log.retired("a", 1, NOW + LINE_EVERY), Some(LINE_EVERY), "the 59 held back, and this one");
        assert_eq!(log.retired("a", 1, NOW + LINE_EVERY + 1), None);
    }

    #[test]
    fn the_clients_followed_are_bounded() {
        let log = RetirementLog::default();
        let many = u64::try_from(MAX_FOLLOWED).unwrap() + 10;
        for n in 0..many {
            assert_eq!(log.retired(&format!("c{n}"), 1, NOW), Some(1));
        }
        assert_eq!(log.clients.lock().unwrap().len(), MAX_FOLLOWED);
        // Those beyond the bound are not followed: each retirement is a line.
        assert_eq!(log.retired(&format!("c{}", many - 1), 1, NOW + 1), Some(1));
        // Once the minute is over, the old ones make room.
        assert_eq!(log.retired("new", 1, NOW + LINE_EVERY), Some(1));
        assert_eq!(log.retired("new", 1, NOW + LINE_EVERY + 1), None, "followed now");
        assert_eq!(log.clients.lock().unwrap().len(), 1);
    }
}
