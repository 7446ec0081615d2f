//! The distributed engine's events as PostgreSQL persists them.
//!
//! Redis is the write path: a Lua script applies a command to an entity's hot state and appends
//! its events to the shard's stream in one step. For each shard, one replica (the holder of the
//! shard's lease) applies those events to PostgreSQL through [`postgres::PgEventLedger`]: a batch
//! per transaction, fenced by the lease's epoch, then each app's events applied by that app's
//! own `apply_events` (in its `postgres` module), idempotently.
//!
//! The events are the rules' own ([`surge_core::events::AppEvent`]): the same values the engine
//! decided and the stream carried.

pub mod postgres;

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A newer lease holder (epoch `newer`) has written for this shard: stop, the caller no
    /// longer owns it.
    #[error("fenced: epoch {newer} has written for this shard")]
    Fenced { newer: i64 },
    /// PostgreSQL is unreachable, read-only, restarting or overloaded: retry the same batch.
    #[error("database unavailable: {0}")]
    Transient(String),
    /// The data itself is refused (a constraint, a malformed value): retrying will not help.
    #[error("event refused: {0}")]
    Permanent(String),
}
