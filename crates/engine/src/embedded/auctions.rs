//! Auctions on the embedded engine: the [`AuctionCommands`] handle, and the auctions' state in
//! the writer (hot state of open auctions, the batch's bids and events).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use surge_core::auctions::{self, AuctionCommand, AuctionEvent, AuctionState, Rejection};
use surge_core::events::Event;
use surge_store::StoreError;
use surge_store::auctions::sqlite::NewBid;
use surge_store::ledger::SqliteLedger;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::apps::Apps;
use super::fanout::Fanout;
use super::writer::{AppWriter, Job, Tx, WriterCommand, submit};
use crate::EngineError;
use crate::auctions::{AcceptedBid, AuctionCommands, BidOutcome, BidReceipt, PlaceBid};
use crate::clock::Clock;

/// The hot state as of the last commit, readable without queueing behind the writer.
type Committed = Arc<RwLock<HashMap<Uuid, AuctionState>>>;

/// Handle to the embedded auction engine. Cloning is cheap; all clones feed the same writer.
#[derive(Clone)]
pub struct EmbeddedAuctions {
    jobs: mpsc::Sender<Job>,
    committed: Committed,
    clock: Arc<dyn Clock>,
}

impl EmbeddedAuctions {
    pub(crate) fn new(
        jobs: mpsc::Sender<Job>,
        writer: &AuctionsWriter,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { jobs, committed: writer.committed.clone(), clock }
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
        match auctions::check_bid(state, bid.bidder.id, bid.amount, self.clock.now()) {
            Err(rejection @ Rejection::TooLow { .. }) => Some(rejection),
            _ => None,
        }
    }
}

#[async_trait]
impl AuctionCommands for EmbeddedAuctions {
    async fn place_bid(&self, bid: PlaceBid) -> Result<BidOutcome, EngineError> {
        if let Some(rejection) = self.certain_rejection(&bid) {
            return Ok(BidOutcome::Rejected(rejection));
        }
        submit(&self.jobs, bid).await
    }

    async fn close(&self, auction_id: Uuid) -> Result<bool, EngineError> {
        submit(&self.jobs, CloseAuction(auction_id)).await
    }
}

/// The auctions' state in the writer.
pub(crate) struct AuctionsWriter {
    fanout: Arc<Fanout<AuctionEvent>>,
    /// Hot state of open auctions; the database copy is written in the same transaction, so
    /// this is only ever ahead of disk inside an uncommitted batch.
    hot: HashMap<Uuid, AuctionState>,
    /// The states as of the last commit, shared with the handles for early rejections.
    committed: Committed,
    batch: AuctionBatch,
}

/// What the batch being built changed.
#[derive(Default)]
struct AuctionBatch {
    /// States changed by this batch; saved before COMMIT and merged into `hot` after it.
    changed: HashMap<Uuid, AuctionState>,
    /// Rows to append at commit.
    bids: Vec<NewBid>,
    events: Vec<Event<AuctionEvent>>,
}

impl AuctionsWriter {
    /// Restores the hot state of every open auction from disk.
    pub async fn restore(
        ledger: &mut SqliteLedger,
        fanout: Arc<Fanout<AuctionEvent>>,
    ) -> Result<Self, EngineError> {
        let hot: HashMap<_, _> = ledger
            .auctions()
            .open_states()
            .await?
            .into_iter()
            .map(|state| (state.id, state))
            .collect();
        tracing::info!(auctions = hot.len(), "restored the hot state of open auctions");
        let committed = Arc::new(RwLock::new(hot.clone()));
        Ok(Self { fanout, hot, committed, batch: AuctionBatch::default() })
    }

    /// The state as this batch sees it: changed in the batch, else hot, else from disk.
    async fn state(&mut self, id: Uuid, tx: &mut Tx<'_>) -> Result<AuctionState, EngineError> {
        if let Some(state) = self.batch.changed.get(&id).or_else(|| self.hot.get(&id)) {
            return Ok(state.clone());
        }
        let state = tx.ledger.auctions().load_state(id).await?.ok_or(EngineError::NotFound)?;
        self.hot.insert(id, state.clone());
        Ok(state)
    }

    async fn place_bid(
        &mut self,
        bid: PlaceBid,
        tx: &mut Tx<'_>,
    ) -> Result<BidOutcome, EngineError> {
        let key = bid.idempotency.as_ref();
        if let Some(replayed) = tx.replay(bid.bidder.id, key).await? {
            return Ok(replayed);
        }
        let now = tx.now();
        let mut state = self.state(bid.auction_id, tx).await?;
        let command = AuctionCommand::PlaceBid {
            bid_id: bid.bid_id,
            bidder: bid.bidder.clone(),
            amount: bid.amount,
        };
        let outcome = match auctions::decide(&state, &command, now) {
            Err(rejection) => BidOutcome::Rejected(rejection),
            Ok(events) => {
                for event in &events {
                    auctions::apply(&mut state, event);
                }
                let receipt = receipt(&bid, &state, now);
                self.batch.bids.push(NewBid {
                    id: receipt.bid.id,
                    auction_id: receipt.bid.auction_id,
                    seq: receipt.bid.seq,
                    bidder_id: receipt.bid.bidder.id,
                    amount: receipt.bid.amount,
                    placed_at: receipt.bid.placed_at,
                });
                let id = state.id;
                self.batch.events.extend(events.into_iter().map(|event| Event::new(id, event)));
                self.batch.changed.insert(id, state);
                BidOutcome::Accepted(receipt)
            }
        };
        tx.remember(bid.bidder.id, key, &outcome)?;
        Ok(outcome)
    }

    async fn close(&mut self, id: Uuid, tx: &mut Tx<'_>) -> Result<bool, EngineError> {
        let now = tx.now();
        let mut state = self.state(id, tx).await?;
        let Ok(events) = auctions::decide(&state, &AuctionCommand::Close, now) else {
            return Ok(false);
        };
        for event in &events {
            auctions::apply(&mut state, event);
        }
        self.batch.events.extend(events.into_iter().map(|event| Event::new(id, event)));
        self.batch.changed.insert(id, state);
        Ok(true)
    }
}

#[async_trait]
impl AppWriter for AuctionsWriter {
    async fn flush(
        &mut self,
        ledger: &mut SqliteLedger,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut auctions = ledger.auctions();
        auctions.insert_bids(&self.batch.bids).await?;
        let changed: Vec<&AuctionState> = self.batch.changed.values().collect();
        auctions.save_states(&changed, now).await
    }

    /// The batch's states become the hot state and its events go out.
    fn committed(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let mut committed = self.committed.write().unwrap_or_else(|p| p.into_inner());
        for (id, state) in batch.changed {
            if state.closed {
                self.hot.remove(&id);
                committed.remove(&id);
            } else {
                committed.insert(id, state.clone());
                self.hot.insert(id, state);
            }
        }
        drop(committed);
        self.fanout.publish_each(batch.events);
    }

    /// Auctions touched by the batch may be ahead of disk in memory: reload them when next used.
    fn rolled_back(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        for id in batch.changed.keys() {
            self.hot.remove(id);
        }
    }
}

#[async_trait]
impl WriterCommand for PlaceBid {
    type Output = BidOutcome;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<BidOutcome, EngineError> {
        apps.auctions.place_bid(self, tx).await
    }
}

/// Announce the result of an auction whose end has passed.
struct CloseAuction(Uuid);

#[async_trait]
impl WriterCommand for CloseAuction {
    type Output = bool;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<bool, EngineError> {
        apps.auctions.close(self.0, tx).await
    }
}

/// The 201 of a bid the state has just accepted (at `placed_at`).
fn receipt(bid: &PlaceBid, state: &AuctionState, placed_at: DateTime<Utc>) -> BidReceipt {
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
