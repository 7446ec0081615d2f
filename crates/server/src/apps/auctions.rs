//! Auctions' wiring: the store, the bid engine and the live feed on each backend.

use std::sync::Arc;
use std::time::Duration;

use surge_core::auctions::AuctionEvent;
use surge_engine::auctions::AuctionCommands;
use surge_engine::clock::Clock;
use surge_engine::embedded::{EmbeddedEngine, Fanout};
use surge_engine::feed::Feed;
use surge_engine::redis::{DistributedAuctions, LiveAuctionStore, RedisAuctions, Shards};
use surge_engine::workers::{BackgroundJob, auction_closer};
use surge_http::auctions::{AuctionsServices, AuctionsState};
use surge_store::auctions::AuctionStore;
use surge_store::auctions::postgres::PgAuctions;
use surge_store::auctions::sqlite::SqliteAuctions;
use surge_store::db::{PgDb, SqliteDb};
use surge_store::images::ImageStore;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// The auction ports a backend provides.
#[derive(Clone)]
pub struct AuctionPorts {
    pub store: Arc<dyn AuctionStore>,
    pub commands: Arc<dyn AuctionCommands>,
    pub feed: Arc<dyn Feed<AuctionEvent>>,
}

pub fn embedded(
    db: &SqliteDb,
    engine: &EmbeddedEngine,
    fanout: Arc<Fanout<AuctionEvent>>,
) -> AuctionPorts {
    AuctionPorts {
        store: Arc::new(SqliteAuctions::new(db.pool.clone())),
        commands: Arc::new(engine.auctions()),
        feed: fanout,
    }
}

/// Reads complete PostgreSQL with the hot state and the unapplied stream entries; bids run as
/// scripts on the auction's hot state; the feed is fed by the replica's stream tailers.
pub fn distributed(
    db: &PgDb,
    shards: &Shards,
    fanout: Arc<Fanout<AuctionEvent>>,
    clock: Arc<dyn Clock>,
) -> AuctionPorts {
    let redis = RedisAuctions::new(shards.clone());
    let stored = PgAuctions::new(db.pool.clone());
    let commands = DistributedAuctions::new(redis.clone(), stored.clone(), clock);
    let store = LiveAuctionStore::new(Arc::new(stored), redis);
    AuctionPorts { store: Arc::new(store), commands: Arc::new(commands), feed: fanout }
}

/// What the auction handlers reach, besides these ports.
pub struct Shared<'a> {
    pub clock: &'a Arc<dyn Clock>,
    pub images: &'a Arc<dyn ImageStore>,
    pub shutdown: &'a CancellationToken,
}

pub fn state(ports: &AuctionPorts, shared: Shared<'_>, settings: &Settings) -> AuctionsState {
    AuctionsState::new(AuctionsServices {
        clock: shared.clock.clone(),
        store: ports.store.clone(),
        commands: ports.commands.clone(),
        feed: ports.feed.clone(),
        images: shared.images.clone(),
        sse_heartbeat: Duration::from_secs(settings.auctions.sse_heartbeat_secs.max(1)),
        shutdown: shared.shutdown.clone(),
    })
}

/// The closer, which ends auctions on time.
pub fn jobs(
    ports: &AuctionPorts,
    clock: &Arc<dyn Clock>,
    settings: &Settings,
) -> Vec<BackgroundJob> {
    let interval = Duration::from_millis(settings.auctions.closer_interval_ms.max(10));
    vec![auction_closer(ports.store.clone(), ports.commands.clone(), clock.clone(), interval)]
}
