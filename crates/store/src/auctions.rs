//! Auctions: creation, reads, search and bid history. Bids themselves are written only by the
//! engine (embedded: through [`crate::ledger::SqliteLedger::auctions`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use surge_core::accounts::UserRef;
use surge_core::auctions::{AuctionStatus, ValidAuction};
use uuid::Uuid;

use crate::StoreResult;

pub mod postgres;
pub mod sqlite;

#[derive(Debug, Clone)]
pub struct NewAuction {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub auction: ValidAuction,
    pub created_at: DateTime<Utc>,
}

/// An auction as stored, with the people it refers to resolved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuctionRecord {
    pub id: Uuid,
    pub seller: UserRef,
    pub title: String,
    pub description: String,
    pub starting_price: i64,
    pub min_increment: i64,
    pub current_price: i64,
    pub high_bidder: Option<UserRef>,
    pub bid_count: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub extend_seconds: i64,
    pub closed: bool,
    pub image_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// One row of a search page.
#[derive(Debug, Clone)]
pub struct AuctionSummary {
    pub id: Uuid,
    pub title: String,
    pub current_price: i64,
    pub bid_count: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub thumbnail: Option<Uuid>,
    /// The value this row was sorted by, for the next page's cursor.
    pub sort_value: SortValue,
}

#[derive(Debug, Clone)]
pub struct BidRecord {
    pub id: Uuid,
    pub auction_id: Uuid,
    pub bidder: UserRef,
    pub amount: i64,
    pub seq: i64,
    pub placed_at: DateTime<Utc>,
}

/// The columns a search can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    EndsAt,
    CurrentPrice,
    CreatedAt,
    Title,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Sort {
    /// Parses the API's `sort` values (`ends_at`, `-ends_at`, …).
    pub fn parse(value: &str) -> Option<Self> {
        let (descending, name) = match value.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, value),
        };
        let key = match name {
            "ends_at" => SortKey::EndsAt,
            "current_price" => SortKey::CurrentPrice,
            "created_at" => SortKey::CreatedAt,
            "title" => SortKey::Title,
            _ => return None,
        };
        Some(Self { key, descending })
    }

    pub fn as_str(&self) -> &'static str {
        match (self.key, self.descending) {
            (SortKey::EndsAt, false) => "ends_at",
            (SortKey::EndsAt, true) => "-ends_at",
            (SortKey::CurrentPrice, false) => "current_price",
            (SortKey::CurrentPrice, true) => "-current_price",
            (SortKey::CreatedAt, false) => "created_at",
            (SortKey::CreatedAt, true) => "-created_at",
            (SortKey::Title, false) => "title",
            (SortKey::Title, true) => "-title",
        }
    }

    /// True when the key's values are text (title) rather than integers.
    pub fn is_text(&self) -> bool {
        self.key == SortKey::Title
    }
}

/// A sort column's value in a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    Int(i64),
    Text(String),
}

/// A search: filters, order, and where the previous page stopped.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Already case-folded by the caller.
    pub title_contains: Option<String>,
    pub status: Option<AuctionStatus>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: Sort,
    /// Keyset position: rows strictly after `(value, id)` in the sort order.
    pub after: Option<(SortValue, Uuid)>,
    pub limit: u32,
    /// The instant `status` is evaluated at.
    pub now: DateTime<Utc>,
}

#[async_trait]
pub trait AuctionStore: Send + Sync {
    async fn create(&self, auction: NewAuction) -> StoreResult<()>;
    async fn get(&self, id: Uuid) -> StoreResult<Option<AuctionRecord>>;
    async fn search(&self, query: &SearchQuery) -> StoreResult<Vec<AuctionSummary>>;
    /// Bids with `seq < before_seq` (all when `None`), newest first.
    async fn bids_before(
        &self,
        auction_id: Uuid,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>>;
    /// Bids with `seq > after_seq`, oldest first: what a reconnecting subscriber missed.
    async fn bids_after(
        &self,
        auction_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<BidRecord>>;
    /// Auctions past their end whose result has not been announced yet.
    async fn due_for_closing(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Uuid>>;
    /// Current nicknames for a set of users (for events about them).
    async fn user_refs(&self, ids: &[Uuid]) -> StoreResult<Vec<UserRef>>;
}
