//! The distributed engine's [`AuctionCommands`]: bids and closing run as Lua scripts on the
//! auction's hot state in Redis; PostgreSQL catches up through the shard persisters.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use surge_store::auctions::postgres::PgAuctions;
use uuid::Uuid;

use surge_core::auctions::Rejection;

use super::auctions::{AcceptedReply, CloseResult, Floor, RedisAuctions, RedisBidResult};
use super::batcher::BidBatcher;
use super::hot_state::rebuild_hot_state;
use super::idempotency;
use crate::EngineError;
use crate::auctions::{AcceptedBid, AuctionCommands, BidOutcome, BidReceipt, PlaceBid};
use crate::clock::Clock;

/// More than this replica's estimate of the server's clock can be off (half a round trip plus
/// a few seconds' drift).
const END_MARGIN: chrono::TimeDelta = chrono::TimeDelta::milliseconds(500);

#[derive(Clone)]
pub struct DistributedAuctions {
    redis: RedisAuctions,
    /// PostgreSQL's copy, to rebuild a missing hot state from.
    store: PgAuctions,
    clock: Arc<dyn Clock>,
    /// What this replica last learned of each auction's minimum next bid.
    floors: moka::sync::Cache<Uuid, Floor>,
    batcher: BidBatcher,
}

impl DistributedAuctions {
    pub fn new(redis: RedisAuctions, store: PgAuctions, clock: Arc<dyn Clock>) -> Self {
        let floors = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_idle(Duration::from_secs(600))
            .build();
        let batcher = BidBatcher::new(redis.clone(), clock.clone());
        Self { redis, store, clock, floors, batcher }
    }

    /// A rejection that is certain without Redis: a bid below the floor this replica learned
    /// from an earlier reply stays too low, because prices only rise. Under a storm most losing
    /// bids end here. Keyed requests always go to Redis, which records their outcome. In the
    /// auction's last [`END_MARGIN`] Redis decides, so a bid near the end is never called too
    /// low when the server's clock (the authority) already says ended.
    fn certain_rejection(&self, bid: &PlaceBid) -> Option<Rejection> {
        if bid.idempotency.is_some() {
            return None;
        }
        let floor = self.floors.get(&bid.auction_id)?;
        let certain = self.clock.now() + END_MARGIN < floor.ends_at
            && bid.bidder.id != floor.seller
            && bid.amount < floor.min_amount;
        certain.then_some(Rejection::TooLow { min_amount: floor.min_amount })
    }

    /// Keeps the highest floor learned (replies can arrive out of order); a reply that teaches
    /// nothing new writes nothing.
    fn raise_floor(&self, auction_id: Uuid, floor: Floor) {
        let raised = match self.floors.get(&auction_id) {
            Some(known)
                if known.min_amount >= floor.min_amount && known.ends_at >= floor.ends_at =>
            {
                return;
            }
            Some(known) => Floor {
                min_amount: known.min_amount.max(floor.min_amount),
                ends_at: known.ends_at.max(floor.ends_at),
                seller: floor.seller,
            },
            None => floor,
        };
        self.floors.insert(auction_id, raised);
    }

    /// Recreates a missing hot key from PostgreSQL (see [`rebuild_hot_state`]).
    async fn rebuild(&self, auction_id: Uuid) -> Result<(), EngineError> {
        rebuild_hot_state(&self.redis.shards, auction_id, "auction", |persisted| async move {
            let state = self.store.hot_state(auction_id).await?.ok_or(EngineError::NotFound)?;
            self.redis.load(&state, &persisted).await
        })
        .await
    }
}

#[async_trait]
impl AuctionCommands for DistributedAuctions {
    async fn place_bid(&self, bid: PlaceBid) -> Result<BidOutcome, EngineError> {
        // Twice at most: a missing key is rebuilt once, then the bid runs on it.
        if let Some(rejection) = self.certain_rejection(&bid) {
            return Ok(BidOutcome::Rejected(rejection));
        }
        if let Some(key) = &bid.idempotency {
            idempotency::claim(&self.redis.shards, bid.bidder.id, key, self.clock.authority_time())
                .await?;
        }
        for _ in 0..2 {
            let (result, floor) = match bid.idempotency {
                // A keyed request goes alone: its outcome is recorded with it.
                Some(_) => {
                    self.redis.place_bid_with_floor(&bid, self.clock.authority_time()).await?
                }
                None => self.batcher.place(bid.clone()).await?,
            };
            if let Some(floor) = floor {
                self.raise_floor(bid.auction_id, floor);
            }
            match result {
                RedisBidResult::Missing => self.rebuild(bid.auction_id).await?,
                RedisBidResult::KeyReused => return Err(EngineError::IdempotencyKeyReused),
                RedisBidResult::Replayed(first) => return outcome(&bid, *first),
                decided => return outcome(&bid, decided),
            }
        }
        Err(EngineError::Unavailable("the auction's hot state disappeared again".into()))
    }

    async fn close(&self, auction_id: Uuid) -> Result<bool, EngineError> {
        for _ in 0..2 {
            match self.redis.close(auction_id, self.clock.authority_time()).await? {
                CloseResult::Closed => return Ok(true),
                CloseResult::NothingToDo => return Ok(false),
                CloseResult::Missing => self.rebuild(auction_id).await?,
            }
        }
        Err(EngineError::Unavailable("the auction's hot state disappeared again".into()))
    }
}

fn outcome(bid: &PlaceBid, result: RedisBidResult) -> Result<BidOutcome, EngineError> {
    match result {
        RedisBidResult::Accepted(reply) => Ok(BidOutcome::Accepted(receipt(bid, reply))),
        RedisBidResult::Rejected(rejection) => Ok(BidOutcome::Rejected(rejection)),
        other => Err(EngineError::Internal(format!("not an outcome: {other:?}"))),
    }
}

fn receipt(bid: &PlaceBid, reply: AcceptedReply) -> BidReceipt {
    BidReceipt {
        bid: AcceptedBid {
            id: reply.bid_id,
            auction_id: bid.auction_id,
            bidder: bid.bidder.clone(),
            amount: reply.amount,
            seq: reply.seq,
            placed_at: reply.placed_at,
        },
        current_price: reply.current_price,
        ends_at: reply.ends_at,
        bid_count: reply.seq,
    }
}
