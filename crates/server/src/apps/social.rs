//! Social's wiring: the article store (cached in memory when embedded, where this process sees
//! every change), the marks (through the embedded writer, or PostgreSQL), the read counter
//! (memory, or Redis shared by every replica), the rankings, and the singleton jobs (the read
//! flush and the hot ranking).

use std::sync::Arc;
use std::time::Duration;

use surge_engine::clock::Clock;
use surge_engine::embedded::EmbeddedEngine;
use surge_engine::redis::Shards;
use surge_engine::social::{
    CachedArticles, InProcessReads, MarkCommands, Rankings, ReadCounter, RedisReads, StoreMarks,
    hot_ranker, read_flusher,
};
use surge_engine::workers::BackgroundJob;
use surge_http::social::{SocialServices, SocialState};
use surge_store::db::{PgDb, SqliteDb};
use surge_store::social::ArticleStore;
use surge_store::social::postgres::PgArticles;
use surge_store::social::sqlite::SqliteArticles;

use crate::config::Settings;

/// The social ports a backend provides.
#[derive(Clone)]
pub struct SocialPorts {
    pub store: Arc<dyn ArticleStore>,
    pub marks: Arc<dyn MarkCommands>,
    pub reads: Arc<dyn ReadCounter>,
    pub rankings: Arc<Rankings>,
}

fn hot_interval(settings: &Settings) -> Duration {
    Duration::from_secs(settings.social.hot_interval_secs.max(1))
}

pub fn embedded(
    db: &SqliteDb,
    engine: &EmbeddedEngine,
    clock: &Arc<dyn Clock>,
    settings: &Settings,
) -> SocialPorts {
    let sqlite = Arc::new(SqliteArticles::new(db.pool.clone()));
    let cached = CachedArticles::new(sqlite, engine.article_cache());
    let store: Arc<dyn ArticleStore> = Arc::new(cached);
    SocialPorts {
        marks: Arc::new(engine.marks()),
        reads: Arc::new(InProcessReads::new(store.clone(), clock.clone())),
        rankings: Arc::new(Rankings::new(store.clone(), clock.clone(), hot_interval(settings))),
        store,
    }
}

/// Reads are counted in Redis and the hot list is kept there, for every replica.
pub fn distributed(
    db: &PgDb,
    shards: &Shards,
    clock: &Arc<dyn Clock>,
    settings: &Settings,
) -> SocialPorts {
    let store: Arc<dyn ArticleStore> = Arc::new(PgArticles::new(db.pool.clone()));
    let (conn, keys) = (shards.conn.clone(), shards.keys.clone());
    let rankings = Rankings::new(store.clone(), clock.clone(), hot_interval(settings))
        .with_redis(conn.clone(), keys.clone());
    SocialPorts {
        marks: Arc::new(StoreMarks::new(store.clone(), clock.clone())),
        reads: Arc::new(RedisReads::new(conn, keys, store.clone(), clock.clone())),
        rankings: Arc::new(rankings),
        store,
    }
}

pub fn state(ports: &SocialPorts, clock: &Arc<dyn Clock>) -> SocialState {
    SocialState::new(SocialServices {
        clock: clock.clone(),
        store: ports.store.clone(),
        marks: ports.marks.clone(),
        reads: ports.reads.clone(),
        rankings: ports.rankings.clone(),
    })
}

/// The singleton jobs: the read flush (every second) and the hot ranking.
pub fn jobs(ports: &SocialPorts, settings: &Settings) -> Vec<BackgroundJob> {
    vec![
        read_flusher(ports.reads.clone()),
        hot_ranker(ports.rankings.clone(), hot_interval(settings)),
    ]
}
