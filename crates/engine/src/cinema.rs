//! The cinema port: reservations as contended commands on one screening.
//!
//! Whatever the backend, a reservation is decided by [`surge_core::cinema::decide`] against the
//! screening's whole state in one atomic step, so two people can never be sold the same seat,
//! and only an accepted command leaves a trace (a refused one does not use up the cooldown).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use surge_core::cinema::{ReservationRejection, Seat};
use surge_core::idempotency::IdempotencyKey;
use uuid::Uuid;

use crate::EngineError;

/// A request for seats. The engine names the reservation (a UUIDv7; the distributed engine
/// picks one in the screening's shard, so the reservation's pointer to its screening is written
/// in the same atomic step as the reservation).
#[derive(Debug, Clone)]
pub struct Reserve {
    pub screening_id: Uuid,
    pub user_id: Uuid,
    /// Already checked by [`surge_core::cinema::validate_seats`] against the theater.
    pub seats: Vec<Seat>,
    /// A user's successful reservations of one screening must be this far apart.
    pub cooldown: Duration,
    pub idempotency: Option<IdempotencyKey>,
}

/// A request to give seats back. Only the holder may.
#[derive(Debug, Clone, Copy)]
pub struct CancelReservation {
    pub reservation_id: Uuid,
    pub user_id: Uuid,
}

/// An accepted reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationReceipt {
    pub id: Uuid,
    pub screening_id: Uuid,
    pub user_id: Uuid,
    pub seats: Vec<Seat>,
    pub created_at: DateTime<Utc>,
}

/// The decided result of a reservation request. Stored as-is for idempotent replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReserveOutcome {
    Reserved(ReservationReceipt),
    Rejected(ReservationRejection),
}

/// Executes reservation commands atomically per screening. Implementations must guarantee that
/// a command is accepted only by [`surge_core::cinema::decide`] against the screening's current
/// state, that an accepted command is durable before it is answered, and that a keyed request
/// has at most one effect.
#[async_trait]
pub trait ReservationCommands: Send + Sync {
    /// `Err(NotFound)` when the screening does not exist.
    async fn reserve(&self, request: Reserve) -> Result<ReserveOutcome, EngineError>;
    /// `Ok(Err(NotFound))` when the reservation does not exist, is not the caller's, or is
    /// already cancelled.
    async fn cancel(
        &self,
        request: CancelReservation,
    ) -> Result<Result<(), ReservationRejection>, EngineError>;
    /// The seats taken right now (including reservations acknowledged a moment ago).
    async fn taken_seats(&self, screening_id: Uuid) -> Result<Vec<Seat>, EngineError>;
}
