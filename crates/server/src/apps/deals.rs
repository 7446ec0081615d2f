//! Deals' wiring: the stores, deals, favourites and points repository and the deals commands on
//! each backend, the live events hub, and the jobs.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use surge_engine::clock::Clock;
use surge_engine::deals::DealCommands;
use surge_engine::deals::feed::DealsHub;
use surge_engine::embedded::EmbeddedEngine;
use surge_engine::redis::deals::{orders_sweep, relay_notices};
use surge_engine::redis::{DistributedDeals, Shards};
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
    pub commands: Arc<dyn DealCommands>,
    /// The live events of this process's streams.
    pub hub: Arc<DealsHub>,
    /// The singleton jobs of the backend (the distributed orders' recovery sweep).
    jobs: Vec<BackgroundJob>,
    /// What every process runs (not under a lease): a replica's relay of every replica's live
    /// events.
    local_jobs: Vec<BackgroundJob>,
}

/// Orders run in the embedded writer, with the other apps' commands.
/// `hub` is the one the writer publishes to.
pub fn embedded(db: &SqliteDb, engine: &EmbeddedEngine, hub: Arc<DealsHub>) -> DealsPorts {
    DealsPorts {
        store: Arc::new(SqliteDeals::new(db.pool.clone())),
        commands: Arc::new(engine.deals()),
        hub,
        jobs: Vec::new(),
        local_jobs: Vec::new(),
    }
}

/// Orders run as a saga of Redis scripts across the deal's and the buyer's shards (see
/// `surge_engine::redis::deals`).
pub fn distributed(
    db: &PgDb,
    shards: &Shards,
    clock: Arc<dyn Clock>,
    hub: Arc<DealsHub>,
) -> DealsPorts {
    let store = PgDeals::new(db.pool.clone());
    let commands = DistributedDeals::new(store.clone(), shards.clone(), clock);
    DealsPorts {
        jobs: vec![orders_sweep(commands.clone())],
        commands: Arc::new(commands),
        local_jobs: vec![relay_notices(store.clone(), hub.clone())],
        hub,
        store: Arc::new(store),
    }
}

/// The jobs every process runs.
pub fn local_jobs(ports: &DealsPorts) -> Vec<BackgroundJob> {
    ports.local_jobs.clone()
}

/// `heartbeat` and `shutdown` as the auction streams have them.
pub fn state(
    ports: &DealsPorts,
    clock: &Arc<dyn Clock>,
    heartbeat: Duration,
    shutdown: &CancellationToken,
) -> DealsState {
    DealsState::new(DealsServices {
        clock: clock.clone(),
        store: ports.store.clone(),
        commands: ports.commands.clone(),
        hub: ports.hub.clone(),
        sse_heartbeat: heartbeat,
        shutdown: shutdown.clone(),
        nearby: Arc::new(nearby_cache()),
    })
}

/// The singleton jobs: on the distributed backend, the orders' recovery sweep (one replica,
/// under its lease).
pub fn jobs(ports: &DealsPorts) -> Vec<BackgroundJob> {
    ports.jobs.clone()
}
