//! GCRA limits in Redis give the same answers as the pure arithmetic in `surge-core`, on a single
//! node and on a Cluster, and one limit is shared by every replica.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use surge_core::ratelimit::{self, Blocking, BlockingDecision, Decision, Quota};
use surge_engine::clock::FrozenClock;
use surge_engine::ratelimit::RateLimiter;
use surge_engine::redis::{KeySpace, RedisRateLimiter};
use tokio::runtime::Runtime;
use uuid::Uuid;

#[path = "support/redis.rs"]
#[macro_use]
mod support;

use support::runtime;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_000).unwrap()
}

/// A limiter on its own connection, like one replica.
fn replica(runtime: &Runtime, variable: &str, clock: Arc<FrozenClock>) -> RedisRateLimiter {
    RedisRateLimiter::new(support::connect(runtime, variable), clock, KeySpace::default())
}

/// Random quotas and random check/take sequences: Redis must answer exactly like the pure
/// GCRA with the TAT kept locally.
fn matches_the_pure_arithmetic(variable: &str) {
    let runtime = runtime();
    let clock = Arc::new(FrozenClock::at(start()));
    let limiter = replica(&runtime, variable, clock.clone());
    let steps = prop::collection::vec((any::<bool>(), 0i64..40_000), 1..80);
    let config = ProptestConfig { cases: 48, ..ProptestConfig::default() };
    proptest!(config, |(limit in 1u32..12, period_s in 1i64..120, steps in steps)| {
        let quota = Quota::new(limit, period_s * 1000);
        let key = format!("test:{}", Uuid::new_v4());
        let mut now = start();
        let mut tat = None;
        for (take, later_ms) in steps {
            now += Duration::milliseconds(later_ms);
            clock.set(now);
            let expected = ratelimit::decide(quota, tat, now.timestamp_millis());
            let actual = runtime.block_on(async {
                if take { limiter.acquire(quota, &key).await } else { limiter.check(quota, &key).await }
            });
            let actual = actual.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(actual, expected);
            if let (true, Decision::Allowed { new_tat_ms }) = (take, expected) {
                tat = Some(new_tat_ms);
            }
        }
    });
}

/// Two replicas draw on one budget: what one takes, the other cannot.
fn is_global(variable: &str) {
    let runtime = runtime();
    let clock = Arc::new(FrozenClock::at(start()));
    let first = replica(&runtime, variable, clock.clone());
    let second = replica(&runtime, variable, clock.clone());
    let quota = Quota::new(2, 3_600_000);
    let key = format!("upload:{}", Uuid::new_v4());
    runtime.block_on(async {
        assert!(first.acquire(quota, &key).await.unwrap().is_allowed());
        assert!(second.acquire(quota, &key).await.unwrap().is_allowed());
        let Decision::Denied { retry_after_ms } = first.acquire(quota, &key).await.unwrap() else {
            panic!("a third upload within the hour must be refused on any replica");
        };
        assert_eq!(retry_after_ms, 1_800_000);
        assert!(!second.check(quota, &key).await.unwrap().is_allowed());
        clock.set(start() + Duration::minutes(30));
        assert!(second.acquire(quota, &key).await.unwrap().is_allowed());
    });
}

/// Checking never uses up the limit.
fn checking_is_free(variable: &str) {
    let runtime = runtime();
    let clock = Arc::new(FrozenClock::at(start()));
    let limiter = replica(&runtime, variable, clock);
    let quota = Quota::new(1, 60_000);
    let key = format!("login:{}", Uuid::new_v4());
    runtime.block_on(async {
        for _ in 0..5 {
            assert!(limiter.check(quota, &key).await.unwrap().is_allowed());
        }
        assert!(limiter.acquire(quota, &key).await.unwrap().is_allowed());
        assert!(!limiter.check(quota, &key).await.unwrap().is_allowed());
    });
}

/// Random event sequences under a blocking limit: Redis answers like the pure rule, and two
/// replicas share one window and one block.
fn blocks_like_the_pure_rule_on_every_replica(variable: &str) {
    let runtime = runtime();
    let clock = Arc::new(FrozenClock::at(start()));
    let replicas =
        [replica(&runtime, variable, clock.clone()), replica(&runtime, variable, clock.clone())];
    let steps = prop::collection::vec((0usize..2, 0i64..5_000), 1..120);
    let config = ProptestConfig { cases: 32, ..ProptestConfig::default() };
    proptest!(config, |(limit in 1u32..8, period_s in 1i64..30, block_s in 1i64..60, steps in steps)| {
        let limit = Blocking { limit, period_ms: period_s * 1000, block_ms: block_s * 1000 };
        let key = format!("read:{}", Uuid::new_v4());
        let mut now = start();
        let (mut latest, mut blocked_until) = (Vec::new(), None);
        for (which, later_ms) in steps {
            now += Duration::milliseconds(later_ms);
            clock.set(now);
            let now_ms = now.timestamp_millis();
            let expected = match ratelimit::decide_blocking(limit, &latest, blocked_until, now_ms) {
                BlockingDecision::Allowed => {
                    latest.insert(0, now_ms);
                    latest.truncate(limit.limit as usize);
                    None
                }
                BlockingDecision::Blocked { until_ms, started } => {
                    if started {
                        blocked_until = Some(until_ms);
                    }
                    Some(until_ms - now_ms)
                }
            };
            let actual = runtime.block_on(replicas[which].acquire_or_block(limit, &key));
            let actual = actual.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(actual, expected);
        }
    });
}

on_node_and_cluster!(
    matches_the_pure_arithmetic,
    is_global,
    checking_is_free,
    blocks_like_the_pure_rule_on_every_replica,
);
