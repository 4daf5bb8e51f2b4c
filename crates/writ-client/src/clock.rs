//! The clock a [`WritSource`](crate::WritSource) reads: the system's, or one a test sets.

use std::time::SystemTime;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place the wall clock is read.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
