//! Deals' wiring: the stores, deals, favourites and points repository on each backend.

use std::sync::Arc;

use surge_engine::clock::Clock;
use surge_engine::deals::OrderCommands;
use surge_engine::embedded::EmbeddedEngine;
use surge_engine::redis::{DistributedOrders, Shards};
use surge_engine::workers::BackgroundJob;
use surge_http::deals::{DealsServices, DealsState, nearby_cache};
use surge_store::db::{PgDb, SqliteDb};
use surge_store::deals::DealStore;
use surge_store::deals::postgres::PgDeals;
use surge_store::deals::sqlite::SqliteDeals;

/// The deals ports a backend provides.
#[derive(Clone)]
pub struct DealsPorts {
    pub store: Arc<dyn DealStore>,
    pub orders: Arc<dyn OrderCommands>,
}

/// Orders run in the embedded writer, with the other apps' commands.
pub fn embedded(db: &SqliteDb, engine: &EmbeddedEngine) -> DealsPorts {
    DealsPorts {
        store: Arc::new(SqliteDeals::new(db.pool.clone())),
        orders: Arc::new(engine.orders()),
    }
}

/// Orders run as PostgreSQL transactions for now (see `surge_engine::redis::deals`).
pub fn distributed(db: &PgDb, shards: &Shards, clock: Arc<dyn Clock>) -> DealsPorts {
    let store = PgDeals::new(db.pool.clone());
    DealsPorts {
        orders: Arc::new(DistributedOrders::new(store.clone(), shards.clone(), clock)),
        store: Arc::new(store),
    }
}

pub fn state(ports: &DealsPorts, clock: &Arc<dyn Clock>) -> DealsState {
    DealsState::new(DealsServices {
        clock: clock.clone(),
        store: ports.store.clone(),
        orders: ports.orders.clone(),
        nearby: Arc::new(nearby_cache()),
    })
}

/// Deals have no background jobs yet.
pub fn jobs(_ports: &DealsPorts) -> Vec<BackgroundJob> {
    Vec::new()
}
