//! Deals' wiring: the stores, deals, favourites and points repository on each backend.

use std::sync::Arc;
use std::time::Duration;

use surge_core::idempotency;

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
    /// Where the distributed backend keeps orders' `Idempotency-Key` answers (the embedded
    /// writer purges its own).
    keyed_answers: Option<PgDeals>,
}

/// Orders run in the embedded writer, with the other apps' commands.
pub fn embedded(db: &SqliteDb, engine: &EmbeddedEngine) -> DealsPorts {
    DealsPorts {
        store: Arc::new(SqliteDeals::new(db.pool.clone())),
        orders: Arc::new(engine.orders()),
        keyed_answers: None,
    }
}

/// Orders run as PostgreSQL transactions for now (see `surge_engine::redis::deals`).
pub fn distributed(db: &PgDb, shards: &Shards, clock: Arc<dyn Clock>) -> DealsPorts {
    let store = PgDeals::new(db.pool.clone());
    DealsPorts {
        orders: Arc::new(DistributedOrders::new(store.clone(), shards.clone(), clock)),
        keyed_answers: Some(store.clone()),
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

/// How often the distributed backend forgets orders' `Idempotency-Key` answers past the window.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// On the distributed backend, the purge of orders' `Idempotency-Key` answers (one replica,
/// under its lease).
pub fn jobs(ports: &DealsPorts, clock: &Arc<dyn Clock>) -> Vec<BackgroundJob> {
    let Some(store) = ports.keyed_answers.clone() else { return Vec::new() };
    let clock = clock.clone();
    vec![BackgroundJob::every("order-keys-purge", PURGE_INTERVAL, move || {
        let (store, clock) = (store.clone(), clock.clone());
        async move {
            let before = clock.now() - idempotency::window();
            match store.purge_keyed_answers(before).await {
                Ok(purged) if purged > 0 => tracing::info!(purged, "old order keys forgotten"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "cannot purge old order keys"),
            }
        }
    })]
}
