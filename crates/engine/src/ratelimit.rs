//! Named rate limits: GCRA quotas, and exact windows that block offenders. The rules are
//! [`surge_core::ratelimit`]; implementations only decide where each key's state lives (process
//! memory or Redis).

use async_trait::async_trait;
pub use surge_core::ratelimit::{Blocking, Decision, Quota};

use crate::EngineError;

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Would one more event for `key` fit in `quota` now? Takes nothing.
    async fn check(&self, quota: Quota, key: &str) -> Result<Decision, EngineError>;
    /// Takes one event for `key` if it fits.
    async fn acquire(&self, quota: Quota, key: &str) -> Result<Decision, EngineError>;
    /// Gives back one event [`acquire`](Self::acquire) took, for limits that count only some
    /// outcomes (failed logins): acquire before the work, release when it did not count, so
    /// parallel attempts cannot all pass before any of them is charged.
    async fn release(&self, quota: Quota, key: &str) -> Result<(), EngineError>;
    /// Takes one event for `key` under a limit that blocks offenders: `None` when allowed, else
    /// the milliseconds left in the block.
    async fn acquire_or_block(
        &self,
        limit: Blocking,
        key: &str,
    ) -> Result<Option<i64>, EngineError>;
}
