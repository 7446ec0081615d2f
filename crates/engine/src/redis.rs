//! The distributed engine's Redis side: hot state and per-shard event streams.
//!
//! Every key of an entity carries its shard as a hash tag (`surge:{s<shard>}:…`), so a command
//! touches one Cluster slot and each shard has exactly one stream. The rules run inside Redis as
//! Lua scripts that mirror `surge-core` exactly; a script mutates the hot state *and* appends the
//! events to the shard's stream in one atomic step.
//!
//! # Layout
//! - [`connection`]: one connection type over a single node or a Cluster, with bounded timeouts.
//! - [`keys`]: every key name, under the deployment's prefix and shard hash tags.
//! - [`shards`]: the shard handle every app's Redis code goes through.
//! - `scripts`: the Lua prelude every script is loaded with, and its reply convention.
//! - [`hot_state`]: rebuilding a missing hot state from PostgreSQL, never from stale data.
//! - [`idempotency`]: `Idempotency-Key`s owned by the user across every shard.
//! - [`auctions`]: auction hot state and the scripts that change it.
//! - [`cinema`]: the [`crate::cinema::ReservationCommands`] port on screenings' hot state.
//! - [`deals`]: the [`crate::deals::DealCommands`] port, for now in PostgreSQL transactions.
//! - [`stream`]: the shard streams' entries.
//! - [`commands`]: the [`crate::auctions::AuctionCommands`] port on Redis.
//! - [`batcher`]: group commit of one auction's concurrent bids into one script call.
//! - [`reads`]: PostgreSQL reads completed by the hot state and unapplied stream entries.
//! - [`lease`]: leases with fencing epochs for singleton jobs.
//! - [`persister`]: applying a shard's stream to PostgreSQL under its lease.
//! - [`tailer`]: fan-out of every shard's stream to this replica's subscribers.
//! - [`replica`]: the background work of one replica, and how replicas share shards.
//! - [`ratelimit`]: GCRA limits shared by every replica.
//! - [`time`]: the Redis server's clock, the one authority on time, and each replica's estimate
//!   of it.

pub mod auctions;
pub mod batcher;
pub mod cinema;
pub mod commands;
pub mod connection;
pub mod deals;
pub mod hot_state;
mod idempotency;
pub mod keys;
pub mod lease;
pub mod persister;
pub mod ratelimit;
pub mod reads;
pub mod replica;
pub(crate) mod scripts;
pub mod shards;
pub mod stream;
pub mod tailer;
pub mod time;

use std::future::Future;
use std::time::Duration;

pub use auctions::{RedisAuctions, RedisBidResult};
pub use cinema::DistributedReservations;
pub use commands::DistributedAuctions;
pub use connection::RedisConnection;
pub use deals::DistributedDeals;
pub use keys::KeySpace;
pub use ratelimit::RedisRateLimiter;
pub use reads::LiveAuctionStore;
pub use replica::{Replica, ReplicaSettings, ReplicaTasks};
pub use shards::Shards;
pub use tailer::LiveFeeds;
pub use time::ServerTime;

use crate::EngineError;

/// The longest any one Redis operation may take, connection set-up and retries included. A
/// command that times out may or may not have been applied; callers treat it as unavailable.
const OPERATION_DEADLINE: Duration = Duration::from_millis(2_500);

/// Bounds an operation by [`OPERATION_DEADLINE`]: a stalled Redis gives an error, never a hang.
pub(crate) async fn deadline<T>(
    operation: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    tokio::time::timeout(OPERATION_DEADLINE, operation).await.map_err(|_| {
        EngineError::Unavailable(format!("redis: no answer within {OPERATION_DEADLINE:?}"))
    })?
}

/// Runs a script on `conn`, bounded by [`OPERATION_DEADLINE`].
pub(crate) async fn invoke<T: ::redis::FromRedisValue>(
    conn: &RedisConnection,
    invocation: &::redis::ScriptInvocation<'_>,
) -> Result<T, EngineError> {
    let mut conn = conn.clone();
    deadline(async { invocation.invoke_async(&mut conn).await.map_err(unavailable) }).await
}

/// Redis failed or could not be reached: retrying later may work.
pub(crate) fn unavailable(error: ::redis::RedisError) -> EngineError {
    EngineError::Unavailable(format!("redis: {error}"))
}

/// Whether Redis answers a PING within the operation deadline.
pub async fn ping(conn: &RedisConnection) -> Result<(), EngineError> {
    let mut conn = conn.clone();
    deadline(async {
        ::redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(unavailable)?;
        Ok(())
    })
    .await
}
