//! Reservations in the writer. Each command is decided against its screening's state as the
//! batch has built it so far, and an accepted one is written at once, in command order, inside
//! the batch's transaction (a seat freed and taken again in one batch must be written in that
//! order); replies still wait for the COMMIT.

use surge_core::cinema::{self, ReservationCommand, ReservationRejection, ScreeningState};
use surge_store::cinema::{CancelledReservation, ReservationRecord};
use uuid::Uuid;

use super::{Batch, Writer};
use crate::EngineError;
use crate::cinema::{CancelReservation, ReservationReceipt, Reserve, ReserveOutcome};

/// Screenings kept in memory; past this the cache starts over (states reload from disk).
const MAX_CACHED_SCREENINGS: usize = 20_000;

impl Writer {
    /// The screening as this batch sees it: changed in the batch, else cached, else from disk
    /// (read on the writer's connection, so it includes this batch's writes).
    async fn screening(&mut self, id: Uuid, batch: &Batch) -> Result<ScreeningState, EngineError> {
        if let Some(state) = batch.screenings.get(&id).or_else(|| self.screenings.get(&id)) {
            return Ok(state.clone());
        }
        let state =
            self.ledger.reservations().screening_state(id).await?.ok_or(EngineError::NotFound)?;
        if self.screenings.len() >= MAX_CACHED_SCREENINGS {
            self.screenings.clear();
        }
        self.screenings.insert(id, state.clone());
        Ok(state)
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
        let mut state = self.screening(request.screening_id, batch).await?;
        let reservation_id = Uuid::now_v7();
        let command = ReservationCommand::Reserve {
            reservation_id,
            user_id: request.user_id,
            seats: request.seats.clone(),
            cooldown: request.cooldown,
        };
        let outcome = match cinema::decide(&state, &command, now) {
            Err(rejection) => ReserveOutcome::Rejected(rejection),
            Ok(events) => {
                for event in &events {
                    cinema::apply(&mut state, event);
                }
                let record = ReservationRecord {
                    id: reservation_id,
                    screening_id: request.screening_id,
                    user_id: request.user_id,
                    seats: request.seats,
                    created_at: now,
                };
                self.ledger.reservations().insert(std::slice::from_ref(&record)).await?;
                batch.screenings.insert(state.id, state);
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
        let mut state = self.screening(screening_id, batch).await?;
        let command = ReservationCommand::Cancel {
            reservation_id: request.reservation_id,
            user_id: request.user_id,
        };
        let events = match cinema::decide(&state, &command, now) {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        for event in &events {
            cinema::apply(&mut state, event);
        }
        let cancelled = CancelledReservation { id: request.reservation_id, screening_id, at: now };
        self.ledger.reservations().cancel(&[cancelled]).await?;
        batch.screenings.insert(screening_id, state);
        Ok(Ok(()))
    }
}
