//! Auction rules: creating an auction and deciding bids.
//!
//! The bid rule is a pure state machine. [`decide`] looks at an auction's hot state, a command
//! and the time, and either rejects the command or returns the events it causes; [`apply`] folds
//! an event into the state. Engines call `decide` then `apply` atomically per auction; because
//! nothing else may change the state, `seq` stays gap-free and prices only go up.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::MAX_MONEY;
use crate::accounts::UserRef;
use crate::validation::{FieldErrors, char_len};

pub const TITLE_MAX: usize = 120;
pub const DESCRIPTION_MAX: usize = 5000;
pub const EXTEND_SECONDS_MAX: i64 = 600;
pub const MAX_DURATION_DAYS: i64 = 30;
pub const MAX_IMAGES: usize = 10;
/// Longest title search (`q`), in characters.
pub const MAX_SEARCH_CHARS: usize = 120;

/// Where an auction is in its life, derived from its times (and nothing else, so every replica
/// computes the same answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuctionStatus {
    Upcoming,
    Live,
    Ended,
}

impl AuctionStatus {
    /// Live from `starts_at` (inclusive) to `ends_at` (exclusive).
    pub fn at(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        if now < starts_at {
            Self::Upcoming
        } else if now < ends_at {
            Self::Live
        } else {
            Self::Ended
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "upcoming" => Some(Self::Upcoming),
            "live" => Some(Self::Live),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }
}

/// What a seller asks for, before validation. Optional fields take the API's defaults.
#[derive(Debug, Clone, Default)]
pub struct AuctionDraft {
    pub title: String,
    pub description: String,
    pub starting_price: i64,
    pub min_increment: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    pub extend_seconds: Option<i64>,
    pub image_ids: Vec<Uuid>,
}

/// A draft that passed every creation rule, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAuction {
    pub title: String,
    pub description: String,
    pub starting_price: i64,
    pub min_increment: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub extend_seconds: i64,
    pub image_ids: Vec<Uuid>,
}

/// Checks every creation rule of the API at once, so a client sees all its mistakes together.
/// Ownership of `image_ids` needs the database and is checked by the caller.
pub fn validate_draft(
    draft: AuctionDraft,
    now: DateTime<Utc>,
) -> Result<ValidAuction, FieldErrors> {
    let mut errors = FieldErrors::new();
    // The length counts what was sent; the stored title is trimmed and must not be empty.
    let title = draft.title.trim().to_owned();
    if title.is_empty() || char_len(&draft.title) > TITLE_MAX {
        errors.add("title", format!("must be 1 to {TITLE_MAX} characters"));
    }
    if char_len(&draft.description) > DESCRIPTION_MAX {
        errors.add("description", format!("must be at most {DESCRIPTION_MAX} characters"));
    }
    if !(0..=MAX_MONEY).contains(&draft.starting_price) {
        errors.add("starting_price", format!("must be between 0 and {MAX_MONEY}"));
    }
    let min_increment = draft.min_increment.unwrap_or(1);
    if !(1..=MAX_MONEY).contains(&min_increment) {
        errors.add("min_increment", format!("must be between 1 and {MAX_MONEY}"));
    }
    let starts_at = draft.starts_at.unwrap_or(now);
    if draft.ends_at <= starts_at {
        errors.add("ends_at", "must be after starts_at");
    } else if draft.ends_at <= now {
        errors.add("ends_at", "must be in the future");
    } else if draft.ends_at - starts_at > Duration::days(MAX_DURATION_DAYS) {
        errors.add("ends_at", format!("must be at most {MAX_DURATION_DAYS} days after starts_at"));
    }
    let extend_seconds = draft.extend_seconds.unwrap_or(0);
    if !(0..=EXTEND_SECONDS_MAX).contains(&extend_seconds) {
        errors.add("extend_seconds", format!("must be between 0 and {EXTEND_SECONDS_MAX}"));
    }
    let mut image_ids = draft.image_ids;
    if image_ids.len() > MAX_IMAGES {
        errors.add("image_ids", format!("at most {MAX_IMAGES} images"));
    }
    let unique = image_ids.len();
    image_ids.dedup();
    if image_ids.len() != unique {
        errors.add("image_ids", "must not repeat an image");
    }
    errors.into_result(ValidAuction {
        title,
        description: draft.description,
        starting_price: draft.starting_price,
        min_increment,
        starts_at,
        ends_at: draft.ends_at,
        extend_seconds,
        image_ids,
    })
}

/// Checks a bid's amount before it reaches the engine: 1 to [`MAX_MONEY`] minor units (the
/// Redis engine computes in doubles, exact far above this cap).
pub fn validate_bid_amount(amount: i64) -> Result<(), FieldErrors> {
    if (1..=MAX_MONEY).contains(&amount) {
        Ok(())
    } else {
        Err(FieldErrors::single("amount", format!("must be between 1 and {MAX_MONEY}")))
    }
}

/// The hot state of one auction: exactly what the bid rule needs, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionState {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub starting_price: i64,
    pub min_increment: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub extend_seconds: i64,
    /// Highest accepted bid, or `starting_price` while there is none.
    pub current_price: i64,
    /// Who placed the highest bid (as they were named then): the winner once it ends.
    pub high_bidder: Option<UserRef>,
    /// Number of accepted bids, which is also the `seq` of the latest one.
    pub bid_count: i64,
    /// Set once the closer has announced the result.
    pub closed: bool,
}

impl AuctionState {
    /// The lowest amount the next bid may have.
    pub fn min_next_bid(&self) -> i64 {
        if self.bid_count == 0 {
            self.starting_price
        } else {
            self.current_price.saturating_add(self.min_increment)
        }
    }

    pub fn status(&self, now: DateTime<Utc>) -> AuctionStatus {
        AuctionStatus::at(self.starts_at, self.ends_at, now)
    }
}

/// A request against one auction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuctionCommand {
    PlaceBid {
        bid_id: Uuid,
        bidder: UserRef,
        amount: i64,
    },
    /// Announce the result once the end time has passed.
    Close,
}

/// Something that happened to an auction: what subscribers see, what the shard stream carries
/// and what PostgreSQL applies. `seq` counts accepted bids from 1; the extension and the close
/// carry the seq of the latest bid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuctionEvent {
    /// An accepted bid; the price is now `amount`, and `ends_at` is the end right after it.
    BidPlaced {
        bid_id: Uuid,
        bidder: UserRef,
        amount: i64,
        seq: i64,
        placed_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    /// Anti-sniping: the bid `seq` came late and pushed the end back to `ends_at`.
    Extended { seq: i64, ends_at: DateTime<Utc> },
    /// The result, announced once the end has passed.
    Closed { seq: i64, winner: Option<UserRef>, final_price: i64, closed_at: DateTime<Utc> },
}

impl AuctionEvent {
    /// The seq of the latest bid when this happened (a reconnecting client's `Last-Event-ID`).
    pub fn seq(&self) -> i64 {
        match self {
            AuctionEvent::BidPlaced { seq, .. }
            | AuctionEvent::Extended { seq, .. }
            | AuctionEvent::Closed { seq, .. } => *seq,
        }
    }
}

/// Why a command was refused. Each maps to one API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    #[error("the auction has not started yet")]
    NotStarted,
    #[error("the auction has ended")]
    Ended,
    #[error("sellers cannot bid on their own auction")]
    OwnAuction,
    #[error("the bid is below the minimum of {min_amount}")]
    TooLow { min_amount: i64 },
    #[error("the auction has not reached its end time")]
    NotEnded,
    #[error("the auction is already closed")]
    AlreadyClosed,
}

/// Whether a bid of `amount` by `bidder_id` may be placed now: the acceptance half of the bid
/// rule, without building the bid's event (so a caller refusing certainly-too-low bids up
/// front needs no copy of the bidder's name).
pub fn check_bid(
    state: &AuctionState,
    bidder_id: Uuid,
    amount: i64,
    now: DateTime<Utc>,
) -> Result<(), Rejection> {
    match state.status(now) {
        AuctionStatus::Upcoming => return Err(Rejection::NotStarted),
        AuctionStatus::Ended => return Err(Rejection::Ended),
        AuctionStatus::Live if state.closed => return Err(Rejection::Ended),
        AuctionStatus::Live => {}
    }
    if bidder_id == state.seller_id {
        return Err(Rejection::OwnAuction);
    }
    let min_amount = state.min_next_bid();
    if amount < min_amount {
        return Err(Rejection::TooLow { min_amount });
    }
    Ok(())
}

/// The bid rule. Pure: same inputs, same answer, on every engine.
pub fn decide(
    state: &AuctionState,
    command: &AuctionCommand,
    now: DateTime<Utc>,
) -> Result<Vec<AuctionEvent>, Rejection> {
    match *command {
        AuctionCommand::PlaceBid { bid_id, ref bidder, amount } => {
            check_bid(state, bidder.id, amount, now)?;
            let seq = state.bid_count + 1;
            let window = Duration::seconds(state.extend_seconds);
            let extends = state.extend_seconds > 0
                && state.ends_at - now <= window
                && now + window > state.ends_at;
            let ends_at = if extends { now + window } else { state.ends_at };
            let placed = AuctionEvent::BidPlaced {
                bid_id,
                bidder: bidder.clone(),
                amount,
                seq,
                placed_at: now,
                ends_at,
            };
            let mut events = vec![placed];
            if extends {
                events.push(AuctionEvent::Extended { seq, ends_at });
            }
            Ok(events)
        }
        AuctionCommand::Close => {
            if state.closed {
                Err(Rejection::AlreadyClosed)
            } else if now < state.ends_at {
                Err(Rejection::NotEnded)
            } else {
                Ok(vec![AuctionEvent::Closed {
                    seq: state.bid_count,
                    winner: state.high_bidder.clone(),
                    final_price: state.current_price,
                    closed_at: now,
                }])
            }
        }
    }
}

/// Folds one event into the state. Events come only from [`decide`], so this cannot fail.
pub fn apply(state: &mut AuctionState, event: &AuctionEvent) {
    match event {
        AuctionEvent::BidPlaced { bidder, amount, seq, ends_at, .. } => {
            state.current_price = *amount;
            state.high_bidder = Some(bidder.clone());
            state.bid_count = *seq;
            state.ends_at = *ends_at;
        }
        AuctionEvent::Extended { ends_at, .. } => state.ends_at = *ends_at,
        AuctionEvent::Closed { .. } => state.closed = true,
    }
}

#[cfg(test)]
mod tests;
