//! GCRA (generic cell rate algorithm) arithmetic.
//!
//! A limit of `n` per `period` is a theoretical arrival time (TAT) per key that advances by
//! `period / n` per accepted event, with a tolerance of `period − period / n` — the same
//! algorithm as the `governor` crate, so `n` events may come in a burst and are then refilled one
//! every `period / n`. Keeping the arithmetic here lets the in-process limiter and the Redis Lua
//! limiter produce identical answers; only where the TAT is stored differs.

/// A named limit: at most `limit` events per `period_ms`, refilled smoothly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period_ms: i64,
}

impl Quota {
    pub fn new(limit: u32, period_ms: i64) -> Self {
        assert!(limit > 0 && period_ms > 0, "a quota needs a positive limit and period");
        Self { limit, period_ms }
    }

    /// Time between two events at the sustained rate.
    pub fn emission_interval_ms(&self) -> i64 {
        (self.period_ms / i64::from(self.limit)).max(1)
    }

    /// How far ahead of `now` the TAT may run: the burst allowance.
    pub fn tolerance_ms(&self) -> i64 {
        self.period_ms - self.emission_interval_ms()
    }
}

/// The answer to "may one more event happen now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; store `new_tat` for the key if the event is taken.
    Allowed { new_tat_ms: i64 },
    /// Refused; the caller may retry after this many milliseconds.
    Denied { retry_after_ms: i64 },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// Decides one event for a key whose stored TAT is `tat_ms` (`None` = never seen).
pub fn decide(quota: Quota, tat_ms: Option<i64>, now_ms: i64) -> Decision {
    let tat = tat_ms.unwrap_or(now_ms).max(now_ms);
    let allow_at = tat - quota.tolerance_ms();
    if now_ms < allow_at {
        Decision::Denied { retry_after_ms: allow_at - now_ms }
    } else {
        Decision::Allowed { new_tat_ms: tat + quota.emission_interval_ms() }
    }
}

/// The TAT after giving back one event taken from a key whose TAT is `tat_ms`: one emission
/// interval earlier. `None` when nothing is left to remember (the key is as if never seen).
///
/// This is what makes "count only failures" atomic: take an event *before* the work whose
/// outcome decides whether it counts, and give it back when it did not, so parallel attempts
/// can never all pass a check that none of them has charged yet.
pub fn refund(quota: Quota, tat_ms: Option<i64>, now_ms: i64) -> Option<i64> {
    let tat = tat_ms? - quota.emission_interval_ms();
    (tat > now_ms).then_some(tat)
}

/// A limit that shuts offenders out: more than `limit` events within any `period_ms` starts a
/// block of `block_ms`, during which every event is refused. Unlike GCRA (which lets a key that
/// used its burst go on at the sustained rate), this is exact: it remembers the times of the
/// last `limit` accepted events, so `limit` + 1 events in one period are never all accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    pub limit: u32,
    pub period_ms: i64,
    pub block_ms: i64,
}

/// What to do for one event under a [`Blocking`] limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingDecision {
    /// Allowed: remember `now` among the key's latest events (keep at most `limit`).
    Allowed,
    /// Refused; `started` when this event began the block (store `until_ms` as its end).
    Blocked { until_ms: i64, started: bool },
}

/// Decides one event for a key whose latest accepted events happened at `latest` (newest
/// first, at most `limit` of them) and whose block, if any, ends at `blocked_until_ms`.
pub fn decide_blocking(
    limit: Blocking,
    latest: &[i64],
    blocked_until_ms: Option<i64>,
    now_ms: i64,
) -> BlockingDecision {
    if let Some(until_ms) = blocked_until_ms.filter(|until| now_ms < *until) {
        return BlockingDecision::Blocked { until_ms, started: false };
    }
    let limit_index = limit.limit.max(1) as usize - 1;
    match latest.get(limit_index) {
        // This event would be the (limit + 1)th within one period.
        Some(&oldest) if now_ms - oldest < limit.period_ms => {
            BlockingDecision::Blocked { until_ms: now_ms + limit.block_ms.max(1), started: true }
        }
        _ => BlockingDecision::Allowed,
    }
}

/// Whole seconds for a `Retry-After` header: rounded up and at least 1, so a client that waits
/// exactly that long is allowed.
pub fn retry_after_secs(retry_after_ms: i64) -> u64 {
    u64::try_from((retry_after_ms + 999) / 1000).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;

    fn take(quota: Quota, tat: &mut Option<i64>, now: i64) -> bool {
        match decide(quota, *tat, now) {
            Decision::Allowed { new_tat_ms } => {
                *tat = Some(new_tat_ms);
                true
            }
            Decision::Denied { .. } => false,
        }
    }

    #[test]
    fn a_full_burst_is_allowed_then_the_next_event_is_denied() {
        let quota = Quota::new(10, MINUTE);
        let mut tat = None;
        for _ in 0..10 {
            assert!(take(quota, &mut tat, 0));
        }
        assert!(!take(quota, &mut tat, 0));
    }

    #[test]
    fn denial_reports_when_the_next_event_fits() {
        let quota = Quota::new(2, HOUR);
        let mut tat = None;
        assert!(take(quota, &mut tat, 0));
        assert!(take(quota, &mut tat, 0));
        let Decision::Denied { retry_after_ms } = decide(quota, tat, 10 * MINUTE) else {
            panic!("third upload in the burst must be denied");
        };
        assert_eq!(retry_after_ms, 20 * MINUTE);
        assert!(take(quota, &mut tat, 30 * MINUTE));
    }

    #[test]
    fn an_idle_key_gets_its_whole_burst_back_after_one_period() {
        let quota = Quota::new(2, HOUR);
        let mut tat = None;
        assert!(take(quota, &mut tat, 0));
        assert!(take(quota, &mut tat, 0));
        assert!(take(quota, &mut tat, HOUR));
        assert!(take(quota, &mut tat, HOUR));
        assert!(!take(quota, &mut tat, HOUR));
    }

    #[test]
    fn a_check_without_taking_changes_nothing() {
        let quota = Quota::new(1, MINUTE);
        assert!(decide(quota, None, 0).is_allowed());
        assert!(decide(quota, None, 0).is_allowed());
    }

    /// Runs one event through a blocking limit, keeping its state like a store would.
    fn hit(limit: Blocking, state: &mut (Vec<i64>, Option<i64>), now: i64) -> BlockingDecision {
        let decision = decide_blocking(limit, &state.0, state.1, now);
        match decision {
            BlockingDecision::Allowed => {
                state.0.insert(0, now);
                state.0.truncate(limit.limit as usize);
            }
            BlockingDecision::Blocked { until_ms, started: true } => state.1 = Some(until_ms),
            BlockingDecision::Blocked { .. } => {}
        }
        decision
    }

    const READS: Blocking = Blocking { limit: 50, period_ms: MINUTE, block_ms: HOUR };

    #[test]
    fn the_event_over_the_limit_starts_a_block_that_outlasts_the_period() {
        let mut state = (Vec::new(), None);
        for n in 1..=50 {
            assert_eq!(hit(READS, &mut state, 0), BlockingDecision::Allowed, "event {n}");
        }
        assert_eq!(
            hit(READS, &mut state, 0),
            BlockingDecision::Blocked { until_ms: HOUR, started: true }
        );
        assert_eq!(
            hit(READS, &mut state, 2 * MINUTE),
            BlockingDecision::Blocked { until_ms: HOUR, started: false }
        );
        assert_eq!(
            hit(READS, &mut state, HOUR - 1),
            BlockingDecision::Blocked { until_ms: HOUR, started: false }
        );
        for _ in 0..50 {
            assert_eq!(hit(READS, &mut state, HOUR), BlockingDecision::Allowed);
        }
        assert!(matches!(
            hit(READS, &mut state, HOUR),
            BlockingDecision::Blocked { started: true, .. }
        ));
    }

    /// GCRA would let a key that spent its burst go on at one event per 1.2 s; "more than 50 in
    /// one minute" must block however the 51 are spread.
    #[test]
    fn fifty_one_events_spread_over_a_minute_are_blocked() {
        let mut state = (Vec::new(), None);
        for n in 0..50 {
            assert_eq!(hit(READS, &mut state, n * 1_180), BlockingDecision::Allowed);
        }
        assert!(matches!(
            hit(READS, &mut state, 59_999),
            BlockingDecision::Blocked { started: true, .. }
        ));
        // Spread one event per 1.2 s, the oldest always leaves the minute in time.
        let mut state = (Vec::new(), None);
        for n in 0..200 {
            assert_eq!(hit(READS, &mut state, n * 1_200), BlockingDecision::Allowed, "event {n}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1000), 1);
        assert_eq!(retry_after_secs(1001), 2);
        assert_eq!(retry_after_secs(0), 1);
    }

    #[test]
    fn a_refund_gives_back_exactly_the_event_taken() {
        let quota = Quota::new(2, 60_000);
        let Decision::Allowed { new_tat_ms: first } = decide(quota, None, 0) else { panic!() };
        let Decision::Allowed { new_tat_ms: second } = decide(quota, Some(first), 0) else {
            panic!()
        };
        assert!(!decide(quota, Some(second), 0).is_allowed(), "the quota is used up");
        assert_eq!(refund(quota, Some(second), 0), Some(first));
        assert!(decide(quota, refund(quota, Some(second), 0), 0).is_allowed());
        assert_eq!(refund(quota, Some(first), 0), None, "nothing left to remember");
        assert_eq!(refund(quota, None, 0), None);
    }
}
