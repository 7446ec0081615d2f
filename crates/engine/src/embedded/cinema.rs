//! Cinema on the embedded engine: the [`ReservationCommands`] handle, and the screenings' state
//! in the writer.
//!
//! Each command is decided against its screening's state as the batch has built it so far
//! (changed in place in the batch, and made the cached state after the COMMIT), and an accepted
//! one is written at once, in command order, inside the batch's transaction (a seat freed and
//! taken again in one batch must be written in that order), all or nothing; replies still wait
//! for the COMMIT.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use async_trait::async_trait;
use surge_core::cinema::{self, ReservationCommand, ReservationRejection, ScreeningState, Seat};
use surge_store::cinema::{CinemaStore, ReservationRecord};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::apps::Apps;
use super::writer::{AppWriter, Job, Tx, WriterCommand, submit};
use crate::EngineError;
use crate::cinema::{
    CancelReservation, ReservationCommands, ReservationReceipt, Reserve, ReserveOutcome,
};

/// Screenings kept in memory; past this the cache starts over (states reload from disk).
const MAX_CACHED_SCREENINGS: usize = 20_000;

/// The embedded reservation engine: a handle to the writer, plus the store for seat maps
/// (the writer commits before it replies, so the store is never behind an acknowledgement).
#[derive(Clone)]
pub struct EmbeddedReservations {
    jobs: mpsc::Sender<Job>,
    store: Arc<dyn CinemaStore>,
}

impl EmbeddedReservations {
    pub(crate) fn new(jobs: mpsc::Sender<Job>, store: Arc<dyn CinemaStore>) -> Self {
        Self { jobs, store }
    }
}

#[async_trait]
impl ReservationCommands for EmbeddedReservations {
    async fn reserve(&self, request: Reserve) -> Result<ReserveOutcome, EngineError> {
        submit(&self.jobs, request).await
    }

    async fn cancel(
        &self,
        request: CancelReservation,
    ) -> Result<Result<(), ReservationRejection>, EngineError> {
        submit(&self.jobs, request).await
    }

    async fn taken_seats(&self, screening_id: Uuid) -> Result<Vec<Seat>, EngineError> {
        Ok(self.store.taken_seats(screening_id).await?)
    }
}

/// The screenings' state in the writer, loaded on first use; never behind disk.
#[derive(Default)]
pub(crate) struct CinemaWriter {
    screenings: HashMap<Uuid, ScreeningState>,
    /// Screenings changed by this batch (their rows are written as each command is decided);
    /// they become the cached state after COMMIT, and are forgotten if it fails.
    batch: HashMap<Uuid, ScreeningState>,
}

impl CinemaWriter {
    /// The screening as this batch changes it, in place: on first use in the batch, a copy of
    /// the cached state, else loaded from disk (on the writer's connection, so it includes this
    /// batch's writes). One copy per screening per batch, however many commands it gets.
    async fn screening(
        &mut self,
        id: Uuid,
        tx: &mut Tx<'_>,
    ) -> Result<&mut ScreeningState, EngineError> {
        match self.batch.entry(id) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let state = match self.screenings.get(&id) {
                    Some(state) => state.clone(),
                    None => {
                        let loaded = tx.ledger.reservations().screening_state(id).await?;
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

    async fn reserve(
        &mut self,
        request: Reserve,
        tx: &mut Tx<'_>,
    ) -> Result<ReserveOutcome, EngineError> {
        let key = request.idempotency.as_ref();
        if let Some(replayed) = tx.replay(request.user_id, key).await? {
            return Ok(replayed);
        }
        let now = tx.now();
        let reservation_id = Uuid::now_v7();
        let command = ReservationCommand::Reserve {
            reservation_id,
            user_id: request.user_id,
            seats: request.seats.clone(),
            cooldown: request.cooldown,
        };
        let state = self.screening(request.screening_id, tx).await?;
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
                tx.ledger.reservations().insert(&record).await?;
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
        tx.remember(request.user_id, key, &outcome)?;
        Ok(outcome)
    }

    async fn cancel(
        &mut self,
        request: CancelReservation,
        tx: &mut Tx<'_>,
    ) -> Result<Result<(), ReservationRejection>, EngineError> {
        let now = tx.now();
        let Some(screening_id) =
            tx.ledger.reservations().screening_of(request.reservation_id).await?
        else {
            return Ok(Err(ReservationRejection::NotFound));
        };
        let command = ReservationCommand::Cancel {
            reservation_id: request.reservation_id,
            user_id: request.user_id,
        };
        let state = self.screening(screening_id, tx).await?;
        let events = match cinema::decide(state, &command, now) {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        tx.ledger.reservations().cancel(request.reservation_id, now).await?;
        for event in &events {
            cinema::apply(state, event);
        }
        Ok(Ok(()))
    }
}

impl AppWriter for CinemaWriter {
    fn committed(&mut self) {
        self.screenings.extend(self.batch.drain());
    }

    fn rolled_back(&mut self) {
        for id in self.batch.keys() {
            self.screenings.remove(id);
        }
        self.batch.clear();
    }
}

#[async_trait]
impl WriterCommand for Reserve {
    type Output = ReserveOutcome;

    async fn execute(
        self,
        apps: &mut Apps,
        tx: &mut Tx<'_>,
    ) -> Result<ReserveOutcome, EngineError> {
        apps.cinema.reserve(self, tx).await
    }
}

#[async_trait]
impl WriterCommand for CancelReservation {
    type Output = Result<(), ReservationRejection>;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<Self::Output, EngineError> {
        apps.cinema.cancel(self, tx).await
    }
}
