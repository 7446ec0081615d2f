//! Cinema's wiring: the catalog store, the reservation engine and the "now showing" cache on
//! each backend.

use std::sync::Arc;
use std::time::Duration;

use surge_engine::cache::TwoTierCache;
use surge_engine::cinema::ReservationCommands;
use surge_engine::clock::Clock;
use surge_engine::embedded::EmbeddedEngine;
use surge_engine::ratelimit::{Blocking, RateLimiter};
use surge_engine::redis::{DistributedReservations, Shards};
use surge_engine::workers::BackgroundJob;
use surge_http::cinema::{CinemaServices, CinemaState, screening_cache};
use surge_http::response::JsonBody;
use surge_store::cinema::CinemaStore;
use surge_store::cinema::postgres::PgCinema;
use surge_store::cinema::sqlite::SqliteCinema;
use surge_store::db::{PgDb, SqliteDb};

use crate::config::Settings;

/// The cinema ports a backend provides.
#[derive(Clone)]
pub struct CinemaPorts {
    pub store: Arc<dyn CinemaStore>,
    pub reservations: Arc<dyn ReservationCommands>,
    pub showing: Arc<TwoTierCache<JsonBody>>,
}

pub fn embedded(db: &SqliteDb, engine: &EmbeddedEngine, settings: &Settings) -> CinemaPorts {
    let store: Arc<dyn CinemaStore> = Arc::new(SqliteCinema::new(db.pool.clone()));
    CinemaPorts {
        reservations: Arc::new(engine.reservations(store.clone())),
        store,
        showing: Arc::new(showing_cache(settings)),
    }
}

/// Reservations run as scripts on the screening's hot state; "now showing" is cached in Redis
/// too, so an admin change empties it on every replica.
pub fn distributed(
    db: &PgDb,
    shards: &Shards,
    clock: Arc<dyn Clock>,
    settings: &Settings,
) -> CinemaPorts {
    let store = PgCinema::new(db.pool.clone());
    let showing = showing_cache(settings).with_redis(shards.conn.clone(), shards.keys.clone());
    CinemaPorts {
        reservations: Arc::new(DistributedReservations::new(shards.clone(), store.clone(), clock)),
        store: Arc::new(store),
        showing: Arc::new(showing),
    }
}

/// The "now showing" cache's process tier (the distributed backend adds Redis).
pub fn showing_cache(settings: &Settings) -> TwoTierCache<JsonBody> {
    let ttl = Duration::from_secs(settings.cinema.showing_cache_secs.max(1));
    TwoTierCache::new("showing", 10_000, ttl)
}

pub fn state(
    ports: &CinemaPorts,
    clock: &Arc<dyn Clock>,
    limiter: &Arc<dyn RateLimiter>,
    settings: &Settings,
) -> CinemaState {
    let cinema = &settings.cinema;
    CinemaState::new(CinemaServices {
        clock: clock.clone(),
        limiter: limiter.clone(),
        store: ports.store.clone(),
        reservations: ports.reservations.clone(),
        showing: ports.showing.clone(),
        showing_max_age: settings.cinema.showing_cache_secs.max(1),
        screenings: screening_cache(),
        reads: (cinema.read_limit > 0).then(|| Blocking {
            limit: cinema.read_limit,
            period_ms: (cinema.read_period_secs.max(1) * 1000) as i64,
            block_ms: (cinema.read_block_secs.max(1) * 1000) as i64,
        }),
        // At most a year: longer means "once per screening", and stays far from overflow.
        reservation_cooldown: chrono::Duration::seconds(
            cinema.reservation_cooldown_secs.min(366 * 86_400) as i64,
        ),
    })
}

/// Cinema has no background jobs.
pub fn jobs(_ports: &CinemaPorts) -> Vec<BackgroundJob> {
    Vec::new()
}
