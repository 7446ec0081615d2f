//! Reservations in the writer. Each command is decided against its screening's state as the
//! batch has built it so far (changed in place in the batch, and made the cached state after
//! the COMMIT), and an accepted one is written at once, in command order, inside
//! the batch's transaction (a seat freed and taken again in one batch must be written in that
//! order); replies still wait for the COMMIT.

use std::collections::hash_map::Entry;
use surge_core::cinema::{self, ReservationCommand, ReservationRejection, ScreeningState};

use surge_store::cinema::ReservationRecord;
use uuid::Uuid;

use super::{Batch, Writer};
use crate::EngineError;
use crate::cinema::{CancelReservation, ReservationReceipt, Reserve, ReserveOutcome};

/// Screenings kept in memory; past this the cache starts over (states reload from disk).
const MAX_CACHED_SCREENINGS: usize = 20_000;

impl Writer {
    /// The screening as this batch changes it, in place: on first use in the batch, a copy of
    /// the cached state, else loaded from disk (on the writer's connection, so it includes this
    /// batch's writes). One copy per screening per batch, however many commands it gets.
    async fn screening<'b>(
        &mut self,
        id: Uuid,
        batch: &'b mut Batch,
    ) -> Result<&'b mut ScreeningState, EngineError> {
        match batch.screenings.entry(id) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let state = match self.screenings.get(&id) {
                    Some(state) => state.clone(),
                    None => {
                        let loaded = self.ledger.reservations().screening_state(id).await?;
                        loaded.ok_or(EngineError::NotFound)?
                    }
                };
                if self.screenings.len() >= MAX_CACHED_SCREENINGS {
                    self.screenings.clear();
                }
                Ok(entry.insert(state))
            }
        }
    }

    pub(super) async fn reserve(
        &mut self,
        request: Reserve,
        batch: &mut Batch,
    ) -> Result<ReserveOutcome, EngineError> {
        let now = self.clock.now();
        let key = request.idempotency.as_ref();
        if let Some(replayed) = self.replay(request.user_id, key, batch, now).await? {
            return Ok(replayed);
        }
        let reservation_id = Uuid::now_v7();
        let command = ReservationCommand::Reserve {
            reservation_id,
            user_id: request.user_id,
            seats: request.seats.clone(),
            cooldown: request.cooldown,
        };
        let state = self.screening(request.screening_id, batch).await?;
        let outcome = match cinema::decide(state, &command, now) {
            Err(rejection) => ReserveOutcome::Rejected(rejection),
            Ok(events) => {
                let record = ReservationRecord {
                    id: reservation_id,
                    screening_id: request.screening_id,
                    user_id: request.user_id,
                    seats: request.seats,
                    created_at: now,
                };
                // Written first: a failed write leaves the state as it was.
                self.ledger.reservations().insert(&record).await?;
                for event in &events {
                    cinema::apply(state, event);
                }
                ReserveOutcome::Reserved(ReservationReceipt {
                    id: record.id,
                    screening_id: record.screening_id,
                    user_id: record.user_id,
                    seats: record.seats,
                    created_at: record.created_at,
                })
            }
        };
        Self::remember(request.user_id, key, &outcome, batch, now)?;
        Ok(outcome)
    }

    pub(super) async fn cancel(
        &mut self,
        request: CancelReservation,
        batch: &mut Batch,
    ) -> Result<Result<(), ReservationRejection>, EngineError> {
        let now = self.clock.now();
        let Some(screening_id) =
            self.ledger.reservations().screening_of(request.reservation_id).await?
        else {
            return Ok(Err(ReservationRejection::NotFound));
        };
        let command = ReservationCommand::Cancel {
            reservation_id: request.reservation_id,
            user_id: request.user_id,
        };
        let state = self.screening(screening_id, batch).await?;
        let events = match cinema::decide(state, &command, now) {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        self.ledger.reservations().cancel(request.reservation_id, now).await?;
        for event in &events {
            cinema::apply(state, event);
        }
        Ok(Ok(()))
    }
}
