//! Events: what accepted commands leave behind, one shape per app from the rule to the stream.
//!
//! Each app's rule (`decide`) returns its own event type; [`Event`] addresses one of them to the
//! entity it happened to. The engines publish these to live subscribers, the distributed engine
//! carries them in its shard streams, and PostgreSQL applies them — the same values all the
//! way. [`AppEvent`] is the one list of every app's events, for the places that carry several
//! apps' events together (a shard stream).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auctions::AuctionEvent;
use crate::cinema::ReservationEvent;
use crate::deals::orders::{OrderEvent, PointsEvent};

/// An event of one entity (an auction, a screening, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event<E> {
    pub entity: Uuid,
    pub body: E,
}

impl<E> Event<E> {
    pub fn new(entity: Uuid, body: E) -> Self {
        Self { entity, body }
    }
}

/// Any app's event: one variant per app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "app", rename_all = "snake_case")]
pub enum AppEvent {
    Auction(Event<AuctionEvent>),
    Cinema(Event<ReservationEvent>),
    /// A deal's orders (the entity is the deal).
    Order(Event<OrderEvent>),
    /// A user's points (the entity is the user).
    Points(Event<PointsEvent>),
}

impl AppEvent {
    /// The entity the event happened to.
    pub fn entity(&self) -> Uuid {
        match self {
            AppEvent::Auction(event) => event.entity,
            AppEvent::Cinema(event) => event.entity,
            AppEvent::Order(event) => event.entity,
            AppEvent::Points(event) => event.entity,
        }
    }
}
