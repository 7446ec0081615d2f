//! The single writer task: owns the SQLite write connection and the auctions' hot state, and
//! commits commands in batches.
//!
//! Every command that arrives while a batch is being committed joins the next batch: under load
//! one transaction (one fsync) covers hundreds of bids, while a lone bid still commits at once.
//! Inside a batch each command runs in its own savepoint, so a failing command is undone alone.
//! Replies and events go out only after the batch is durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;
use surge_core::auctions::{self, AuctionCommand, AuctionEvent, AuctionState};
use surge_store::auctions::UserRef;
use surge_store::auctions::sqlite::AuctionLedger;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::fanout::Fanout;
use crate::EngineError;
use crate::auctions::{AcceptedBid, BidOutcome, BidReceipt, FeedEvent, PlaceBid};
use crate::clock::Clock;

/// How long an `Idempotency-Key` is remembered.
pub(crate) const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

pub(crate) enum Job {
    Bid(PlaceBid, Reply<BidOutcome>),
    Close(Uuid, Reply<bool>),
    /// Forget idempotency records past the window.
    Purge,
    /// Commit what came before, then stop.
    Stop,
}

/// A reply waiting for its batch to commit.
enum Pending {
    Bid(Reply<BidOutcome>, Result<BidOutcome, EngineError>),
    Close(Reply<bool>, Result<bool, EngineError>),
}

impl Pending {
    fn send(self, committed: bool) {
        let unavailable = || EngineError::Unavailable("the batch could not be committed".into());
        match self {
            Pending::Bid(reply, result) => {
                let _ = reply.send(if committed { result } else { Err(unavailable()) });
            }
            Pending::Close(reply, result) => {
                let _ = reply.send(if committed { result } else { Err(unavailable()) });
            }
        }
    }
}

pub(crate) struct Writer {
    pub ledger: AuctionLedger,
    pub jobs: mpsc::Receiver<Job>,
    pub fanout: Arc<Fanout>,
    pub clock: Arc<dyn Clock>,
    pub max_batch: usize,
    /// Hot state of the auctions commanded so far; the database copy is written in the same
    /// transaction, so this is only ever ahead of disk inside an uncommitted batch.
    pub hot: HashMap<Uuid, AuctionState>,
}

/// State and effects of the batch being built.
#[derive(Default)]
struct Batch {
    /// States changed by this batch; merged into `hot` only if the commit succeeds.
    changed: HashMap<Uuid, AuctionState>,
    pending: Vec<Pending>,
    events: Vec<FeedEvent>,
    /// A savepoint could not be undone: the transaction may hold half a command, so the whole
    /// batch is rolled back.
    poisoned: bool,
}

impl Writer {
    pub async fn run(mut self) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        loop {
            if self.jobs.recv_many(&mut jobs, self.max_batch).await == 0 {
                return;
            }
            let stop = jobs.iter().position(|job| matches!(job, Job::Stop));
            let rest = stop.map(|at| jobs.split_off(at));
            self.run_batch(std::mem::take(&mut jobs)).await;
            if rest.is_some() {
                self.refuse_remaining(rest.into_iter().flatten());
                return;
            }
        }
    }

    fn refuse_remaining(&mut self, jobs: impl Iterator<Item = Job>) {
        self.jobs.close();
        let stopped = || EngineError::Unavailable("the server is shutting down".into());
        let late = std::iter::from_fn(|| self.jobs.try_recv().ok()).collect::<Vec<_>>();
        for job in jobs.chain(late) {
            match job {
                Job::Bid(_, reply) => drop(reply.send(Err(stopped()))),
                Job::Close(_, reply) => drop(reply.send(Err(stopped()))),
                Job::Purge | Job::Stop => {}
            }
        }
    }

    async fn run_batch(&mut self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let started = Instant::now();
        let size = jobs.len();
        let mut batch = Batch::default();
        let began = self.ledger.begin().await;
        if let Err(error) = began {
            tracing::error!(error = %error, "could not start a write batch");
            for job in jobs {
                self.fail_job(job, &mut batch);
            }
            batch.pending.into_iter().for_each(|p| p.send(false));
            return;
        }
        for job in jobs {
            match job {
                Job::Bid(bid, reply) => {
                    let result = self.place_bid(bid, &mut batch).await;
                    batch.pending.push(Pending::Bid(reply, result));
                }
                Job::Close(id, reply) => {
                    let result = self.close(id, &mut batch).await;
                    batch.pending.push(Pending::Close(reply, result));
                }
                Job::Purge => self.purge().await,
                Job::Stop => {}
            }
        }
        let committed = if batch.poisoned {
            tracing::error!(batch.size = size, "write batch rolled back after a failed undo");
            let _ = self.ledger.rollback().await;
            false
        } else {
            self.commit(size).await
        };
        metrics::histogram!("surge_writer_batch_size").record(size as f64);
        metrics::histogram!("surge_writer_commit_seconds").record(started.elapsed().as_secs_f64());
        if committed {
            self.publish(batch.changed, batch.events);
        }
        for pending in batch.pending {
            pending.send(committed);
        }
    }

    async fn commit(&mut self, size: usize) -> bool {
        match self.ledger.commit().await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(error = %error, batch.size = size, "write batch failed to commit");
                let _ = self.ledger.rollback().await;
                false
            }
        }
    }

    /// After a commit: the batch's states become the hot state and its events go out.
    fn publish(&mut self, changed: HashMap<Uuid, AuctionState>, events: Vec<FeedEvent>) {
        {
            for (id, state) in changed {
                if state.closed {
                    self.hot.remove(&id);
                } else {
                    self.hot.insert(id, state);
                }
            }
            let mut by_auction: Vec<(Uuid, Vec<FeedEvent>)> = Vec::new();
            for event in events {
                match by_auction.last_mut() {
                    Some((id, events)) if *id == event.auction_id => events.push(event),
                    _ => by_auction.push((event.auction_id, vec![event])),
                }
            }
            for (id, events) in by_auction {
                self.fanout.publish(id, events);
            }
        }
    }

    fn fail_job(&self, job: Job, batch: &mut Batch) {
        fn down<T>() -> Result<T, EngineError> {
            Err(EngineError::Unavailable("the database is unavailable".into()))
        }
        match job {
            Job::Bid(_, reply) => batch.pending.push(Pending::Bid(reply, down())),
            Job::Close(_, reply) => batch.pending.push(Pending::Close(reply, down())),
            Job::Purge | Job::Stop => {}
        }
    }

    /// The state as this batch sees it: changed in the batch, else hot, else from disk.
    async fn state(&mut self, id: Uuid, batch: &Batch) -> Result<AuctionState, EngineError> {
        if let Some(state) = batch.changed.get(&id).or_else(|| self.hot.get(&id)) {
            return Ok(state.clone());
        }
        let state = self.ledger.load_state(id).await?.ok_or(EngineError::NotFound)?;
        self.hot.insert(id, state.clone());
        Ok(state)
    }

    async fn place_bid(
        &mut self,
        bid: PlaceBid,
        batch: &mut Batch,
    ) -> Result<BidOutcome, EngineError> {
        let now = self.clock.now();
        if let Some(key) = &bid.idempotency {
            let since = now - Duration::hours(IDEMPOTENCY_WINDOW_HOURS);
            let stored = self.ledger.idempotent_outcome(bid.bidder.id, &key.key, since).await?;
            if let Some((hash, response)) = stored {
                if hash != key.request_hash {
                    return Err(EngineError::IdempotencyKeyReused);
                }
                return serde_json::from_str(&response)
                    .map_err(|e| EngineError::Internal(format!("stored outcome unreadable: {e}")));
            }
        }
        let mut state = self.state(bid.auction_id, batch).await?;
        let command = AuctionCommand::PlaceBid {
            bid_id: bid.bid_id,
            bidder_id: bid.bidder.id,
            amount: bid.amount,
        };
        let decided = auctions::decide(&state, &command, now);
        let outcome = match &decided {
            Err(rejection) => BidOutcome::Rejected(*rejection),
            Ok(events) => {
                for event in events {
                    auctions::apply(&mut state, event);
                }
                let placed_at = events.iter().find_map(|e| match e {
                    AuctionEvent::BidPlaced { placed_at, .. } => Some(*placed_at),
                    _ => None,
                });
                BidOutcome::Accepted(BidReceipt {
                    bid: AcceptedBid {
                        id: bid.bid_id,
                        auction_id: bid.auction_id,
                        bidder: bid.bidder.clone(),
                        amount: bid.amount,
                        seq: state.bid_count,
                        placed_at: placed_at.unwrap_or(now),
                    },
                    current_price: state.current_price,
                    ends_at: state.ends_at,
                    bid_count: state.bid_count,
                })
            }
        };
        let events = decided.unwrap_or_default();
        if events.is_empty() && bid.idempotency.is_none() {
            return Ok(outcome);
        }
        self.ledger.savepoint().await?;
        let written = self.write_bid(&state, &events, &bid, &outcome, now).await;
        self.end_command(written, batch).await?;
        if let BidOutcome::Accepted(receipt) = &outcome {
            batch.events.push(FeedEvent::bid(&receipt.bid, receipt.current_price, receipt.ends_at));
            if events.iter().any(|e| matches!(e, AuctionEvent::Extended { .. })) {
                batch.events.push(FeedEvent::extended(state.id, state.bid_count, state.ends_at));
            }
            batch.changed.insert(state.id, state);
        }
        Ok(outcome)
    }

    async fn write_bid(
        &mut self,
        state: &AuctionState,
        events: &[AuctionEvent],
        bid: &PlaceBid,
        outcome: &BidOutcome,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), EngineError> {
        if !events.is_empty() {
            self.ledger.record(state, events, now).await?;
        }
        if let Some(key) = &bid.idempotency {
            let response = serde_json::to_string(outcome)
                .map_err(|e| EngineError::Internal(format!("outcome not serialisable: {e}")))?;
            self.ledger
                .remember_outcome(bid.bidder.id, &key.key, &key.request_hash, &response, now)
                .await?;
        }
        Ok(())
    }

    async fn close(&mut self, id: Uuid, batch: &mut Batch) -> Result<bool, EngineError> {
        let now = self.clock.now();
        let mut state = self.state(id, batch).await?;
        let Ok(events) = auctions::decide(&state, &AuctionCommand::Close, now) else {
            return Ok(false);
        };
        for event in &events {
            auctions::apply(&mut state, event);
        }
        self.ledger.savepoint().await?;
        let written = self.ledger.record(&state, &events, now).await.map_err(EngineError::from);
        self.end_command(written, batch).await?;
        let winner = match state.high_bidder {
            Some(winner) => Some(UserRef {
                id: winner,
                nickname: self.ledger.nickname(winner).await?.unwrap_or_default(),
            }),
            None => None,
        };
        batch.events.push(FeedEvent::closed(
            id,
            state.bid_count,
            winner.as_ref(),
            state.current_price,
        ));
        batch.changed.insert(id, state);
        Ok(true)
    }

    /// Keeps a command's writes (release) or undoes them alone (rollback to its savepoint).
    async fn end_command(
        &mut self,
        written: Result<(), EngineError>,
        batch: &mut Batch,
    ) -> Result<(), EngineError> {
        let ended = match &written {
            Ok(()) => self.ledger.release().await,
            Err(_) => self.ledger.undo_command().await,
        };
        if let Err(error) = ended {
            batch.poisoned = true;
            return Err(error.into());
        }
        written
    }

    async fn purge(&mut self) {
        let before = self.clock.now() - Duration::hours(IDEMPOTENCY_WINDOW_HOURS);
        match self.ledger.forget_outcomes_before(before).await {
            Ok(count) if count > 0 => {
                tracing::info!(records = count, "forgot old idempotency keys")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "could not purge idempotency keys"),
        }
    }
}
