//! Shard stream entries: what the scripts append, decoded once for the persister, the
//! fan-out and history reads.
//!
//! Every entry has `type`, `auction_id`, `event_id` and `seq`. By type:
//! - `bid`: `bidder`, `nickname`, `amount`, `placed_at` and `ends_at` (the auction's end right
//!   after the bid), times in microseconds since the Unix epoch;
//! - `extended`: the same fields as the bid that caused it;
//! - `closed`: `winner` (empty for none), `winner_nickname`, `final_price`, `closed_at`.
//!
//! Cinema entries have `type`, `screening_id`, `event_id` (the reservation id), `user_id`,
//! `seats` (`B3,B4`) and `at` (µs); the types are `reserved` and `cancelled`.

use chrono::{DateTime, Utc};
use surge_core::accounts::UserRef;
use surge_store::auctions::BidRecord;
use surge_store::events::PersistedEvent;
use uuid::Uuid;

use crate::auctions::{AcceptedBid, FeedEvent};

/// An entry as Redis returns it: its id and its fields, flattened (`name, value, …`).
pub type RawEntry = (String, Vec<String>);

/// One event of a shard stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardEvent {
    Bid {
        bid: AcceptedBid,
        /// The auction's end right after the bid.
        ends_at: DateTime<Utc>,
    },
    Extended {
        auction_id: Uuid,
        seq: i64,
        ends_at: DateTime<Utc>,
    },
    Closed {
        auction_id: Uuid,
        seq: i64,
        winner: Option<UserRef>,
        final_price: i64,
        closed_at: DateTime<Utc>,
    },
    Reserved {
        reservation_id: Uuid,
        screening_id: Uuid,
        user_id: Uuid,
        seats: String,
        at: DateTime<Utc>,
    },
    Cancelled {
        reservation_id: Uuid,
        screening_id: Uuid,
        at: DateTime<Utc>,
    },
}

impl ShardEvent {
    /// Decodes an entry's flattened fields; the error names what is wrong.
    pub fn decode(flat: &[String]) -> Result<Self, String> {
        let field = |name: &str| field(flat, name).ok_or_else(|| format!("no `{name}` field"));
        let int = |name: &str| {
            field(name)?.parse::<i64>().map_err(|_| format!("`{name}` is not an integer"))
        };
        let uuid = |name: &str| {
            Uuid::parse_str(field(name)?).map_err(|_| format!("`{name}` is not a UUID"))
        };
        let time = |name: &str| {
            DateTime::<Utc>::from_timestamp_micros(int(name)?)
                .ok_or_else(|| format!("`{name}` is out of range"))
        };
        let kind = field("type")?;
        if let "reserved" | "cancelled" = kind {
            let reservation_id = uuid("event_id")?;
            let screening_id = uuid("screening_id")?;
            let at = time("at")?;
            return Ok(match kind {
                "reserved" => ShardEvent::Reserved {
                    reservation_id,
                    screening_id,
                    user_id: uuid("user_id")?,
                    seats: field("seats")?.to_owned(),
                    at,
                },
                _ => ShardEvent::Cancelled { reservation_id, screening_id, at },
            });
        }
        let auction_id = uuid("auction_id")?;
        let seq = int("seq")?;
        match kind {
            "bid" => Ok(ShardEvent::Bid {
                bid: AcceptedBid {
                    id: uuid("event_id")?,
                    auction_id,
                    bidder: UserRef {
                        id: uuid("bidder")?,
                        nickname: field("nickname")?.to_owned(),
                    },
                    amount: int("amount")?,
                    seq,
                    placed_at: time("placed_at")?,
                },
                ends_at: time("ends_at")?,
            }),
            "extended" => Ok(ShardEvent::Extended { auction_id, seq, ends_at: time("ends_at")? }),
            "closed" => {
                let winner = match field("winner")? {
                    "" => None,
                    id => Some(UserRef {
                        id: Uuid::parse_str(id).map_err(|_| "`winner` is not a UUID".to_owned())?,
                        nickname: field("winner_nickname")?.to_owned(),
                    }),
                };
                Ok(ShardEvent::Closed {
                    auction_id,
                    seq,
                    winner,
                    final_price: int("final_price")?,
                    closed_at: time("closed_at")?,
                })
            }
            other => Err(format!("unknown event type `{other}`")),
        }
    }

    /// The event as an auction's subscribers receive it; `None` for cinema events.
    pub fn to_feed(&self) -> Option<FeedEvent> {
        match self {
            ShardEvent::Bid { bid, ends_at } => Some(FeedEvent::bid(bid, bid.amount, *ends_at)),
            ShardEvent::Extended { auction_id, seq, ends_at } => {
                Some(FeedEvent::extended(*auction_id, *seq, *ends_at))
            }
            ShardEvent::Closed { auction_id, seq, winner, final_price, .. } => {
                Some(FeedEvent::closed(*auction_id, *seq, winner.as_ref(), *final_price))
            }
            ShardEvent::Reserved { .. } | ShardEvent::Cancelled { .. } => None,
        }
    }

    /// What PostgreSQL keeps of the event; an extension is already part of its bid.
    pub fn to_persisted(&self) -> Option<PersistedEvent> {
        match self {
            ShardEvent::Bid { bid, ends_at } => Some(PersistedEvent::Bid {
                event_id: bid.id,
                auction_id: bid.auction_id,
                seq: bid.seq,
                bidder_id: bid.bidder.id,
                amount: bid.amount,
                placed_at: bid.placed_at,
                ends_at: *ends_at,
            }),
            ShardEvent::Extended { .. } => None,
            ShardEvent::Closed { auction_id, closed_at, .. } => {
                Some(PersistedEvent::Closed { auction_id: *auction_id, closed_at: *closed_at })
            }
            ShardEvent::Reserved { reservation_id, screening_id, user_id, seats, at } => {
                Some(PersistedEvent::Reserved {
                    reservation_id: *reservation_id,
                    screening_id: *screening_id,
                    user_id: *user_id,
                    seats: seats.clone(),
                    at: *at,
                })
            }
            ShardEvent::Cancelled { reservation_id, at, .. } => {
                Some(PersistedEvent::Cancelled { reservation_id: *reservation_id, at: *at })
            }
        }
    }

    /// The bid as history reads show it; `None` for other events.
    pub fn to_bid_record(&self) -> Option<BidRecord> {
        match self {
            ShardEvent::Bid { bid, .. } => Some(BidRecord {
                id: bid.id,
                auction_id: bid.auction_id,
                bidder: bid.bidder.clone(),
                amount: bid.amount,
                seq: bid.seq,
                placed_at: bid.placed_at,
            }),
            _ => None,
        }
    }
}

/// The value of field `name` in an entry's flattened fields.
fn field<'a>(flat: &'a [String], name: &str) -> Option<&'a str> {
    flat.chunks_exact(2).find(|pair| pair[0] == name).map(|pair| pair[1].as_str())
}

/// The auction an entry is about, without decoding the rest.
pub fn auction_of(flat: &[String]) -> Option<Uuid> {
    Uuid::parse_str(field(flat, "auction_id")?).ok()
}

/// Whether an entry is about `auction_id` (as text), without decoding anything.
pub fn is_about(flat: &[String], auction_id: &str) -> bool {
    field(flat, "auction_id") == Some(auction_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> Vec<String> {
        pairs.iter().flat_map(|(name, value)| [name.to_string(), value.to_string()]).collect()
    }

    #[test]
    fn a_bid_entry_decodes_into_every_view() {
        let auction = Uuid::from_u128(1);
        let bid = Uuid::from_u128(2);
        let bidder = Uuid::from_u128(3);
        let entry = flat(&[
            ("type", "bid"),
            ("auction_id", &auction.to_string()),
            ("event_id", &bid.to_string()),
            ("seq", "4"),
            ("bidder", &bidder.to_string()),
            ("nickname", "ana"),
            ("amount", "1200"),
            ("placed_at", "1800000000000001"),
            ("ends_at", "1800000060000000"),
        ]);
        let event = ShardEvent::decode(&entry).unwrap();
        assert!(is_about(&entry, &auction.to_string()));
        let record = event.to_bid_record().unwrap();
        assert_eq!((record.id, record.seq, record.amount), (bid, 4, 1200));
        assert_eq!(record.bidder.nickname, "ana");
        assert!(matches!(
            event.to_persisted(),
            Some(PersistedEvent::Bid { seq: 4, amount: 1200, .. })
        ));
        let feed = event.to_feed().unwrap();
        assert_eq!(feed.seq, 4);
        assert!(feed.data().contains("\"current_price\":1200"));
    }

    #[test]
    fn a_closed_entry_without_a_winner_decodes() {
        let auction = Uuid::from_u128(1);
        let entry = flat(&[
            ("type", "closed"),
            ("auction_id", &auction.to_string()),
            ("event_id", "x:closed"),
            ("seq", "0"),
            ("winner", ""),
            ("winner_nickname", ""),
            ("final_price", "100"),
            ("closed_at", "1800000000000000"),
        ]);
        let event = ShardEvent::decode(&entry).unwrap();
        assert!(matches!(event, ShardEvent::Closed { winner: None, final_price: 100, .. }));
        assert!(event.to_bid_record().is_none());
    }

    #[test]
    fn reservation_entries_decode_for_the_persister_only() {
        let (reservation, screening, user) =
            (Uuid::from_u128(5), Uuid::from_u128(6), Uuid::from_u128(7));
        let entry = flat(&[
            ("type", "reserved"),
            ("screening_id", &screening.to_string()),
            ("event_id", &reservation.to_string()),
            ("user_id", &user.to_string()),
            ("seats", "B3,B4"),
            ("at", "1800000000000000"),
        ]);
        let event = ShardEvent::decode(&entry).unwrap();
        assert!(event.to_feed().is_none() && event.to_bid_record().is_none());
        assert_eq!(auction_of(&entry), None);
        assert!(matches!(
            event.to_persisted(),
            Some(PersistedEvent::Reserved { seats, reservation_id, .. })
                if seats == "B3,B4" && reservation_id == reservation
        ));
        let cancelled = flat(&[
            ("type", "cancelled"),
            ("screening_id", &screening.to_string()),
            ("event_id", &reservation.to_string()),
            ("user_id", &user.to_string()),
            ("seats", "B3,B4"),
            ("at", "1800000000000001"),
        ]);
        assert!(matches!(
            ShardEvent::decode(&cancelled).unwrap().to_persisted(),
            Some(PersistedEvent::Cancelled { reservation_id, .. }) if reservation_id == reservation
        ));
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let no_type = flat(&[("auction_id", &Uuid::nil().to_string()), ("seq", "1")]);
        assert_eq!(ShardEvent::decode(&no_type).unwrap_err(), "no `type` field");
        let bad_seq =
            flat(&[("type", "bid"), ("auction_id", &Uuid::nil().to_string()), ("seq", "x")]);
        assert_eq!(ShardEvent::decode(&bad_seq).unwrap_err(), "`seq` is not an integer");
    }
}
