//! The distributed engine's events as PostgreSQL persists them.
//!
//! Redis is the write path: a Lua script applies a command to an entity's hot state and appends
//! its events to the shard's stream in one step. For each shard, one replica (the holder of the
//! shard's lease) applies those events to PostgreSQL through [`postgres::PgEventLedger`]: a batch
//! per transaction, fenced by the lease's epoch, idempotent by event id.

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub mod postgres;

/// An event read from a shard stream, in the form PostgreSQL applies it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PersistedEvent {
    /// An accepted bid and the auction's state right after it.
    Bid {
        event_id: Uuid,
        auction_id: Uuid,
        seq: i64,
        bidder_id: Uuid,
        amount: i64,
        placed_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    /// The result was announced; the auction takes no more bids.
    Closed { auction_id: Uuid, closed_at: DateTime<Utc> },
    /// Seats were reserved (`seats` as stored: `B3,B4`).
    Reserved {
        reservation_id: Uuid,
        screening_id: Uuid,
        user_id: Uuid,
        seats: String,
        at: DateTime<Utc>,
    },
    /// A reservation was cancelled; its seats are free.
    Cancelled { reservation_id: Uuid, at: DateTime<Utc> },
}

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
