//! The auction port: bids and closing as contended commands. Live events are the rule's own
//! [`surge_core::auctions::AuctionEvent`]s, through a [`crate::feed::Feed`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use surge_core::accounts::UserRef;
use surge_core::auctions::Rejection;
use surge_core::idempotency::IdempotencyKey;
use uuid::Uuid;

use crate::EngineError;

/// A request to bid. `bid_id` is chosen by the caller so a retried command is recognisable.
#[derive(Debug, Clone)]
pub struct PlaceBid {
    pub auction_id: Uuid,
    pub bid_id: Uuid,
    pub bidder: UserRef,
    pub amount: i64,
    pub idempotency: Option<IdempotencyKey>,
}

/// The accepted bid as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedBid {
    pub id: Uuid,
    pub auction_id: Uuid,
    pub bidder: UserRef,
    pub amount: i64,
    pub seq: i64,
    pub placed_at: DateTime<Utc>,
}

/// What a 201 reports: the bid and the auction right after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidReceipt {
    pub bid: AcceptedBid,
    pub current_price: i64,
    pub ends_at: DateTime<Utc>,
    pub bid_count: i64,
}

/// The decided result of a bid. Stored as-is for idempotent replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BidOutcome {
    Accepted(BidReceipt),
    Rejected(Rejection),
}

/// Executes auction commands atomically per auction. Implementations must guarantee: accepted
/// bids of one auction get seq 1, 2, 3… with no gaps; a bid is accepted only by
/// [`surge_core::auctions::decide`]; an `Accepted` outcome is durable before it is returned;
/// a keyed request has at most one effect.
#[async_trait]
pub trait AuctionCommands: Send + Sync {
    async fn place_bid(&self, bid: PlaceBid) -> Result<BidOutcome, EngineError>;
    /// Announces the result of an auction whose end has passed. `Ok(false)` when there was
    /// nothing to do (not ended yet, or already closed).
    async fn close(&self, auction_id: Uuid) -> Result<bool, EngineError>;
}
