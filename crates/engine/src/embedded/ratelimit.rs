//! GCRA limits kept in process memory: exact within one process, reset on restart.

use std::collections::HashMap;
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
    /// Key → end of its block in ms, for blocking limits.
    blocks: Mutex<HashMap<String, i64>>,
}

impl InProcessRateLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, tats: Mutex::new(HashMap::new()), blocks: Mutex::new(HashMap::new()) }
    }

    fn decide(&self, quota: Quota, key: &str, take: bool) -> Decision {
        let now = self.clock.now().timestamp_millis();
        let mut tats = self.tats.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let decision = ratelimit::decide(quota, tats.get(key).copied(), now);
        if let (true, Decision::Allowed { new_tat_ms }) = (take, decision) {
            if tats.len() >= SWEEP_THRESHOLD {
                tats.retain(|_, tat| *tat > now);
            }
            tats.insert(key.to_owned(), new_tat_ms);
        }
        decision
    }

    fn decide_blocking(&self, limit: Blocking, key: &str) -> Decision {
        let now = self.clock.now().timestamp_millis();
        let mut blocks = self.blocks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut tats = self.tats.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let decision = ratelimit::decide_blocking(
            limit,
            tats.get(key).copied(),
            blocks.get(key).copied(),
            now,
        );
        match decision {
            BlockingDecision::Allowed { new_tat_ms } => {
                if tats.len() >= SWEEP_THRESHOLD {
                    tats.retain(|_, tat| *tat > now);
                }
                tats.insert(key.to_owned(), new_tat_ms);
                Decision::Allowed { new_tat_ms }
            }
            BlockingDecision::Blocked { until_ms, started } => {
                if started {
                    if blocks.len() >= SWEEP_THRESHOLD {
                        blocks.retain(|_, until| *until > now);
                    }
                    blocks.insert(key.to_owned(), until_ms);
                }
                Decision::Denied { retry_after_ms: until_ms - now }
            }
        }
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

    async fn acquire_or_block(&self, limit: Blocking, key: &str) -> Result<Decision, EngineError> {
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
}
