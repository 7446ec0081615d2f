//! GCRA rate limits in Redis: one theoretical arrival time per key, shared by every replica, so a
//! limit holds for the whole deployment rather than per process.

use std::sync::{Arc, LazyLock};

use ::redis::Script;
use async_trait::async_trait;
use surge_core::ratelimit::{Blocking, Decision, Quota};

use super::connection::RedisConnection;
use super::keys::KeySpace;
use super::scripts::{self, Reply};
use super::time::reading;
use crate::EngineError;
use crate::clock::Clock;
use crate::ratelimit::RateLimiter;

static GCRA: LazyLock<Script> = LazyLock::new(|| scripts::load(include_str!("lua/gcra.lua")));
static WINDOW_BLOCK: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/window_block.lua")));

pub struct RedisRateLimiter {
    conn: RedisConnection,
    /// The Redis server's clock decides (see [`super::time`]); this one only passes on a
    /// test's offset or frozen instant.
    clock: Arc<dyn Clock>,
    keys: KeySpace,
}

impl RedisRateLimiter {
    pub fn new(conn: RedisConnection, clock: Arc<dyn Clock>, keys: KeySpace) -> Self {
        Self { conn, clock, keys }
    }

    /// Runs `gcra.lua` for `key`: `mode` is `1` to take, `0` to check, `-1` to give back.
    async fn gcra<T>(
        &self,
        quota: Quota,
        key: &str,
        mode: &str,
        read: impl FnOnce(Reply<'_>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut invocation = GCRA.key(self.keys.rate_limit(key));
        invocation
            .arg(quota.emission_interval_ms())
            .arg(quota.tolerance_ms())
            .arg(reading(self.clock.authority_time()))
            .arg(mode);
        scripts::call(&self.conn, &invocation, read).await
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, quota: Quota, key: &str) -> Result<Decision, EngineError> {
        self.gcra(quota, key, "0", decision).await
    }

    async fn acquire(&self, quota: Quota, key: &str) -> Result<Decision, EngineError> {
        self.gcra(quota, key, "1", decision).await
    }

    async fn release(&self, quota: Quota, key: &str) -> Result<(), EngineError> {
        self.gcra(quota, key, "-1", |reply| match reply.word() {
            Some("released") => Ok(()),
            _ => Err(reply.malformed("gcra")),
        })
        .await
    }

    async fn acquire_or_block(
        &self,
        limit: Blocking,
        key: &str,
    ) -> Result<Option<i64>, EngineError> {
        let mut invocation = WINDOW_BLOCK.key(self.keys.rate_limit(key));
        invocation
            .key(self.keys.rate_limit_block(key))
            .arg(limit.limit.max(1))
            .arg(limit.period_ms.max(1))
            .arg(limit.block_ms.max(1))
            .arg(reading(self.clock.authority_time()));
        scripts::call(&self.conn, &invocation, |reply| match (reply.word(), reply.int(1)) {
            (Some("allowed"), _) => Ok(None),
            (Some("blocked"), Some(left)) => Ok(Some(left.max(1))),
            _ => Err(reply.malformed("window_block")),
        })
        .await
    }
}

fn decision(reply: Reply<'_>) -> Result<Decision, EngineError> {
    match (reply.word(), reply.int(1)) {
        (Some("allowed"), Some(new_tat_ms)) => Ok(Decision::Allowed { new_tat_ms }),
        (Some("denied"), Some(retry_after_ms)) => Ok(Decision::Denied { retry_after_ms }),
        _ => Err(reply.malformed("gcra")),
    }
}
