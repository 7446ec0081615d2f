//! The single writer task: owns the SQLite write connection and the auctions' hot state, and
//! commits commands in batches.
//!
//! Every command that arrives while a batch is being committed joins the next batch: under load
//! one transaction (one fsync) covers hundreds of bids, while a lone bid still commits at once.
//!
//! Each command is decided alone, in order, against the state the batch has built so far, so a
//! rejected command writes nothing and an accepted one sees every earlier acceptance. The rows
//! the accepted commands produce are written at the end with a few multi-row statements (each
//! statement is a round trip to SQLite's thread; one per bid capped throughput), followed by
//! one hot-state UPDATE per changed auction and the COMMIT. Replies and events go out only
//! after the COMMIT is durable. A write can only fail through an I/O fault or an engine bug,
//! never through a business rule; if one does, the whole batch is rolled back, its callers get
//! 503 (no effect, retry), and the touched auctions are reloaded from disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use surge_core::auctions::{self, AuctionCommand, AuctionEvent, AuctionState};
use surge_core::cinema::{ReservationRejection, ScreeningState};
use surge_store::StoreError;
use surge_store::auctions::UserRef;
use surge_store::auctions::sqlite::{AuctionLedger, KeyedOutcome, NewBid};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::fanout::Fanout;
use crate::EngineError;
use crate::auctions::{AcceptedBid, BidOutcome, BidReceipt, FeedEvent, IdempotencyKey, PlaceBid};
use crate::cinema::{CancelReservation, Reserve, ReserveOutcome};
use crate::clock::Clock;

mod reservations;

/// How long an `Idempotency-Key` is remembered.
pub(crate) const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

pub(crate) enum Job {
    Bid(PlaceBid, Reply<BidOutcome>),
    Close(Uuid, Reply<bool>),
    Reserve(Reserve, Reply<ReserveOutcome>),
    Cancel(CancelReservation, Reply<Result<(), ReservationRejection>>),
    /// Forget idempotency records past the window.
    Purge,
    /// Commit what came before, then stop.
    Stop,
}

/// A reply waiting for its batch to commit: sent as decided if the batch commits, as 503 if not.
struct Pending(Box<dyn FnOnce(bool) + Send + Sync>);

impl Pending {
    fn new<T: Send + Sync + 'static>(reply: Reply<T>, result: Result<T, EngineError>) -> Self {
        Pending(Box::new(move |committed| {
            let result = if committed {
                result
            } else {
                Err(EngineError::Unavailable("the batch could not be committed".into()))
            };
            let _ = reply.send(result);
        }))
    }

    fn send(self, committed: bool) {
        (self.0)(committed)
    }

    fn refuse(job: Job, error: fn() -> EngineError) -> Option<Self> {
        match job {
            Job::Bid(_, reply) => Some(Pending::new(reply, Err(error()))),
            Job::Close(_, reply) => Some(Pending::new(reply, Err(error()))),
            Job::Reserve(_, reply) => Some(Pending::new(reply, Err(error()))),
            Job::Cancel(_, reply) => Some(Pending::new(reply, Err(error()))),
            Job::Purge | Job::Stop => None,
        }
    }
}

pub(crate) struct Writer {
    pub ledger: AuctionLedger,
    pub jobs: mpsc::Receiver<Job>,
    pub fanout: Arc<Fanout>,
    pub clock: Arc<dyn Clock>,
    pub max_batch: usize,
    /// Hot state of open auctions; the database copy is written in the same transaction, so
    /// this is only ever ahead of disk inside an uncommitted batch.
    pub hot: HashMap<Uuid, AuctionState>,
    /// The states as of the last commit, shared with the handle for early rejections.
    pub committed: super::auctions::Committed,
    /// Screenings' reservation state, loaded on first use; like `hot`, never behind disk.
    pub screenings: HashMap<Uuid, ScreeningState>,
}

/// State and effects of the batch being built.
#[derive(Default)]
struct Batch {
    /// States changed by this batch; saved before COMMIT and merged into `hot` after it.
    changed: HashMap<Uuid, AuctionState>,
    pending: Vec<Pending>,
    events: Vec<FeedEvent>,
    /// Rows to append at commit.
    bids: Vec<NewBid>,
    /// Outcomes of keyed requests decided in this batch, by (user, key): stored at commit, and
    /// consulted first so a retry within the same batch replays too.
    outcomes: HashMap<(Uuid, String), KeyedOutcome>,
    /// Screenings changed by this batch (their rows are written as each command is decided);
    /// they become the hot state after COMMIT, and are forgotten if it fails.
    screenings: HashMap<Uuid, ScreeningState>,
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
            if let Some(rest) = rest {
                self.refuse_remaining(rest);
                return;
            }
        }
    }

    fn refuse_remaining(&mut self, jobs: Vec<Job>) {
        self.jobs.close();
        let late = std::iter::from_fn(|| self.jobs.try_recv().ok()).collect::<Vec<_>>();
        let stopping = || EngineError::Unavailable("the server is shutting down".into());
        for pending in jobs.into_iter().chain(late).filter_map(|job| Pending::refuse(job, stopping))
        {
            pending.send(true);
        }
    }

    async fn run_batch(&mut self, jobs: Vec<Job>) {
        let started = Instant::now();
        let size = jobs.len();
        if let Err(error) = self.ledger.begin().await {
            tracing::error!(error = %error, "could not start a write batch");
            let down = || EngineError::Unavailable("the database is unavailable".into());
            for pending in jobs.into_iter().filter_map(|job| Pending::refuse(job, down)) {
                pending.send(true);
            }
            return;
        }
        let mut batch = Batch::default();
        for job in jobs {
            match job {
                Job::Bid(bid, reply) => {
                    let result = self.place_bid(bid, &mut batch).await;
                    batch.pending.push(Pending::new(reply, result));
                }
                Job::Close(id, reply) => {
                    let result = self.close(id, &mut batch).await;
                    batch.pending.push(Pending::new(reply, result));
                }
                Job::Reserve(request, reply) => {
                    let result = self.reserve(request, &mut batch).await;
                    batch.pending.push(Pending::new(reply, result));
                }
                Job::Cancel(request, reply) => {
                    let result = self.cancel(request, &mut batch).await;
                    batch.pending.push(Pending::new(reply, result));
                }
                Job::Purge => self.purge().await,
                Job::Stop => {}
            }
        }
        let committed = self.commit(&mut batch, size).await;
        metrics::histogram!("surge_writer_batch_size").record(size as f64);
        metrics::histogram!("surge_writer_commit_seconds").record(started.elapsed().as_secs_f64());
        if committed {
            self.publish(std::mem::take(&mut batch.changed), std::mem::take(&mut batch.events));
            self.screenings.extend(batch.screenings.drain());
        }
        for pending in batch.pending {
            pending.send(committed);
        }
    }

    /// Writes the batch's rows and changed states, then commits; rolls back if anything fails.
    async fn commit(&mut self, batch: &mut Batch, size: usize) -> bool {
        let committed = match self.write(batch).await {
            Ok(()) => self.ledger.commit().await,
            Err(error) => Err(error),
        };
        let Err(error) = committed else { return true };
        tracing::error!(error = %error, batch.size = size, "write batch rolled back");
        let _ = self.ledger.rollback().await;
        // Auctions touched by the batch may be ahead of disk in memory: reload them when next used.
        for id in batch.changed.keys() {
            self.hot.remove(id);
        }
        for id in batch.screenings.keys() {
            self.screenings.remove(id);
        }
        false
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.ledger.insert_bids(&batch.bids).await?;
        if !batch.outcomes.is_empty() {
            let outcomes: Vec<KeyedOutcome> = batch.outcomes.values().cloned().collect();
            self.ledger.remember_outcomes(&outcomes).await?;
        }
        let changed: Vec<&AuctionState> = batch.changed.values().collect();
        self.ledger.save_states(&changed, now).await?;
        Ok(())
    }

    /// After a commit: the batch's states become the hot state and its events go out.
    fn publish(&mut self, changed: HashMap<Uuid, AuctionState>, events: Vec<FeedEvent>) {
        let mut committed = self.committed.write().unwrap_or_else(|p| p.into_inner());
        for (id, state) in changed {
            if state.closed {
                self.hot.remove(&id);
                committed.remove(&id);
            } else {
                committed.insert(id, state.clone());
                self.hot.insert(id, state);
            }
        }
        drop(committed);
        self.fanout.publish_each(events);
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
        if let Some(replayed) =
            self.replay(bid.bidder.id, bid.idempotency.as_ref(), batch, now).await?
        {
            return Ok(replayed);
        }
        let mut state = self.state(bid.auction_id, batch).await?;
        let command = AuctionCommand::PlaceBid {
            bid_id: bid.bid_id,
            bidder_id: bid.bidder.id,
            amount: bid.amount,
        };
        let outcome = match auctions::decide(&state, &command, now) {
            Err(rejection) => BidOutcome::Rejected(rejection),
            Ok(events) => {
                for event in &events {
                    auctions::apply(&mut state, event);
                }
                let receipt = receipt(&bid, &state, &events, now);
                batch.bids.push(NewBid {
                    id: receipt.bid.id,
                    auction_id: receipt.bid.auction_id,
                    seq: receipt.bid.seq,
                    bidder_id: receipt.bid.bidder.id,
                    amount: receipt.bid.amount,
                    placed_at: receipt.bid.placed_at,
                });
                batch.events.push(FeedEvent::bid(
                    &receipt.bid,
                    receipt.current_price,
                    receipt.ends_at,
                ));
                if events.iter().any(|e| matches!(e, AuctionEvent::Extended { .. })) {
                    batch.events.push(FeedEvent::extended(
                        state.id,
                        state.bid_count,
                        state.ends_at,
                    ));
                }
                batch.changed.insert(state.id, state);
                BidOutcome::Accepted(receipt)
            }
        };
        Self::remember(bid.bidder.id, bid.idempotency.as_ref(), &outcome, batch, now)?;
        Ok(outcome)
    }

    /// The stored outcome of a retried keyed request, or an error if the key was reused.
    async fn replay<T: DeserializeOwned>(
        &mut self,
        user_id: Uuid,
        key: Option<&IdempotencyKey>,
        batch: &Batch,
        now: DateTime<Utc>,
    ) -> Result<Option<T>, EngineError> {
        let Some(key) = key else { return Ok(None) };
        let stored = match batch.outcomes.get(&(user_id, key.key.clone())) {
            Some(record) => Some((record.request_hash.clone(), record.response.clone())),
            None => {
                let since = now - Duration::hours(IDEMPOTENCY_WINDOW_HOURS);
                self.ledger.idempotent_outcome(user_id, &key.key, since).await?
            }
        };
        let Some((hash, response)) = stored else { return Ok(None) };
        if hash != key.request_hash {
            return Err(EngineError::IdempotencyKeyReused);
        }
        serde_json::from_str(&response)
            .map(Some)
            .map_err(|e| EngineError::Internal(format!("stored outcome unreadable: {e}")))
    }

    /// Keeps a keyed request's outcome, to be stored with the batch.
    fn remember<T: Serialize>(
        user_id: Uuid,
        key: Option<&IdempotencyKey>,
        outcome: &T,
        batch: &mut Batch,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let Some(key) = key else { return Ok(()) };
        let response = serde_json::to_string(outcome)
            .map_err(|e| EngineError::Internal(format!("outcome not serialisable: {e}")))?;
        let record = KeyedOutcome {
            user_id,
            key: key.key.clone(),
            request_hash: key.request_hash.clone(),
            response,
            created_at: now,
        };
        batch.outcomes.insert((user_id, key.key.clone()), record);
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

fn receipt(
    bid: &PlaceBid,
    state: &AuctionState,
    events: &[AuctionEvent],
    now: DateTime<Utc>,
) -> BidReceipt {
    let placed_at = events
        .iter()
        .find_map(|e| match e {
            AuctionEvent::BidPlaced { placed_at, .. } => Some(*placed_at),
            _ => None,
        })
        .unwrap_or(now);
    BidReceipt {
        bid: AcceptedBid {
            id: bid.bid_id,
            auction_id: bid.auction_id,
            bidder: bid.bidder.clone(),
            amount: bid.amount,
            seq: state.bid_count,
            placed_at,
        },
        current_price: state.current_price,
        ends_at: state.ends_at,
        bid_count: state.bid_count,
    }
}
