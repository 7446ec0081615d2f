//! The distributed engine's Redis side: hot state and per-shard event streams.
//!
//! Every key of an entity carries its shard as a hash tag (`surge:{s<shard>}:…`), so a command
//! touches one Cluster slot and each shard has exactly one stream. The rules run inside Redis as
//! Lua scripts that mirror `surge-core` exactly; a script mutates the hot state *and* appends the
//! events to the shard's stream in one atomic step.
//!
//! # Layout
//! - [`connection`]: one connection type over a single node or a Cluster, with bounded timeouts.
//! - [`auctions`]: auction hot state and the bid script.

pub mod auctions;
pub mod connection;

pub use auctions::{RedisAuctions, RedisBidResult};
pub use connection::RedisConnection;

use crate::EngineError;

/// Redis failed or could not be reached: retrying later may work.
pub(crate) fn unavailable(error: ::redis::RedisError) -> EngineError {
    EngineError::Unavailable(format!("redis: {error}"))
}
