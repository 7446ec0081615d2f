//! Shard stream entries: what the scripts append, decoded once into the rules' own events
//! ([`AppEvent`]) for the persister, the fan-out and history reads.
//!
//! Every entry has `type` and `event_id`, and names its entity: auction entries by
//! `auction_id`, cinema entries by `screening_id`. Times are microseconds since the Unix epoch.
//! - `bid`: `seq`, `bidder`, `nickname`, `amount`, `placed_at` and `ends_at` (the auction's end
//!   right after the bid); `extended`: the same fields as the bid that caused it; `closed`:
//!   `seq`, `winner` (empty for none), `winner_nickname`, `final_price`, `closed_at`.
//! - `reserved` and `cancelled`: `event_id` is the reservation id, with `user_id`, `seats`
//!   (`B3,B4`) and `at`.
//!
//! Each app decodes its own entries (in its module); [`decode`] picks the app by `type`.

use chrono::{DateTime, Utc};
use surge_core::events::AppEvent;
use uuid::Uuid;

/// An entry as Redis returns it: its id and its fields, flattened (`name, value, …`).
pub type RawEntry = (String, Vec<String>);

/// Decodes an entry's flattened fields; the error names what is wrong.
pub fn decode(flat: &[String]) -> Result<AppEvent, String> {
    let fields = Fields(flat);
    match fields.text("type")? {
        "bid" | "extended" | "closed" => {
            super::auctions::decode_event(fields).map(AppEvent::Auction)
        }
        "reserved" | "cancelled" => super::cinema::decode_event(fields).map(AppEvent::Cinema),
        "order_confirmed" | "order_cancelled" | "order_picked_up" => {
            super::deals::decode_order_event(fields).map(AppEvent::Order)
        }
        "points_debited" | "points_credited" | "points_topped_up" => {
            super::deals::decode_points_event(fields).map(AppEvent::Points)
        }
        other => Err(format!("unknown event type `{other}`")),
    }
}

/// An entry's fields, read by name; each reader's error names the field.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a>(pub &'a [String]);

impl<'a> Fields<'a> {
    /// The value of field `name`, if the entry has one.
    pub fn get(self, name: &str) -> Option<&'a str> {
        self.0.chunks_exact(2).find(|pair| pair[0] == name).map(|pair| pair[1].as_str())
    }

    pub fn text(self, name: &str) -> Result<&'a str, String> {
        self.get(name).ok_or_else(|| format!("no `{name}` field"))
    }

    pub fn int(self, name: &str) -> Result<i64, String> {
        self.text(name)?.parse::<i64>().map_err(|_| format!("`{name}` is not an integer"))
    }

    pub fn uuid(self, name: &str) -> Result<Uuid, String> {
        Uuid::parse_str(self.text(name)?).map_err(|_| format!("`{name}` is not a UUID"))
    }

    pub fn time(self, name: &str) -> Result<DateTime<Utc>, String> {
        DateTime::<Utc>::from_timestamp_micros(self.int(name)?)
            .ok_or_else(|| format!("`{name}` is out of range"))
    }
}

/// The auction an entry is about, without decoding the rest.
pub fn auction_of(flat: &[String]) -> Option<Uuid> {
    Uuid::parse_str(Fields(flat).get("auction_id")?).ok()
}

/// Whether an entry is about `auction_id` (as text), without decoding anything.
pub fn is_about(flat: &[String], auction_id: &str) -> bool {
    Fields(flat).get("auction_id") == Some(auction_id)
}

#[cfg(test)]
mod tests {
    use surge_core::accounts::UserRef;
    use surge_core::auctions::AuctionEvent;
    use surge_core::cinema::{ReservationEvent, Seat};
    use surge_core::events::Event;

    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> Vec<String> {
        pairs.iter().flat_map(|(name, value)| [name.to_string(), value.to_string()]).collect()
    }

    fn micros(at: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_micros(at).unwrap()
    }

    #[test]
    fn a_bid_entry_decodes_into_the_rules_event() {
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
        assert!(is_about(&entry, &auction.to_string()));
        assert_eq!(auction_of(&entry), Some(auction));
        let expected = AuctionEvent::BidPlaced {
            bid_id: bid,
            bidder: UserRef { id: bidder, nickname: "ana".into() },
            amount: 1200,
            seq: 4,
            placed_at: micros(1_800_000_000_000_001),
            ends_at: micros(1_800_000_060_000_000),
        };
        assert_eq!(decode(&entry).unwrap(), AppEvent::Auction(Event::new(auction, expected)));
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
        let expected = AuctionEvent::Closed {
            seq: 0,
            winner: None,
            final_price: 100,
            closed_at: micros(1_800_000_000_000_000),
        };
        assert_eq!(decode(&entry).unwrap(), AppEvent::Auction(Event::new(auction, expected)));
    }

    #[test]
    fn reservation_entries_decode_into_the_rules_events() {
        let (reservation, screening, user) =
            (Uuid::from_u128(5), Uuid::from_u128(6), Uuid::from_u128(7));
        let seats = vec![Seat { row: 1, col: 3 }, Seat { row: 1, col: 4 }];
        let entry = flat(&[
            ("type", "reserved"),
            ("screening_id", &screening.to_string()),
            ("event_id", &reservation.to_string()),
            ("user_id", &user.to_string()),
            ("seats", "B3,B4"),
            ("at", "1800000000000000"),
        ]);
        assert_eq!(auction_of(&entry), None);
        let reserved = ReservationEvent::Reserved {
            reservation_id: reservation,
            user_id: user,
            seats: seats.clone(),
            at: micros(1_800_000_000_000_000),
        };
        assert_eq!(decode(&entry).unwrap(), AppEvent::Cinema(Event::new(screening, reserved)));
        let cancelled = flat(&[
            ("type", "cancelled"),
            ("screening_id", &screening.to_string()),
            ("event_id", &reservation.to_string()),
            ("user_id", &user.to_string()),
            ("seats", "B3,B4"),
            ("at", "1800000000000001"),
        ]);
        let expected = ReservationEvent::Cancelled {
            reservation_id: reservation,
            user_id: user,
            seats,
            at: micros(1_800_000_000_000_001),
        };
        assert_eq!(decode(&cancelled).unwrap(), AppEvent::Cinema(Event::new(screening, expected)));
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let no_type = flat(&[("auction_id", &Uuid::nil().to_string()), ("seq", "1")]);
        assert_eq!(decode(&no_type).unwrap_err(), "no `type` field");
        let bad_seq =
            flat(&[("type", "bid"), ("auction_id", &Uuid::nil().to_string()), ("seq", "x")]);
        assert_eq!(decode(&bad_seq).unwrap_err(), "`seq` is not an integer");
        let unknown = flat(&[("type", "teleported")]);
        assert_eq!(decode(&unknown).unwrap_err(), "unknown event type `teleported`");
    }
}
