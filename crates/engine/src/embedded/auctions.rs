//! The embedded engine's handles to the writer task: auctions, and reservations.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use surge_core::auctions::{self, AuctionCommand, AuctionState, Rejection};
use surge_core::cinema::{ReservationRejection, Seat};
use surge_store::auctions::sqlite::AuctionLedger;
use surge_store::cinema::CinemaStore;
use surge_store::db::SqliteDb;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::fanout::Fanout;
use super::writer::{Job, Writer};
use crate::EngineError;
use crate::auctions::{AuctionCommands, BidOutcome, PlaceBid};
use crate::cinema::{CancelReservation, ReservationCommands, Reserve, ReserveOutcome};
use crate::clock::Clock;

/// Commands queued ahead of the writer before senders wait: a burst far larger than one batch
/// is absorbed, a sustained overload pushes back on the HTTP handlers.
const QUEUE_DEPTH: usize = 16_384;

/// Handle to the embedded engine. Cloning is cheap; all clones feed the same writer.
#[derive(Clone)]
pub struct EmbeddedAuctions {
    jobs: mpsc::Sender<Job>,
    committed: Committed,
    clock: Arc<dyn Clock>,
}

/// The hot state as of the last commit, readable without queueing behind the writer.
pub(crate) type Committed = Arc<RwLock<HashMap<Uuid, AuctionState>>>;

/// Owns the writer task; [`WriterTask::stop`] commits what is queued and waits for it.
pub struct WriterTask {
    jobs: mpsc::Sender<Job>,
    handle: JoinHandle<()>,
}

impl EmbeddedAuctions {
    /// Starts the writer on its own connection to `db`.
    pub async fn start(
        db: &SqliteDb,
        fanout: Arc<Fanout>,
        clock: Arc<dyn Clock>,
        max_batch: usize,
    ) -> Result<(Self, WriterTask), EngineError> {
        let mut ledger = AuctionLedger::new(db.dedicated_connection().await?);
        let hot: HashMap<_, _> =
            ledger.open_states().await?.into_iter().map(|state| (state.id, state)).collect();
        tracing::info!(auctions = hot.len(), "restored the hot state of open auctions");
        let committed: Committed = Arc::new(RwLock::new(hot.clone()));
        let (jobs, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            ledger,
            jobs: receiver,
            fanout,
            clock: clock.clone(),
            max_batch: max_batch.max(1),
            hot,
            committed: committed.clone(),
            screenings: HashMap::new(),
        };
        let handle = tokio::spawn(writer.run());
        Ok((Self { jobs: jobs.clone(), committed, clock }, WriterTask { jobs, handle }))
    }

    /// Reservations, committed by the same writer (SQLite has one writer).
    pub fn reservations(&self, store: Arc<dyn CinemaStore>) -> EmbeddedReservations {
        EmbeddedReservations { jobs: self.jobs.clone(), store }
    }

    /// A rejection that is certain without the writer: a bid too low for the last committed
    /// state of a live auction stays too low, because prices only rise. Under a storm most
    /// losing bids end here instead of queueing. Keyed requests always go to the writer, which
    /// records their outcome.
    fn certain_rejection(&self, bid: &PlaceBid) -> Option<Rejection> {
        if bid.idempotency.is_some() {
            return None;
        }
        let committed = self.committed.read().ok()?;
        let state = committed.get(&bid.auction_id)?;
        let command = AuctionCommand::PlaceBid {
            bid_id: bid.bid_id,
            bidder_id: bid.bidder.id,
            amount: bid.amount,
        };
        match auctions::decide(state, &command, self.clock.now()) {
            Err(rejection @ Rejection::TooLow { .. }) => Some(rejection),
            _ => None,
        }
    }

    /// Asks the writer to forget expired idempotency records.
    pub async fn purge_idempotency_keys(&self) {
        let _ = self.jobs.send(Job::Purge).await;
    }
}

/// Queues a job for the writer and waits for its reply.
async fn submit<T>(
    jobs: &mpsc::Sender<Job>,
    job: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Job,
) -> Result<T, EngineError> {
    let (reply, answer) = oneshot::channel();
    jobs.send(job(reply))
        .await
        .map_err(|_| EngineError::Unavailable("the writer has stopped".into()))?;
    answer.await.map_err(|_| EngineError::Unavailable("the writer dropped the command".into()))?
}

/// The embedded reservation engine: a handle to the writer, plus the store for seat maps
/// (the writer commits before it replies, so the store is never behind an acknowledgement).
#[derive(Clone)]
pub struct EmbeddedReservations {
    jobs: mpsc::Sender<Job>,
    store: Arc<dyn CinemaStore>,
}

#[async_trait]
impl ReservationCommands for EmbeddedReservations {
    async fn reserve(&self, request: Reserve) -> Result<ReserveOutcome, EngineError> {
        submit(&self.jobs, |reply| Job::Reserve(request, reply)).await
    }

    async fn cancel(
        &self,
        request: CancelReservation,
    ) -> Result<Result<(), ReservationRejection>, EngineError> {
        submit(&self.jobs, |reply| Job::Cancel(request, reply)).await
    }

    async fn taken_seats(&self, screening_id: Uuid) -> Result<Vec<Seat>, EngineError> {
        Ok(self.store.taken_seats(screening_id).await?)
    }
}

impl WriterTask {
    /// Commits everything queued so far, refuses what comes later, and waits for the writer.
    pub async fn stop(self, timeout: Duration) {
        let _ = self.jobs.send(Job::Stop).await;
        if tokio::time::timeout(timeout, self.handle).await.is_err() {
            tracing::error!("the writer did not stop in time");
        }
    }
}

#[async_trait]
impl AuctionCommands for EmbeddedAuctions {
    async fn place_bid(&self, bid: PlaceBid) -> Result<BidOutcome, EngineError> {
        if let Some(rejection) = self.certain_rejection(&bid) {
            return Ok(BidOutcome::Rejected(rejection));
        }
        submit(&self.jobs, |reply| Job::Bid(bid, reply)).await
    }

    async fn close(&self, auction_id: Uuid) -> Result<bool, EngineError> {
        submit(&self.jobs, |reply| Job::Close(auction_id, reply)).await
    }
}
