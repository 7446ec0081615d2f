//! Auction hot state in Redis and the bid script.
//!
//! Keys of an auction in shard `s` (one Cluster slot per shard):
//! - `surge:{s<s>}:auction:<id>`: a hash with the [`AuctionState`] fields (`seller`,
//!   `starting_price`, `min_increment`, `starts_at` and `ends_at` in microseconds since the Unix
//!   epoch, `extend_seconds`, `current_price`, `high_bidder` (empty for none), `bid_count`,
//!   `closed` (`0`/`1`)).
//! - `surge:{s<s>}:events`: the shard's stream. `place_bid.lua` appends one entry per event
//!   (`type` = `bid` or `extended`, `auction_id`, `event_id`, `seq`, `bidder`, `amount`,
//!   `placed_at`, `ends_at`) in the same atomic step that changes the hash.

use std::collections::HashMap;
use std::sync::LazyLock;

use ::redis::{Script, Value};
use chrono::{DateTime, Utc};
use surge_core::MAX_MONEY;
use surge_core::auctions::{AuctionState, Rejection};
use surge_core::sharding::shard_of;
use uuid::Uuid;

use super::connection::RedisConnection;
use super::{deadline, unavailable};
use crate::EngineError;

/// Shards when nothing else is configured.
pub const DEFAULT_SHARDS: u16 = 16;

static LOAD_AUCTION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/load_auction.lua")));
static PLACE_BID: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/place_bid.lua")));

/// The outcome of [`RedisAuctions::place_bid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisBidResult {
    /// The bid was applied; `seq` is its number, `current_price` and `ends_at` the auction's
    /// state right after it, `extended` whether it pushed the end back.
    Accepted {
        seq: i64,
        current_price: i64,
        ends_at: DateTime<Utc>,
        extended: bool,
    },
    Rejected(Rejection),
    /// Redis holds no hot state for this auction.
    Missing,
}

/// Auction hot state and bids on Redis, one shard per Cluster slot.
#[derive(Clone)]
pub struct RedisAuctions {
    pub conn: RedisConnection,
    /// The number of shards. Every process sharing a Redis must use the same value.
    pub shards: u16,
}

impl RedisAuctions {
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn, shards: DEFAULT_SHARDS }
    }

    pub fn with_shards(mut self, shards: u16) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// The shard `auction_id` belongs to.
    pub fn shard(&self, auction_id: Uuid) -> u16 {
        shard_of(auction_id, self.shards)
    }

    /// The key of an auction's hot state hash.
    pub fn auction_key(&self, auction_id: Uuid) -> String {
        format!("surge:{{s{}}}:auction:{auction_id}", self.shard(auction_id))
    }

    /// The key of the stream that holds the events of `shard`.
    pub fn events_key(shard: u16) -> String {
        format!("surge:{{s{shard}}}:events")
    }

    /// Creates the hot state of an auction unless it exists. `Ok(false)` when it already did; the
    /// existing state is left as it is.
    pub async fn load(&self, state: &AuctionState) -> Result<bool, EngineError> {
        let fields = encode(state);
        let mut invocation = LOAD_AUCTION.key(self.auction_key(state.id));
        for (field, value) in &fields {
            invocation.arg(*field).arg(value);
        }
        let mut conn = self.conn.clone();
        let created: i64 =
            deadline(async { invocation.invoke_async(&mut conn).await.map_err(unavailable) })
                .await?;
        Ok(created == 1)
    }

    /// Decides and applies a bid atomically, exactly as [`surge_core::auctions::decide`] and
    /// [`surge_core::auctions::apply`] would, and appends its events to the shard's stream.
    /// Times are kept to the microsecond; `now` is truncated to it.
    pub async fn place_bid(
        &self,
        auction_id: Uuid,
        bid_id: Uuid,
        bidder_id: Uuid,
        amount: i64,
        now: DateTime<Utc>,
    ) -> Result<RedisBidResult, EngineError> {
        // The script computes in doubles; money stays far inside their exact range.
        if amount > MAX_MONEY {
            return Err(EngineError::Internal(format!("bid amount {amount} above {MAX_MONEY}")));
        }
        let shard = self.shard(auction_id);
        let mut invocation = PLACE_BID.key(self.auction_key(auction_id));
        invocation
            .key(Self::events_key(shard))
            .arg(auction_id.to_string())
            .arg(bid_id.to_string())
            .arg(bidder_id.to_string())
            .arg(amount)
            .arg(now.timestamp_micros());
        let mut conn = self.conn.clone();
        let reply: Vec<Value> =
            deadline(async { invocation.invoke_async(&mut conn).await.map_err(unavailable) })
                .await?;
        decode_bid_reply(&reply)
    }

    /// Reads an auction's hot state back; `None` when Redis holds none.
    pub async fn state(&self, auction_id: Uuid) -> Result<Option<AuctionState>, EngineError> {
        let key = self.auction_key(auction_id);
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = deadline(async {
            ::redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.map_err(unavailable)
        })
        .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        decode(auction_id, &fields).map(Some).ok_or_else(|| {
            EngineError::Internal(format!("malformed auction hot state at {key}: {fields:?}"))
        })
    }
}

fn encode(state: &AuctionState) -> [(&'static str, String); 10] {
    [
        ("seller", state.seller_id.to_string()),
        ("starting_price", state.starting_price.to_string()),
        ("min_increment", state.min_increment.to_string()),
        ("starts_at", state.starts_at.timestamp_micros().to_string()),
        ("ends_at", state.ends_at.timestamp_micros().to_string()),
        ("extend_seconds", state.extend_seconds.to_string()),
        ("current_price", state.current_price.to_string()),
        ("high_bidder", state.high_bidder.map(|id| id.to_string()).unwrap_or_default()),
        ("bid_count", state.bid_count.to_string()),
        ("closed", if state.closed { "1" } else { "0" }.to_owned()),
    ]
}

fn decode(id: Uuid, fields: &HashMap<String, String>) -> Option<AuctionState> {
    let text = |name: &str| fields.get(name).map(String::as_str);
    let int = |name: &str| text(name)?.parse::<i64>().ok();
    let time = |name: &str| DateTime::<Utc>::from_timestamp_micros(int(name)?);
    let high_bidder = match text("high_bidder")? {
        "" => None,
        bidder => Some(Uuid::parse_str(bidder).ok()?),
    };
    let closed = match text("closed")? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    Some(AuctionState {
        id,
        seller_id: Uuid::parse_str(text("seller")?).ok()?,
        starting_price: int("starting_price")?,
        min_increment: int("min_increment")?,
        starts_at: time("starts_at")?,
        ends_at: time("ends_at")?,
        extend_seconds: int("extend_seconds")?,
        current_price: int("current_price")?,
        high_bidder,
        bid_count: int("bid_count")?,
        closed,
    })
}

fn decode_bid_reply(reply: &[Value]) -> Result<RedisBidResult, EngineError> {
    let malformed = || EngineError::Internal(format!("unexpected reply from place_bid: {reply:?}"));
    let int = |index: usize| match reply.get(index) {
        Some(Value::Int(value)) => Some(*value),
        Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        _ => None,
    };
    let text = |index: usize| match reply.get(index) {
        Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok(),
        Some(Value::SimpleString(text)) => Some(text.as_str()),
        _ => None,
    };
    match int(0) {
        Some(1) => {
            let ends_at = int(3).and_then(DateTime::<Utc>::from_timestamp_micros);
            match (int(1), int(2), ends_at, int(4)) {
                (Some(seq), Some(current_price), Some(ends_at), Some(extended)) => {
                    Ok(RedisBidResult::Accepted {
                        seq,
                        current_price,
                        ends_at,
                        extended: extended == 1,
                    })
                }
                _ => Err(malformed()),
            }
        }
        Some(0) => {
            let rejection = match text(1) {
                Some("not_started") => Rejection::NotStarted,
                Some("ended") => Rejection::Ended,
                Some("own_auction") => Rejection::OwnAuction,
                Some("too_low") => Rejection::TooLow { min_amount: int(2).ok_or_else(malformed)? },
                _ => return Err(malformed()),
            };
            Ok(RedisBidResult::Rejected(rejection))
        }
        Some(-1) => Ok(RedisBidResult::Missing),
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn state() -> AuctionState {
        AuctionState {
            id: Uuid::from_u128(1),
            seller_id: Uuid::from_u128(2),
            starting_price: 100,
            min_increment: 10,
            starts_at: Utc.timestamp_opt(1_800_000_000, 123_456_000).unwrap(),
            ends_at: Utc.timestamp_opt(1_800_000_600, 0).unwrap(),
            extend_seconds: 30,
            current_price: 150,
            high_bidder: Some(Uuid::from_u128(3)),
            bid_count: 2,
            closed: false,
        }
    }

    #[test]
    fn the_hash_round_trips() {
        for high_bidder in [None, Some(Uuid::from_u128(3))] {
            let state = AuctionState { high_bidder, closed: high_bidder.is_none(), ..state() };
            let fields: HashMap<String, String> =
                encode(&state).into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
            assert_eq!(decode(state.id, &fields), Some(state));
        }
    }

    #[test]
    fn a_malformed_hash_is_not_a_state() {
        let mut fields: HashMap<String, String> =
            encode(&state()).into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
        fields.insert("closed".into(), "yes".into());
        assert_eq!(decode(Uuid::from_u128(1), &fields), None);
        fields.remove("closed");
        assert_eq!(decode(Uuid::from_u128(1), &fields), None);
    }

    #[test]
    fn keys_of_one_shard_share_a_hash_tag() {
        let auctions_key =
            |shards: u16, id: Uuid| format!("surge:{{s{}}}:auction:{id}", shard_of(id, shards));
        let id = Uuid::from_u128(1);
        assert_eq!(auctions_key(16, id), format!("surge:{{s2}}:auction:{id}"));
        assert_eq!(RedisAuctions::events_key(2), "surge:{s2}:events");
    }

    #[test]
    fn bid_replies_decode() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let ends_at = DateTime::<Utc>::from_timestamp_micros(1_800_000_000_000_001).unwrap();
        assert_eq!(
            decode_bid_reply(&[
                Value::Int(1),
                Value::Int(3),
                Value::Int(250),
                Value::Int(1_800_000_000_000_001),
                Value::Int(1)
            ])
            .unwrap(),
            RedisBidResult::Accepted { seq: 3, current_price: 250, ends_at, extended: true }
        );
        assert_eq!(
            decode_bid_reply(&[Value::Int(0), bulk("too_low"), Value::Int(160)]).unwrap(),
            RedisBidResult::Rejected(Rejection::TooLow { min_amount: 160 })
        );
        assert_eq!(
            decode_bid_reply(&[Value::Int(0), bulk("own_auction"), Value::Int(0)]).unwrap(),
            RedisBidResult::Rejected(Rejection::OwnAuction)
        );
        assert_eq!(decode_bid_reply(&[Value::Int(-1)]).unwrap(), RedisBidResult::Missing);
        assert!(decode_bid_reply(&[Value::Int(0), bulk("bogus"), Value::Int(0)]).is_err());
        assert!(decode_bid_reply(&[]).is_err());
    }
}
