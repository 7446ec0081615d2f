//! The distributed engine's [`AuctionCommands`]: bids and closing run as Lua scripts on the
//! auction's hot state in Redis; PostgreSQL catches up through the shard persisters.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use surge_store::events::postgres::PgEventLedger;
use uuid::Uuid;

use super::auctions::{AcceptedReply, CloseResult, LoadResult, RedisAuctions, RedisBidResult};
use crate::EngineError;
use crate::auctions::{AcceptedBid, AuctionCommands, BidOutcome, BidReceipt, PlaceBid};
use crate::clock::Clock;

/// How often a rebuild waits for the shard's persister before giving up with 503.
const REBUILD_ATTEMPTS: u32 = 40;
const REBUILD_PAUSE: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct DistributedAuctions {
    redis: RedisAuctions,
    ledger: PgEventLedger,
    clock: Arc<dyn Clock>,
}

impl DistributedAuctions {
    pub fn new(redis: RedisAuctions, ledger: PgEventLedger, clock: Arc<dyn Clock>) -> Self {
        Self { redis, ledger, clock }
    }

    /// Recreates a missing hot key from PostgreSQL, but only from a copy that holds every event
    /// of the auction: while the shard stream still has unapplied events of it, wait for the
    /// persister. A lower bid can never win because a key was rebuilt from stale data.
    async fn rebuild(&self, auction_id: Uuid) -> Result<(), EngineError> {
        let shard = self.redis.shard(auction_id);
        for _ in 0..REBUILD_ATTEMPTS {
            // The position first, then the copy: everything up to the position is in the copy.
            let persisted = self.redis.persisted_position(shard).await?;
            let (state, nickname) =
                self.ledger.auction_state(auction_id).await?.ok_or(EngineError::NotFound)?;
            match self.redis.load(&state, nickname.as_deref(), &persisted).await? {
                LoadResult::Created => {
                    tracing::info!(auction.id = %auction_id, "rebuilt hot state from PostgreSQL");
                    metrics::counter!("surge_hot_state_rebuilds_total").increment(1);
                    return Ok(());
                }
                LoadResult::Exists => return Ok(()),
                LoadResult::Stale => tokio::time::sleep(REBUILD_PAUSE).await,
            }
        }
        Err(EngineError::Unavailable(
            "the auction's recent events are still being persisted; retry shortly".into(),
        ))
    }
}

#[async_trait]
impl AuctionCommands for DistributedAuctions {
    async fn place_bid(&self, bid: PlaceBid) -> Result<BidOutcome, EngineError> {
        // Twice at most: a missing key is rebuilt once, then the bid runs on it.
        for _ in 0..2 {
            let result = self.redis.place_bid(&bid, self.clock.now()).await?;
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
            match self.redis.close(auction_id, self.clock.now()).await? {
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
