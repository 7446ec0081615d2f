//! Deals: stores and their places, deals, favourites and points.
//!
//! The nearby search asks the store for the places of the stores in a latitude/longitude box
//! (index-backed on both backends: an R*Tree on SQLite, a GiST index on PostgreSQL) — ids and
//! coordinates only, however many there are — and then for the whole records of the page it
//! shows; the exact great-circle distance, the radius and the order are decided by the caller,
//! the same on both backends.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use surge_core::deals::orders::{OrderEvent, OrderStatus};
use surge_core::deals::{Category, GeoBox, Place};
use uuid::Uuid;

use crate::StoreResult;
use crate::sql::DbTime;

pub mod postgres;
pub mod sqlite;

/// A store: as it is created, stored and shown.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub category: Category,
    pub place: Place,
    pub address: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeal {
    pub id: Uuid,
    pub store_id: Uuid,
    pub title: String,
    pub original_price: i64,
    pub deal_price: i64,
    pub quantity: i64,
    pub per_user_limit: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<NewDeal> for DealRecord {
    /// The deal as it is stored when created: every unit left.
    fn from(deal: NewDeal) -> Self {
        DealRecord {
            id: deal.id,
            store_id: deal.store_id,
            title: deal.title,
            original_price: deal.original_price,
            deal_price: deal.deal_price,
            quantity: deal.quantity,
            remaining: deal.quantity,
            per_user_limit: deal.per_user_limit,
            starts_at: deal.starts_at,
            ends_at: deal.ends_at,
            created_at: deal.created_at,
        }
    }
}

/// A deal with what is left of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DealRecord {
    pub id: Uuid,
    pub store_id: Uuid,
    pub title: String,
    pub original_price: i64,
    pub deal_price: i64,
    pub quantity: i64,
    pub remaining: i64,
    pub per_user_limit: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// An order as stored, and as the engines answer it (kept as-is for idempotent replays).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderRecord {
    pub id: Uuid,
    pub deal_id: Uuid,
    pub store_id: Uuid,
    pub buyer_id: Uuid,
    pub quantity: i64,
    pub total: i64,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
}

/// One of a store's live events: an order placed or cancelled at one of its deals (the order
/// rule's own event), numbered without gaps per store so an owner's stream can resume after
/// the last one it showed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreEvent {
    pub store_id: Uuid,
    pub seq: i64,
    pub event: OrderEvent,
}

/// A deal as it was posted, numbered in posting order across every store: a favourites stream
/// resumes after the last deal it showed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DealPosted {
    pub seq: i64,
    pub deal: DealRecord,
}

/// What every favourites stream reads, in one order: deals posted anywhere, and favourites
/// changed (so a stream follows its user's favourites without asking the database per deal).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Announcement {
    DealPosted(DealPosted),
    FavoriteChanged { user_id: Uuid, store_id: Uuid, favorite: bool },
}

/// Where a store is: what the nearby search ranks before it reads the stores it shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StorePlace {
    pub id: Uuid,
    pub place: Place,
}

/// The columns and rows both backends read; each decodes its own time type (see
/// [`crate::sql::DbTime`]).
pub(crate) const STORE_COLUMNS: &str =
    "s.id, s.owner_id, s.name, s.category, s.lat, s.lng, s.address, s.created_at";
pub(crate) type StoreRow<T> = (Uuid, Uuid, String, String, f64, f64, String, T);

pub(crate) fn store_record<T: DbTime>(row: StoreRow<T>) -> StoreResult<StoreRecord> {
    let (id, owner_id, name, category, lat, lng, address, created_at) = row;
    Ok(StoreRecord {
        id,
        owner_id,
        name,
        category: category_from(&category)?,
        place: Place { lat, lng },
        address,
        created_at: created_at.utc(),
    })
}

pub(crate) fn store_place((id, lat, lng): (Uuid, f64, f64)) -> StorePlace {
    StorePlace { id, place: Place { lat, lng } }
}

fn category_from(text: &str) -> StoreResult<Category> {
    Category::parse(text).ok_or_else(|| {
        crate::StoreError::Other(sqlx::Error::Decode(
            format!("unknown store category {text:?}").into(),
        ))
    })
}

pub(crate) const DEAL_COLUMNS: &str = "id, store_id, title, original_price, deal_price, quantity, \
     remaining, per_user_limit, starts_at, ends_at, created_at";
pub(crate) type DealRow<T> = (Uuid, Uuid, String, i64, i64, i64, i64, i64, T, T, T);

pub(crate) fn deal_record<T: DbTime>(row: DealRow<T>) -> DealRecord {
    let (
        id,
        store_id,
        title,
        original_price,
        deal_price,
        quantity,
        remaining,
        per_user_limit,
        starts_at,
        ends_at,
        created_at,
    ) = row;
    DealRecord {
        id,
        store_id,
        title,
        original_price,
        deal_price,
        quantity,
        remaining,
        per_user_limit,
        starts_at: starts_at.utc(),
        ends_at: ends_at.utc(),
        created_at: created_at.utc(),
    }
}

pub(crate) const ORDER_COLUMNS: &str =
    "id, deal_id, store_id, buyer_id, quantity, total, status, created_at";
pub(crate) type OrderRow<T> = (Uuid, Uuid, Uuid, Uuid, i64, i64, String, T);

pub(crate) fn order_record<T: DbTime>(row: OrderRow<T>) -> StoreResult<OrderRecord> {
    let (id, deal_id, store_id, buyer_id, quantity, total, status, created_at) = row;
    Ok(OrderRecord {
        id,
        deal_id,
        store_id,
        buyer_id,
        quantity,
        total,
        status: status_from(&status)?,
        created_at: created_at.utc(),
    })
}

fn status_from(text: &str) -> crate::StoreResult<OrderStatus> {
    match text {
        "confirmed" => Ok(OrderStatus::Confirmed),
        "cancelled" => Ok(OrderStatus::Cancelled),
        "picked_up" => Ok(OrderStatus::PickedUp),
        other => Err(crate::StoreError::Other(sqlx::Error::Decode(
            format!("unknown order status {other:?}").into(),
        ))),
    }
}

pub(crate) const STORE_EVENT_COLUMNS: &str =
    "store_id, seq, kind, order_id, deal_id, buyer_id, quantity, total, at";
pub(crate) type StoreEventRow<T> = (Uuid, i64, String, Uuid, Uuid, Uuid, i64, i64, T);

/// How a store event is kept: its kind's name and the order's facts.
pub(crate) struct StoreEventColumns {
    pub kind: &'static str,
    pub order_id: Uuid,
    pub deal_id: Uuid,
    pub buyer_id: Uuid,
    pub quantity: i64,
    pub total: i64,
    pub at: DateTime<Utc>,
}

impl StoreEvent {
    /// The columns the event is kept in; `None` for the events a store's stream does not show
    /// (a pickup).
    pub(crate) fn columns(&self) -> Option<StoreEventColumns> {
        let (kind, order_id, deal_id, buyer_id, quantity, total, at) = match self.event {
            OrderEvent::Placed { order_id, deal_id, buyer_id, quantity, total, at } => {
                ("order_created", order_id, deal_id, buyer_id, quantity, total, at)
            }
            OrderEvent::Cancelled { order_id, deal_id, buyer_id, quantity, total, at } => {
                ("order_cancelled", order_id, deal_id, buyer_id, quantity, total, at)
            }
            OrderEvent::PickedUp { .. } => return None,
        };
        Some(StoreEventColumns { kind, order_id, deal_id, buyer_id, quantity, total, at })
    }
}

pub(crate) fn store_event<T: DbTime>(row: StoreEventRow<T>) -> StoreResult<StoreEvent> {
    let (store_id, seq, kind, order_id, deal_id, buyer_id, quantity, total, at) = row;
    let at = at.utc();
    let event = match kind.as_str() {
        "order_created" => OrderEvent::Placed { order_id, deal_id, buyer_id, quantity, total, at },
        "order_cancelled" => {
            OrderEvent::Cancelled { order_id, deal_id, buyer_id, quantity, total, at }
        }
        other => {
            return Err(crate::StoreError::Other(sqlx::Error::Decode(
                format!("unknown store event kind {other:?}").into(),
            )));
        }
    };
    Ok(StoreEvent { store_id, seq, event })
}

/// A posted deal's row: the deal's columns, then its number.
pub(crate) type DealPostedRow<T> = (Uuid, Uuid, String, i64, i64, i64, i64, i64, T, T, T, i64);

pub(crate) fn deal_posted<T: DbTime>(row: DealPostedRow<T>) -> DealPosted {
    let (a, b, c, d, e, f, g, h, i, j, k, seq) = row;
    DealPosted { seq, deal: deal_record((a, b, c, d, e, f, g, h, i, j, k)) }
}

/// What a top-up led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUp {
    /// Added; the new balance.
    Added { balance: i64 },
    /// Refused: the balance would pass `cap`.
    OverCap { balance: i64 },
}

/// Whose orders to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrdersOf {
    /// A store's (its owner's dashboard).
    Store(Uuid),
    /// A buyer's ("my orders").
    Buyer(Uuid),
}

impl OrdersOf {
    /// The `orders` column to match, and its value (each has its index).
    pub(crate) fn column(self) -> (&'static str, Uuid) {
        match self {
            OrdersOf::Store(id) => ("store_id", id),
            OrdersOf::Buyer(id) => ("buyer_id", id),
        }
    }
}

#[async_trait]
pub trait DealStore: Send + Sync {
    async fn create_store(&self, store: StoreRecord) -> StoreResult<()>;
    async fn store(&self, id: Uuid) -> StoreResult<Option<StoreRecord>>;
    /// The places of the stores in one of `boxes` (of `category`, when given), through the
    /// spatial index; in no particular order.
    async fn stores_in(
        &self,
        boxes: &[GeoBox],
        category: Option<Category>,
    ) -> StoreResult<Vec<StorePlace>>;
    /// The stores of `ids` that exist, in no particular order.
    async fn stores(&self, ids: &[Uuid]) -> StoreResult<Vec<StoreRecord>>;
    /// The plan of [`DealStore::stores_in`] for `boxes`, one line per step: the tests check it
    /// walks the spatial index.
    async fn stores_in_plan(&self, boxes: &[GeoBox]) -> StoreResult<Vec<String>>;
    /// How many deals of each of `stores` are live at `now` (stores with none are absent).
    async fn live_deal_counts(
        &self,
        stores: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<HashMap<Uuid, i64>>;

    async fn create_deal(&self, deal: NewDeal) -> StoreResult<()>;
    /// Many stores in one transaction (a demo city; an import).
    async fn create_stores(&self, stores: &[StoreRecord]) -> StoreResult<()>;
    /// Many deals in one transaction.
    async fn create_deals(&self, deals: &[NewDeal]) -> StoreResult<()>;
    /// The stores of `owner_id` with no deal live at `now`.
    async fn stores_without_live_deals(
        &self,
        owner_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;
    /// How many stores `owner_id` has.
    async fn store_count(&self, owner_id: Uuid) -> StoreResult<i64>;
    async fn deal(&self, id: Uuid) -> StoreResult<Option<DealRecord>>;
    /// A store's deals live at `now`, ending soonest first.
    async fn live_deals(&self, store_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<DealRecord>>;

    /// Makes `store_id` one of the user's favourites, or not; doing it twice changes nothing.
    async fn set_favorite(
        &self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// An order.
    async fn order(&self, id: Uuid) -> StoreResult<Option<OrderRecord>>;
    /// A store's or a buyer's orders, newest first, after the order `before` (a page's last)
    /// when given.
    async fn orders(
        &self,
        of: OrdersOf,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<OrderRecord>>;

    /// A store's events after number `after`, in order, at most `limit`.
    async fn store_events_after(
        &self,
        store_id: Uuid,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoreEvent>>;
    /// The number of the store's latest event (0 before any).
    async fn last_store_event(&self, store_id: Uuid) -> StoreResult<i64>;
    /// The deals posted after number `after` in the user's favourite stores, in order, at most
    /// `limit`.
    async fn favorite_deals_after(
        &self,
        user_id: Uuid,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<DealPosted>>;
    /// The number of the latest deal posted anywhere (0 before any).
    async fn last_deal_seq(&self) -> StoreResult<i64>;

    /// The stores the user marked as favourites.
    async fn favorites(&self, user_id: Uuid) -> StoreResult<Vec<Uuid>>;

    /// The user's points (0 before any top-up).
    async fn balance(&self, user_id: Uuid) -> StoreResult<i64>;
    /// Adds `amount` points (recorded as top-up `id`), unless the balance would pass `cap`.
    async fn top_up(
        &self,
        user_id: Uuid,
        id: Uuid,
        amount: i64,
        cap: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<TopUp>;
}
