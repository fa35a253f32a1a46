//! The wall clock the leader stamps batches with: injected, so that a simulation can drive it.
//!
//! Only the leader's batcher reads a clock; the state machine never does (design.md invariant 1).

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use quorate_core::Nanos;
use tokio::time::Instant;

/// A source of cluster time: nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> Nanos;
}

/// The system wall clock read once at start, then advanced by the monotonic clock.
///
/// Anchoring keeps the leader's timestamps monotone even if NTP steps the wall clock; a new leader's clock may be
/// behind the previous one's, which the state machine absorbs with `max(previous, entry time)`.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    wall: Nanos,
    anchor: Instant,
}

impl SystemClock {
    /// Anchors a clock at the current system time.
    pub fn new() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Nanos);
        SystemClock { wall, anchor: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        self.wall.saturating_add(self.anchor.elapsed().as_nanos() as Nanos)
    }
}
