//! The one source of "now". Rules take time as an argument; the clock decides what it is, so
//! tests can jump an auction past its end without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, SubsecRound, Utc};

pub trait Clock: Send + Sync + 'static {
    /// The current UTC time, to the microsecond: what the stores keep, so a timestamp reads
    /// back exactly as it was first reported.
    fn now(&self) -> DateTime<Utc>;

    /// How a time authority with a clock of its own (the Redis server, which decides every
    /// time question of the distributed backend) reads this clock: its own time, moved by
    /// the offset a test set, or a frozen instant. In service: its own time, unmoved.
    fn authority_time(&self) -> AuthorityTime {
        AuthorityTime::Offset(Duration::zero())
    }
}

/// What a time authority takes for "now" on behalf of a [`Clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityTime {
    /// The authority's own clock plus this offset (zero but in tests that jump ahead).
    Offset(Duration),
    /// Exactly this instant, whatever the authority's clock says: deterministic tests.
    Fixed(DateTime<Utc>),
}

/// Wall-clock UTC time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// Real time plus an adjustable offset: time keeps flowing (timestamps stay distinct and ordered)
/// and a test can jump ahead with [`ManualClock::advance`].
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_micros: AtomicI64,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl ManualClock {
    fn offset(&self) -> Duration {
        Duration::microseconds(self.offset_micros.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        (Utc::now() + self.offset()).trunc_subsecs(6)
    }

    fn authority_time(&self) -> AuthorityTime {
        AuthorityTime::Offset(self.offset())
    }
}

/// A clock that stands still until told otherwise: for deterministic tests and simulations that
/// must know the exact instant every command is decided at.
#[derive(Debug)]
pub struct FrozenClock {
    micros: AtomicI64,
}

impl FrozenClock {
    pub fn at(instant: DateTime<Utc>) -> Self {
        Self { micros: AtomicI64::new(instant.timestamp_micros()) }
    }

    pub fn set(&self, instant: DateTime<Utc>) {
        self.micros.store(instant.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for FrozenClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst)).unwrap_or_default()
    }

    fn authority_time(&self) -> AuthorityTime {
        AuthorityTime::Fixed(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_jumps_forward_and_keeps_running() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(Duration::hours(2));
        let after = clock.now();
        assert!(after - before >= Duration::hours(2));
        assert!(after - before < Duration::hours(2) + Duration::seconds(5));
    }
}
