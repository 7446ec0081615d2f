//! GCRA limits kept in process memory: exact within one process, reset on restart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use surge_core::ratelimit::{self, Blocking, BlockingDecision, Decision, Quota};

use crate::EngineError;
use crate::clock::Clock;
use crate::ratelimit::RateLimiter;

/// Above this many keys, a write sweeps out keys whose limit has fully recovered.
const SWEEP_THRESHOLD: usize = 50_000;

pub struct InProcessRateLimiter {
    clock: Arc<dyn Clock>,
    /// Key → theoretical arrival time in ms. A std mutex: held for a map lookup, never across
    /// an await.
    tats: Mutex<HashMap<String, i64>>,
    /// Blocking limits: key → its latest accepted events (newest first) and the end of its
    /// block, if any.
    windows: Mutex<HashMap<String, Window>>,
}

impl InProcessRateLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, tats: Mutex::new(HashMap::new()), windows: Mutex::new(HashMap::new()) }
    }

    fn decide(&self, quota: Quota, key: &str, take: bool) -> Decision {
        let now = self.clock.now().timestamp_millis();
        let mut tats = self.tats.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let decision = ratelimit::decide(quota, tats.get(key).copied(), now);
        if let (true, Decision::Allowed { new_tat_ms }) = (take, decision) {
            // A known key is updated in place: no key allocation per request.
            if let Some(tat) = tats.get_mut(key) {
                *tat = new_tat_ms;
            } else {
                if tats.len() >= SWEEP_THRESHOLD {
                    tats.retain(|_, tat| *tat > now);
                }
                tats.insert(key.to_owned(), new_tat_ms);
            }
        }
        decision
    }

    fn decide_blocking(&self, limit: Blocking, key: &str) -> Option<i64> {
        let now = self.clock.now().timestamp_millis();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !windows.contains_key(key) {
            if windows.len() >= SWEEP_THRESHOLD {
                windows.retain(|_, window| window.matters(limit, now));
            }
            windows.insert(key.to_owned(), Window::default());
        }
        let window = windows.get_mut(key)?; // inserted just above
        let latest = window.latest.make_contiguous();
        match ratelimit::decide_blocking(limit, latest, window.blocked_until, now) {
            BlockingDecision::Allowed => {
                window.latest.push_front(now);
                window.latest.truncate(limit.limit.max(1) as usize);
                None
            }
            BlockingDecision::Blocked { until_ms, started } => {
                if started {
                    window.blocked_until = Some(until_ms);
                }
                Some(until_ms - now)
            }
        }
    }
}

/// A key's state under a blocking limit.
#[derive(Default)]
struct Window {
    latest: VecDeque<i64>,
    blocked_until: Option<i64>,
}

impl Window {
    /// Whether forgetting the key could change a decision: it is blocked, or has events within
    /// the period.
    fn matters(&self, limit: Blocking, now: i64) -> bool {
        self.blocked_until.is_some_and(|until| until > now)
            || self.latest.front().is_some_and(|&newest| now - newest < limit.period_ms)
    }
}

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn check(&self, quota: Quota, key: &str) -> Result<Decision, EngineError> {
        Ok(self.decide(quota, key, false))
    }

    async fn acquire(&self, quota: Quota, key: &str) -> Result<Decision, EngineError> {
        Ok(self.decide(quota, key, true))
    }

    async fn release(&self, quota: Quota, key: &str) -> Result<(), EngineError> {
        let now = self.clock.now().timestamp_millis();
        let mut tats = self.tats.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match ratelimit::refund(quota, tats.get(key).copied(), now) {
            Some(tat) => {
                if let Some(stored) = tats.get_mut(key) {
                    *stored = tat;
                }
            }
            None => {
                tats.remove(key);
            }
        }
        Ok(())
    }

    async fn acquire_or_block(
        &self,
        limit: Blocking,
        key: &str,
    ) -> Result<Option<i64>, EngineError> {
        Ok(self.decide_blocking(limit, key))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn keys_are_limited_independently_and_recover_with_time() {
        let clock = Arc::new(ManualClock::new());
        let limiter = InProcessRateLimiter::new(clock.clone());
        let quota = Quota::new(2, 3_600_000);
        assert!(limiter.acquire(quota, "a").await.unwrap().is_allowed());
        assert!(limiter.acquire(quota, "a").await.unwrap().is_allowed());
        assert!(!limiter.check(quota, "a").await.unwrap().is_allowed());
        assert!(limiter.acquire(quota, "b").await.unwrap().is_allowed());
        clock.advance(Duration::hours(1));
        assert!(limiter.acquire(quota, "a").await.unwrap().is_allowed());
    }

    #[tokio::test]
    async fn a_released_event_can_be_taken_again() {
        let limiter = InProcessRateLimiter::new(Arc::new(ManualClock::new()));
        let quota = Quota::new(1, 3_600_000);
        assert!(limiter.acquire(quota, "a").await.unwrap().is_allowed());
        assert!(!limiter.acquire(quota, "a").await.unwrap().is_allowed());
        limiter.release(quota, "a").await.unwrap();
        assert!(limiter.acquire(quota, "a").await.unwrap().is_allowed());
        assert!(!limiter.check(quota, "a").await.unwrap().is_allowed());
    }
}
