//! Named rate limits: GCRA quotas, and exact windows that block offenders. The rules are
//! [`surge_core::ratelimit`]; implementations only decide where each key's state lives (process
//! memory or Redis).

use async_trait::async_trait;
pub use surge_core::ratelimit::{Blocking, Decision, Quota};

use crate::EngineError;

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Would one more event for `key` fit in `quota` now? Takes nothing: for limits that count
    /// only some outcomes (failed logins), check first and [`acquire`](Self::acquire) after.
    async fn check(&self, quota: Quota, key: &str) -> Result<Decision, EngineError>;
    /// Takes one event for `key` if it fits.
    async fn acquire(&self, quota: Quota, key: &str) -> Result<Decision, EngineError>;
    /// Takes one event for `key` under a limit that blocks offenders: `None` when allowed, else
    /// the milliseconds left in the block.
    async fn acquire_or_block(
        &self,
        limit: Blocking,
        key: &str,
    ) -> Result<Option<i64>, EngineError>;
}
