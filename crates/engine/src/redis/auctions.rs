//! Auction hot state in Redis and the scripts that change it.
//!
//! Keys of an auction in shard `s` (one Cluster slot per shard), under the deployment's prefix
//! (named in [`super::keys`]):
//! - `<prefix>:{s<s>}:auction:<id>`: a hash with the [`AuctionState`] fields (`seller`,
//!   `starting_price`, `min_increment`, `starts_at` and `ends_at` in microseconds since the Unix
//!   epoch, `extend_seconds`, `current_price`, `high_bidder` (empty for none),
//!   `high_bidder_nickname`, `bid_count`, `closed` (`0`/`1`)).
//! - `<prefix>:{s<s>}:events`: the shard's stream (see [`super::stream`] for its entries).
//! - `<prefix>:{s<s>}:persisted`: the id of the last stream entry applied to PostgreSQL.
//! - `<prefix>:{s<s>}:idem:<user>:<key>`: the first outcome of a keyed bid, for 24 hours.

use std::collections::HashMap;
use std::sync::LazyLock;

use ::redis::{Script, Value};
use chrono::{DateTime, Utc};
use surge_core::MAX_MONEY;
use surge_core::accounts::UserRef;
use surge_core::auctions::{AuctionEvent, AuctionState, Rejection};
use surge_core::events::Event;
use uuid::Uuid;

use super::hot_state::{HotState, LoadResult, load_hot_state};
use super::idempotency::{self, WINDOW_MS};
use super::scripts::{self, Reply};
use super::shards::Shards;
use super::stream::Fields;
use super::time::reading;
use crate::EngineError;
use crate::auctions::PlaceBid;
use crate::clock::AuthorityTime;

/// How long a closed auction's hot state stays; later reads rebuild it from PostgreSQL.
const CLOSED_RETENTION_MS: i64 = 3600 * 1000;

static PLACE_BID: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/place_bid.lua")));
static CLOSE_AUCTION: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/close_auction.lua")));

/// An accepted bid as the script reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedReply {
    pub bid_id: Uuid,
    pub amount: i64,
    pub seq: i64,
    /// The auction right after the bid.
    pub current_price: i64,
    pub ends_at: DateTime<Utc>,
    /// Whether the bid pushed the end back.
    pub extended: bool,
    pub placed_at: DateTime<Utc>,
}

/// The outcome of [`RedisAuctions::place_bid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisBidResult {
    Accepted(AcceptedReply),
    Rejected(Rejection),
    /// Redis holds no hot state for this auction.
    Missing,
    /// A retried keyed request: the outcome it got the first time.
    Replayed(Box<RedisBidResult>),
    /// The `Idempotency-Key` was used before with a different request.
    KeyReused,
}

/// What a bid reply says about the auction's live state: while `now < ends_at`, a bid below
/// `min_amount` by anyone but `seller` is certainly too low (prices only rise, ends only move
/// later), so a replica may refuse it without asking Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    pub min_amount: i64,
    pub ends_at: DateTime<Utc>,
    pub seller: Uuid,
}

/// The outcome of [`RedisAuctions::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseResult {
    Closed,
    /// Not ended yet, or already closed.
    NothingToDo,
    Missing,
}

/// Auction hot state and commands on Redis, one shard per Cluster slot.
#[derive(Clone)]
pub struct RedisAuctions {
    pub shards: Shards,
}

impl RedisAuctions {
    pub fn new(shards: Shards) -> Self {
        Self { shards }
    }

    /// Creates the hot state of an auction from a persisted copy. `persisted` is the shard's
    /// persisted position read *before* the copy (see [`Shards::persisted_position`]); the
    /// script refuses with [`LoadResult::Stale`] when the stream holds later events of this
    /// auction, so a rebuilt key can never be behind what was acknowledged.
    pub async fn load(
        &self,
        state: &AuctionState,
        persisted: &str,
    ) -> Result<LoadResult, EngineError> {
        let fields = encode(state);
        // A closed auction's key lives as long as after `close_auction.lua`, however it is made.
        let ttl_ms = if state.closed { CLOSED_RETENTION_MS } else { 0 };
        let key = self.shards.keys.auction(state.id);
        let hot = HotState { key, id_field: "auction_id", entity: state.id, ttl_ms, fields };
        load_hot_state(&self.shards, hot, persisted).await
    }

    /// Decides and applies a bid atomically, exactly as [`surge_core::auctions::decide`] and
    /// [`surge_core::auctions::apply`] would, and appends its events to the shard's stream.
    /// The time is the Redis server's (see [`super::time`]), kept to the microsecond.
    pub async fn place_bid(
        &self,
        bid: &PlaceBid,
        time: AuthorityTime,
    ) -> Result<RedisBidResult, EngineError> {
        Ok(self.place_bid_with_floor(bid, time).await?.0)
    }

    /// [`Self::place_bid`], plus the floor the reply reveals (for a fresh accept or too-low).
    pub async fn place_bid_with_floor(
        &self,
        bid: &PlaceBid,
        time: AuthorityTime,
    ) -> Result<(RedisBidResult, Option<Floor>), EngineError> {
        let mut replies = self.place_bids(&[bid], time).await?;
        Ok(replies.pop().expect("one reply per bid"))
    }

    /// Decides bids of one auction that arrived together in one script call, in order, each
    /// seeing the acceptances before it: one round trip (and one AOF write) for the batch.
    /// A keyed request must be alone in its call. Returns one reply per bid.
    pub async fn place_bids(
        &self,
        bids: &[&PlaceBid],
        time: AuthorityTime,
    ) -> Result<Vec<(RedisBidResult, Option<Floor>)>, EngineError> {
        let Some(first) = bids.first() else { return Ok(Vec::new()) };
        if bids.len() > 1 && bids.iter().any(|bid| bid.idempotency.is_some()) {
            return Err(EngineError::Internal("a keyed bid must be placed alone".into()));
        }
        // The script computes in doubles; money stays far inside their exact range.
        if let Some(bid) = bids.iter().find(|bid| bid.amount > MAX_MONEY) {
            return Err(EngineError::Internal(format!(
                "bid amount {} above {MAX_MONEY}",
                bid.amount
            )));
        }
        let auction_id = first.auction_id;
        let keys = &self.shards.keys;
        let shard = keys.shard_of(auction_id);
        let (record_key, request_hash) = idempotency::shard_record(
            &self.shards,
            shard,
            first.bidder.id,
            first.idempotency.as_ref(),
        );
        let mut invocation = PLACE_BID.key(keys.auction(auction_id));
        invocation
            .key(keys.events(shard))
            .key(record_key)
            .arg(auction_id.to_string())
            .arg(reading(time))
            .arg(request_hash)
            .arg(WINDOW_MS);
        for bid in bids {
            invocation
                .arg(bid.bid_id.to_string())
                .arg(bid.bidder.id.to_string())
                .arg(bid.amount)
                .arg(&bid.bidder.nickname);
        }
        let replies: Vec<Value> = self.shards.invoke(&invocation).await?;
        if replies.len() != bids.len() {
            return Err(EngineError::Internal(format!(
                "place_bid answered {} replies for {} bids",
                replies.len(),
                bids.len()
            )));
        }
        replies
            .iter()
            .map(|reply| {
                let reply = Reply::of(reply)?;
                Ok((decode_bid_reply(reply)?, floor(reply)))
            })
            .collect()
    }

    /// Announces the result of an auction whose end has passed: sets it closed and appends the
    /// `closed` event, atomically.
    pub async fn close(
        &self,
        auction_id: Uuid,
        time: AuthorityTime,
    ) -> Result<CloseResult, EngineError> {
        let keys = &self.shards.keys;
        let mut invocation = CLOSE_AUCTION.key(keys.auction(auction_id));
        invocation
            .key(keys.events(keys.shard_of(auction_id)))
            .arg(auction_id.to_string())
            .arg(reading(time))
            .arg(CLOSED_RETENTION_MS);
        scripts::call(&self.shards.conn, &invocation, |reply| match reply.word() {
            Some("closed") => Ok(CloseResult::Closed),
            Some("nothing") => Ok(CloseResult::NothingToDo),
            Some("missing") => Ok(CloseResult::Missing),
            _ => Err(reply.malformed("close_auction")),
        })
        .await
    }

    /// Reads an auction's hot state back; `None` when Redis holds none.
    pub async fn state(&self, auction_id: Uuid) -> Result<Option<AuctionState>, EngineError> {
        let key = self.shards.keys.auction(auction_id);
        let fields = self.shards.hash(&key).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let state = decode(auction_id, &fields).ok_or_else(|| {
            EngineError::Internal(format!("malformed auction hot state at {key}: {fields:?}"))
        })?;
        Ok(Some(state))
    }
}

/// Decodes an auction entry of the shard stream (see [`super::stream`]).
pub(crate) fn decode_event(fields: Fields<'_>) -> Result<Event<AuctionEvent>, String> {
    let auction_id = fields.uuid("auction_id")?;
    let seq = fields.int("seq")?;
    let body = match fields.text("type")? {
        "bid" => AuctionEvent::BidPlaced {
            bid_id: fields.uuid("event_id")?,
            bidder: UserRef {
                id: fields.uuid("bidder")?,
                nickname: fields.text("nickname")?.into(),
            },
            amount: fields.int("amount")?,
            seq,
            placed_at: fields.time("placed_at")?,
            ends_at: fields.time("ends_at")?,
        },
        "extended" => AuctionEvent::Extended { seq, ends_at: fields.time("ends_at")? },
        "closed" => {
            let winner = match fields.text("winner")? {
                "" => None,
                _ => Some(UserRef {
                    id: fields.uuid("winner")?,
                    nickname: fields.text("winner_nickname")?.into(),
                }),
            };
            let final_price = fields.int("final_price")?;
            AuctionEvent::Closed { seq, winner, final_price, closed_at: fields.time("closed_at")? }
        }
        other => return Err(format!("`{other}` is not an auction event")),
    };
    Ok(Event::new(auction_id, body))
}

fn encode(state: &AuctionState) -> [(&'static str, String); 11] {
    [
        ("seller", state.seller_id.to_string()),
        ("starting_price", state.starting_price.to_string()),
        ("min_increment", state.min_increment.to_string()),
        ("starts_at", state.starts_at.timestamp_micros().to_string()),
        ("ends_at", state.ends_at.timestamp_micros().to_string()),
        ("extend_seconds", state.extend_seconds.to_string()),
        ("current_price", state.current_price.to_string()),
        ("high_bidder", state.high_bidder.as_ref().map(|b| b.id.to_string()).unwrap_or_default()),
        (
            "high_bidder_nickname",
            state.high_bidder.as_ref().map(|b| b.nickname.clone()).unwrap_or_default(),
        ),
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
        bidder => Some(UserRef {
            id: Uuid::parse_str(bidder).ok()?,
            nickname: text("high_bidder_nickname").unwrap_or_default().to_owned(),
        }),
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

/// The floor in a fresh accepted (`{'accepted', …, next minimum, seller}`) or too-low
/// (`{'too_low', min, ends_at, seller}`) reply.
fn floor(reply: Reply<'_>) -> Option<Floor> {
    let (min_at, ends_at_at, seller_at) = match reply.word()? {
        "accepted" => (8, 3, 9),
        "too_low" => (1, 2, 3),
        _ => return None,
    };
    Some(Floor {
        min_amount: reply.int(min_at)?,
        ends_at: reply.time(ends_at_at)?,
        seller: reply.uuid(seller_at)?,
    })
}

fn decode_bid_reply(reply: Reply<'_>) -> Result<RedisBidResult, EngineError> {
    let malformed = || reply.malformed("place_bid");
    let rejected = |rejection| Ok(RedisBidResult::Rejected(rejection));
    match reply.word() {
        Some("accepted") => {
            let accepted = (|| {
                Some(AcceptedReply {
                    seq: reply.int(1)?,
                    current_price: reply.int(2)?,
                    ends_at: reply.time(3)?,
                    extended: reply.int(4)? == 1,
                    placed_at: reply.time(5)?,
                    bid_id: reply.uuid(6)?,
                    amount: reply.int(7)?,
                })
            })();
            accepted.map(RedisBidResult::Accepted).ok_or_else(malformed)
        }
        Some("not_started") => rejected(Rejection::NotStarted),
        Some("ended") => rejected(Rejection::Ended),
        Some("own_auction") => rejected(Rejection::OwnAuction),
        Some("too_low") => {
            rejected(Rejection::TooLow { min_amount: reply.int(1).ok_or_else(malformed)? })
        }
        Some("missing") => Ok(RedisBidResult::Missing),
        Some("reused") => Ok(RedisBidResult::KeyReused),
        Some("replay") => match decode_bid_reply(reply.rest())? {
            replayed @ (RedisBidResult::Accepted(_) | RedisBidResult::Rejected(_)) => {
                Ok(RedisBidResult::Replayed(Box::new(replayed)))
            }
            _ => Err(malformed()),
        },
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
            high_bidder: Some(UserRef { id: Uuid::from_u128(3), nickname: "c".into() }),
            bid_count: 2,
            closed: false,
        }
    }

    #[test]
    fn the_hash_round_trips() {
        for high_bidder in [None, state().high_bidder] {
            let closed = high_bidder.is_none();
            let state = AuctionState { high_bidder, closed, ..state() };
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

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn bid_reply(values: &[Value]) -> Result<RedisBidResult, EngineError> {
        decode_bid_reply(Reply(values))
    }

    #[test]
    fn bid_replies_decode() {
        let ends_at = DateTime::<Utc>::from_timestamp_micros(1_800_000_000_000_001).unwrap();
        let placed_at = DateTime::<Utc>::from_timestamp_micros(1_799_999_990_000_000).unwrap();
        let bid_id = Uuid::from_u128(9);
        let accepted = AcceptedReply {
            bid_id,
            amount: 250,
            seq: 3,
            current_price: 250,
            ends_at,
            extended: true,
            placed_at,
        };
        let fresh = vec![
            bulk("accepted"),
            Value::Int(3),
            Value::Int(250),
            Value::Int(1_800_000_000_000_001),
            Value::Int(1),
            Value::Int(1_799_999_990_000_000),
            bulk(&bid_id.to_string()),
            Value::Int(250),
        ];
        assert_eq!(bid_reply(&fresh).unwrap(), RedisBidResult::Accepted(accepted.clone()));
        // A replay carries the stored outcome, its numbers as text.
        let replayed = [
            "replay",
            "accepted",
            "3",
            "250",
            "1800000000000001",
            "1",
            "1799999990000000",
            &bid_id.to_string(),
            "250",
        ]
        .map(bulk);
        assert_eq!(
            bid_reply(&replayed).unwrap(),
            RedisBidResult::Replayed(Box::new(RedisBidResult::Accepted(accepted)))
        );
        assert_eq!(bid_reply(&[bulk("reused")]).unwrap(), RedisBidResult::KeyReused);
        assert_eq!(
            bid_reply(&[bulk("too_low"), Value::Int(160)]).unwrap(),
            RedisBidResult::Rejected(Rejection::TooLow { min_amount: 160 })
        );
        assert_eq!(
            bid_reply(&[bulk("own_auction")]).unwrap(),
            RedisBidResult::Rejected(Rejection::OwnAuction)
        );
        assert_eq!(bid_reply(&[bulk("missing")]).unwrap(), RedisBidResult::Missing);
        assert!(bid_reply(&[bulk("bogus")]).is_err());
        assert!(bid_reply(&[bulk("replay"), bulk("missing")]).is_err());
        assert!(bid_reply(&[bulk("accepted"), Value::Int(3)]).is_err());
        assert!(bid_reply(&[]).is_err());
    }

    #[test]
    fn fresh_replies_reveal_the_floor_and_replays_do_not() {
        let seller = Uuid::from_u128(7);
        let ends_at = DateTime::<Utc>::from_timestamp_micros(1_800_000_000_000_000).unwrap();
        let too_low = [
            bulk("too_low"),
            Value::Int(160),
            Value::Int(1_800_000_000_000_000),
            bulk(&seller.to_string()),
        ];
        assert_eq!(floor(Reply(&too_low)), Some(Floor { min_amount: 160, ends_at, seller }));
        let mut accepted = vec![bulk("accepted"), Value::Int(3), Value::Int(250)];
        accepted.extend([Value::Int(1_800_000_000_000_000), Value::Int(0), Value::Int(1)]);
        accepted.extend([bulk(&Uuid::from_u128(9).to_string()), Value::Int(250), Value::Int(260)]);
        accepted.push(bulk(&seller.to_string()));
        assert_eq!(floor(Reply(&accepted)), Some(Floor { min_amount: 260, ends_at, seller }));
        assert_eq!(floor(Reply(&[bulk("ended")])), None);
        let mut replayed = vec![bulk("replay")];
        replayed.extend(accepted);
        assert_eq!(floor(Reply(&replayed)), None);
    }
}
