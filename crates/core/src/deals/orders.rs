//! The order rule: one order takes `quantity` units of a deal's stock and `deal_price ×
//! quantity` points from the buyer, or nothing at all. Pure, like every rule here, and split
//! in the two halves an engine may have to run apart — the stock (on the deal) and the points
//! (on the buyer's account), which on a Redis Cluster can live on different shards — and
//! [`decide_order`], which runs both on one state (the embedded engine).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A deal as the order rule sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealState {
    pub id: Uuid,
    pub store_id: Uuid,
    pub deal_price: i64,
    pub remaining: i64,
    pub per_user_limit: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Units each buyer holds in orders that are not cancelled.
    pub taken: BTreeMap<Uuid, i64>,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Confirmed,
    Cancelled,
    PickedUp,
}

impl OrderStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::PickedUp => "picked_up",
        }
    }
}

/// An order as cancelling and pickup see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub id: Uuid,
    pub deal_id: Uuid,
    pub buyer_id: Uuid,
    pub quantity: i64,
    pub total: i64,
    pub status: OrderStatus,
}

/// An order asked for; `quantity` is at least 1 (checked before, with the other input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    Placed {
        order_id: Uuid,
        deal_id: Uuid,
        buyer_id: Uuid,
        quantity: i64,
        total: i64,
        at: DateTime<Utc>,
    },
    Cancelled {
        order_id: Uuid,
        deal_id: Uuid,
        buyer_id: Uuid,
        quantity: i64,
        total: i64,
        at: DateTime<Utc>,
    },
    PickedUp {
        order_id: Uuid,
        deal_id: Uuid,
        at: DateTime<Utc>,
    },
}

/// What happens to a buyer's points, as the distributed engine keeps it in the buyer's own shard
/// (the points half of an order lives apart from the stock half there; see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PointsEvent {
    /// An order's total, taken.
    Debited {
        order_id: Uuid,
        amount: i64,
        at: DateTime<Utc>,
    },
    /// A cancelled order's total, given back.
    Credited {
        order_id: Uuid,
        amount: i64,
        at: DateTime<Utc>,
    },
    ToppedUp {
        top_up_id: Uuid,
        amount: i64,
        at: DateTime<Utc>,
    },
}

/// Why an order command was refused. Each maps to one API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum OrderRejection {
    #[error("the deal is not live (not started, or over)")]
    DealNotActive,
    #[error("only {remaining} units are left")]
    InsufficientStock { remaining: i64 },
    #[error("one buyer may take at most {limit} units of this deal; {taken} taken already")]
    PerUserLimit { limit: i64, taken: i64 },
    #[error("the order costs more points than the balance of {balance}")]
    InsufficientPoints { balance: i64 },
    #[error("no such order")]
    NotFound,
    #[error("the order was picked up")]
    AlreadyPickedUp,
    #[error("the order was cancelled")]
    AlreadyCancelled,
    #[error("the deal has ended")]
    DealEnded,
    /// Pickup by someone who does not own the order's store.
    #[error("only the store's owner may do this")]
    NotStoreOwner,
}

/// What `quantity` units cost; `None` past `i64` (no balance can pay it then).
pub fn total_price(deal_price: i64, quantity: i64) -> Option<i64> {
    deal_price.checked_mul(quantity)
}

/// The stock half: the deal is live, has the units, and the buyer stays within the per-user
/// limit. Returns the order's total price.
pub fn decide_stock(
    deal: &DealState,
    order: &PlaceOrder,
    now: DateTime<Utc>,
) -> Result<i64, OrderRejection> {
    if now < deal.starts_at || now >= deal.ends_at {
        return Err(OrderRejection::DealNotActive);
    }
    if order.quantity > deal.remaining {
        return Err(OrderRejection::InsufficientStock { remaining: deal.remaining });
    }
    let taken = deal.taken.get(&order.buyer_id).copied().unwrap_or(0);
    if taken + order.quantity > deal.per_user_limit {
        return Err(OrderRejection::PerUserLimit { limit: deal.per_user_limit, taken });
    }
    total_price(deal.deal_price, order.quantity)
        .ok_or(OrderRejection::InsufficientPoints { balance: 0 })
}

/// The points half: the balance covers `total`.
pub fn decide_points(balance: i64, total: i64) -> Result<(), OrderRejection> {
    if total > balance {
        return Err(OrderRejection::InsufficientPoints { balance });
    }
    Ok(())
}

/// The whole rule on one state: stock, then points; one `Placed` event or one rejection.
pub fn decide_order(
    deal: &DealState,
    balance: i64,
    order: &PlaceOrder,
    now: DateTime<Utc>,
) -> Result<OrderEvent, OrderRejection> {
    let total = decide_stock(deal, order, now).map_err(|rejection| match rejection {
        OrderRejection::InsufficientPoints { .. } => OrderRejection::InsufficientPoints { balance },
        other => other,
    })?;
    decide_points(balance, total)?;
    Ok(OrderEvent::Placed {
        order_id: order.order_id,
        deal_id: deal.id,
        buyer_id: order.buyer_id,
        quantity: order.quantity,
        total,
        at: now,
    })
}

/// Cancelling gives back the stock and the points: only the buyer's own confirmed order, and
/// only while the deal runs (`NotFound` for an unknown or someone else's order).
pub fn decide_cancel(
    order: Option<&OrderState>,
    deal: &DealState,
    buyer_id: Uuid,
    now: DateTime<Utc>,
) -> Result<OrderEvent, OrderRejection> {
    let order = order.filter(|o| o.buyer_id == buyer_id).ok_or(OrderRejection::NotFound)?;
    match order.status {
        OrderStatus::PickedUp => return Err(OrderRejection::AlreadyPickedUp),
        OrderStatus::Cancelled => return Err(OrderRejection::AlreadyCancelled),
        OrderStatus::Confirmed => {}
    }
    if now >= deal.ends_at {
        return Err(OrderRejection::DealEnded);
    }
    Ok(OrderEvent::Cancelled {
        order_id: order.id,
        deal_id: order.deal_id,
        buyer_id: order.buyer_id,
        quantity: order.quantity,
        total: order.total,
        at: now,
    })
}

/// Pickup (by the store's owner, checked by the caller): a confirmed order only.
pub fn decide_pickup(order: &OrderState, now: DateTime<Utc>) -> Result<OrderEvent, OrderRejection> {
    match order.status {
        OrderStatus::Confirmed => {
            Ok(OrderEvent::PickedUp { order_id: order.id, deal_id: order.deal_id, at: now })
        }
        OrderStatus::PickedUp => Err(OrderRejection::AlreadyPickedUp),
        OrderStatus::Cancelled => Err(OrderRejection::AlreadyCancelled),
    }
}

/// Folds an event into the deal's state.
pub fn apply_to_deal(deal: &mut DealState, event: &OrderEvent) {
    match event {
        OrderEvent::Placed { buyer_id, quantity, .. } => {
            deal.remaining -= quantity;
            *deal.taken.entry(*buyer_id).or_insert(0) += quantity;
        }
        OrderEvent::Cancelled { buyer_id, quantity, .. } => {
            deal.remaining += quantity;
            if let Some(taken) = deal.taken.get_mut(buyer_id) {
                *taken -= quantity;
                if *taken <= 0 {
                    deal.taken.remove(buyer_id);
                }
            }
        }
        OrderEvent::PickedUp { .. } => {}
    }
}

/// Folds an event into the buyer's balance.
pub fn apply_to_balance(balance: &mut i64, event: &OrderEvent) {
    match event {
        OrderEvent::Placed { total, .. } => *balance -= total,
        OrderEvent::Cancelled { total, .. } => *balance += total,
        OrderEvent::PickedUp { .. } => {}
    }
}

/// Folds an event into the order.
pub fn apply_to_order(order: &mut OrderState, event: &OrderEvent) {
    match event {
        OrderEvent::Placed { .. } => order.status = OrderStatus::Confirmed,
        OrderEvent::Cancelled { .. } => order.status = OrderStatus::Cancelled,
        OrderEvent::PickedUp { .. } => order.status = OrderStatus::PickedUp,
    }
}

#[cfg(test)]
mod tests;
