//! Deals' wiring: the stores, deals, favourites and points repository and the deals commands on
//! each backend, the live events hub, and the jobs.

use std::sync::Arc;
use std::time::Duration;

use surge_core::idempotency;
use tokio_util::sync::CancellationToken;

use surge_engine::clock::Clock;
use surge_engine::deals::DealCommands;
use surge_engine::deals::feed::DealsHub;
use surge_engine::embedded::EmbeddedEngine;
use surge_engine::redis::deals::relay_notices;
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
    /// Where the distributed backend keeps orders' `Idempotency-Key` answers (the embedded
    /// writer purges its own).
    keyed_answers: Option<PgDeals>,
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
        keyed_answers: None,
        local_jobs: Vec::new(),
    }
}

/// Orders run as PostgreSQL transactions for now (see `surge_engine::redis::deals`).
pub fn distributed(
    db: &PgDb,
    shards: &Shards,
    clock: Arc<dyn Clock>,
    hub: Arc<DealsHub>,
) -> DealsPorts {
    let store = PgDeals::new(db.pool.clone());
    DealsPorts {
        commands: Arc::new(DistributedDeals::new(store.clone(), shards.clone(), clock)),
        keyed_answers: Some(store.clone()),
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
