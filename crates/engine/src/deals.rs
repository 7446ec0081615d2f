//! The deals port: orders as contended commands that take a deal's stock and the buyer's
//! points together, or neither; cancel and pickup; top-ups, which change the balance orders
//! are decided against; and the writes that make live events (posting a deal, changing a
//! favourite), so each backend publishes them to [`feed::DealsHub`] once committed.

pub mod feed;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use surge_core::deals::orders::OrderRejection;
use surge_core::idempotency::IdempotencyKey;
pub use surge_store::deals::{DealPosted, NewDeal, OrderRecord};
use uuid::Uuid;

use crate::EngineError;

/// An order asked for; `quantity` is at least 1 (checked with the rest of the input).
#[derive(Debug, Clone)]
pub struct PlaceOrderRequest {
    pub deal_id: Uuid,
    pub buyer_id: Uuid,
    pub quantity: i64,
    pub idempotency: Option<IdempotencyKey>,
}

/// A placed order, with what is left of the deal and of the buyer's points after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order: OrderRecord,
    pub remaining: i64,
    pub points_balance: i64,
}

/// The decided result of an order request. Stored as-is for idempotent replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OrderOutcome {
    Placed(OrderPlaced),
    Rejected(OrderRejection),
}

/// Cancel (by the buyer) or pick up (by the store's owner) an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderChange {
    Cancel { order_id: Uuid, buyer_id: Uuid },
    Pickup { order_id: Uuid, owner_id: Uuid },
}

/// What a top-up led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUpOutcome {
    Added {
        balance: i64,
    },
    /// The balance would pass the cap.
    OverCap {
        balance: i64,
    },
}

/// Executes the deals' commands. Implementations must decide each order command with the
/// rules of [`surge_core::deals::orders`] against the deal's and the buyer's current state in
/// one atomic step (or a saga that converges to one), make an accepted command durable before
/// it is answered, give a keyed request at most one effect, and keep each live event with the
/// command and publish it once committed.
#[async_trait]
pub trait DealCommands: Send + Sync {
    /// `Err(NotFound)` when the deal does not exist.
    async fn place_order(&self, request: PlaceOrderRequest) -> Result<OrderOutcome, EngineError>;
    /// The order after the change, or why it was refused (`NotFound` for an unknown order or a
    /// cancel of someone else's, `NotStoreOwner` for a pickup by anyone but the owner).
    async fn change_order(
        &self,
        change: OrderChange,
    ) -> Result<Result<OrderRecord, OrderRejection>, EngineError>;
    async fn top_up(
        &self,
        user_id: Uuid,
        amount: i64,
        cap: i64,
    ) -> Result<TopUpOutcome, EngineError>;
    /// Posts a deal (the store's owner was checked by the caller), numbered after the last one
    /// posted anywhere; announced to favourites streams.
    async fn post_deal(&self, deal: NewDeal) -> Result<DealPosted, EngineError>;
    /// Makes the store a favourite of the user, or not (idempotent); announced when it changed.
    async fn set_favorite(
        &self,
        user_id: Uuid,
        store_id: Uuid,
        favorite: bool,
    ) -> Result<(), EngineError>;

    /// A deal's units left, when the engine knows them ahead of the store (the distributed
    /// engine's hot state, which PostgreSQL follows a moment later); `None`: read the store.
    async fn live_remaining(&self, _deal_id: Uuid) -> Result<Option<i64>, EngineError> {
        Ok(None)
    }

    /// A store's orders as the engine knows them ahead of the store (every order of its deals
    /// with hot state, each status current); empty when the store is current.
    async fn live_orders(&self, _store_id: Uuid) -> Result<Vec<OrderRecord>, EngineError> {
        Ok(Vec::new())
    }

    /// A user's balance, when the engine knows it ahead of the store; `None`: read the store.
    async fn live_balance(&self, _user_id: Uuid) -> Result<Option<i64>, EngineError> {
        Ok(None)
    }
}
