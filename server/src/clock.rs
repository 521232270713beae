//! The one place that reads the wall clock.
//!
//! Logic takes `now` as a parameter (seconds since the Unix epoch) so tests
//! control time instead of sleeping; only the service layer asks a [`Clock`].

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub type UnixTime = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current time in whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // this is the clock module
    fn now(&self) -> UnixTime {
        // A clock before 1970 is a broken host; 0 makes every token look
        // expired, which fails closed.
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
    }
}

#[cfg(test)]
pub mod testing {
    //! A clock tests move by hand.
    use super::{Clock, UnixTime};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that stands still until told otherwise.
    #[derive(Debug)]
    pub struct ManualClock(AtomicU64);

    impl ManualClock {
        /// A clock showing `now`.
        pub fn at(now: UnixTime) -> Self {
            Self(AtomicU64::new(now))
        }

        /// Moves the clock forward.
        pub fn advance(&self, seconds: u64) {
            self.0.fetch_add(seconds, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> UnixTime {
            self.0.load(Ordering::SeqCst)
        }
    }
}
