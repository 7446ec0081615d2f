//! Deals' wiring: the stores, deals, favourites and points repository on each backend.

use std::sync::Arc;

use surge_engine::clock::Clock;
use surge_engine::workers::BackgroundJob;
use surge_http::deals::{DealsServices, DealsState};
use surge_store::db::{PgDb, SqliteDb};
use surge_store::deals::DealStore;
use surge_store::deals::postgres::PgDeals;
use surge_store::deals::sqlite::SqliteDeals;

/// The deals ports a backend provides.
#[derive(Clone)]
pub struct DealsPorts {
    pub store: Arc<dyn DealStore>,
}

pub fn embedded(db: &SqliteDb) -> DealsPorts {
    DealsPorts { store: Arc::new(SqliteDeals::new(db.pool.clone())) }
}

pub fn distributed(db: &PgDb) -> DealsPorts {
    DealsPorts { store: Arc::new(PgDeals::new(db.pool.clone())) }
}

pub fn state(ports: &DealsPorts, clock: &Arc<dyn Clock>) -> DealsState {
    DealsState::new(DealsServices { clock: clock.clone(), store: ports.store.clone() })
}

/// Deals have no background jobs yet.
pub fn jobs(_ports: &DealsPorts) -> Vec<BackgroundJob> {
    Vec::new()
}
