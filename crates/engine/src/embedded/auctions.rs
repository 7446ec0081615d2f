//! The embedded auction engine: a handle to the writer task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use surge_store::auctions::sqlite::AuctionLedger;
use surge_store::db::SqliteDb;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::fanout::Fanout;
use super::writer::{Job, Writer};
use crate::EngineError;
use crate::auctions::{AuctionCommands, BidOutcome, PlaceBid};
use crate::clock::Clock;

/// Commands queued ahead of the writer before senders wait: a burst far larger than one batch
/// is absorbed, a sustained overload pushes back on the HTTP handlers.
const QUEUE_DEPTH: usize = 16_384;

/// Handle to the embedded engine. Cloning is cheap; all clones feed the same writer.
#[derive(Clone)]
pub struct EmbeddedAuctions {
    jobs: mpsc::Sender<Job>,
}

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
        let ledger = AuctionLedger::new(db.dedicated_connection().await?);
        let (jobs, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            ledger,
            jobs: receiver,
            fanout,
            clock,
            max_batch: max_batch.max(1),
            hot: HashMap::new(),
        };
        let handle = tokio::spawn(writer.run());
        Ok((Self { jobs: jobs.clone() }, WriterTask { jobs, handle }))
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Job,
    ) -> Result<T, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .await
            .map_err(|_| EngineError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| EngineError::Unavailable("the writer dropped the command".into()))?
    }

    /// Asks the writer to forget expired idempotency records.
    pub async fn purge_idempotency_keys(&self) {
        let _ = self.jobs.send(Job::Purge).await;
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
        self.submit(|reply| Job::Bid(bid, reply)).await
    }

    async fn close(&self, auction_id: Uuid) -> Result<bool, EngineError> {
        self.submit(|reply| Job::Close(auction_id, reply)).await
    }
}
