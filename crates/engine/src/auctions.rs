//! The auction port: bids and closing as contended commands, and the per-auction event feed.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use surge_core::accounts::UserRef;
use surge_core::auctions::Rejection;
use surge_core::idempotency::IdempotencyKey;
use tokio::sync::broadcast;
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

/// What kind of thing happened, for the SSE `event:` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEventKind {
    Bid,
    Extended,
    Closed,
}

impl FeedEventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FeedEventKind::Bid => "bid",
            FeedEventKind::Extended => "extended",
            FeedEventKind::Closed => "closed",
        }
    }
}

/// One event as subscribers receive it. Its JSON payload is rendered on first use and then
/// shared: once per event however many subscribers there are, and never when nobody listens.
#[derive(Debug)]
pub struct FeedEvent {
    pub auction_id: Uuid,
    /// The seq of the latest bid when this happened: a reconnecting client sends it back as
    /// `Last-Event-ID`.
    pub seq: i64,
    pub kind: FeedEventKind,
    payload: Payload,
    rendered: OnceLock<Arc<str>>,
    frame: OnceLock<Bytes>,
}

#[derive(Debug)]
enum Payload {
    Bid { bid: AcceptedBid, current_price: i64, ends_at: DateTime<Utc> },
    Extended { ends_at: DateTime<Utc> },
    Closed { winner: Option<UserRef>, final_price: i64 },
}

impl FeedEvent {
    /// A bid: the SSE data is the bid plus the auction's price and end after it.
    pub fn bid(bid: &AcceptedBid, current_price: i64, ends_at: DateTime<Utc>) -> Self {
        let payload = Payload::Bid { bid: bid.clone(), current_price, ends_at };
        Self::new(bid.auction_id, bid.seq, FeedEventKind::Bid, payload)
    }

    pub fn extended(auction_id: Uuid, seq: i64, ends_at: DateTime<Utc>) -> Self {
        Self::new(auction_id, seq, FeedEventKind::Extended, Payload::Extended { ends_at })
    }

    pub fn closed(auction_id: Uuid, seq: i64, winner: Option<&UserRef>, final_price: i64) -> Self {
        let payload = Payload::Closed { winner: winner.cloned(), final_price };
        Self::new(auction_id, seq, FeedEventKind::Closed, payload)
    }

    fn new(auction_id: Uuid, seq: i64, kind: FeedEventKind, payload: Payload) -> Self {
        Self { auction_id, seq, kind, payload, rendered: OnceLock::new(), frame: OnceLock::new() }
    }

    /// The whole server-sent-events frame (`event:`, `id:` = seq, `data:`), built once and
    /// shared by every subscriber's connection without copying.
    pub fn sse_frame(&self) -> Bytes {
        self.frame
            .get_or_init(|| {
                let data = self.data();
                let mut frame = String::with_capacity(data.len() + 40);
                frame.push_str("event: ");
                frame.push_str(self.kind.as_str());
                frame.push_str("\nid: ");
                frame.push_str(&self.seq.to_string());
                frame.push_str("\ndata: ");
                frame.push_str(data);
                frame.push_str("\n\n");
                Bytes::from(frame)
            })
            .clone()
    }

    /// The SSE `data:` JSON (one line: JSON never contains a raw newline).
    pub fn data(&self) -> &str {
        self.rendered.get_or_init(|| {
            let value = match &self.payload {
                Payload::Bid { bid, current_price, ends_at } => serde_json::json!({
                    "id": bid.id,
                    "auction_id": bid.auction_id,
                    "bidder": bid.bidder,
                    "amount": bid.amount,
                    "seq": bid.seq,
                    "placed_at": bid.placed_at,
                    "current_price": current_price,
                    "ends_at": ends_at,
                }),
                Payload::Extended { ends_at } => serde_json::json!({ "ends_at": ends_at }),
                Payload::Closed { winner, final_price } => {
                    serde_json::json!({ "winner": winner, "final_price": final_price })
                }
            };
            Arc::from(value.to_string())
        })
    }
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

/// Live events per auction. Each subscriber gets a bounded buffer: one that falls behind sees
/// `RecvError::Lagged` and must resume from the store, it never slows the others.
pub trait AuctionFeed: Send + Sync {
    fn subscribe(&self, auction_id: Uuid) -> broadcast::Receiver<Arc<FeedEvent>>;
}
