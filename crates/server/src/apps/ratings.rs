//! Ratings' wiring: the problem store, the upstream client, the lookup (with Redis shared by
//! every replica on the distributed backend) and its durable fetch job.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use surge_engine::clock::Clock;
use surge_engine::jobs::{JobHandler, JobKind, Jobs};
use surge_engine::ratelimit::RateLimiter;
use surge_engine::ratings::upstream::LeetCode;
use surge_engine::ratings::{FetchJob, ProblemLookup, RatingsSettings};
use surge_engine::redis::Shards;
use surge_http::ratings::RatingsState;
use surge_store::db::{PgDb, SqliteDb};
use surge_store::ratings::ProblemStore;
use surge_store::ratings::postgres::PgProblems;
use surge_store::ratings::sqlite::SqliteProblems;

use crate::config::Settings;

/// The ratings ports a backend provides.
#[derive(Clone)]
pub struct RatingsPorts {
    pub lookup: Arc<ProblemLookup>,
}

/// What every backend's ratings share: the clock, the outbound limiter and the job queue.
pub struct Shared<'a> {
    pub clock: &'a Arc<dyn Clock>,
    pub limiter: &'a Arc<dyn RateLimiter>,
    pub jobs: &'a Jobs,
}

fn lookup(
    store: Arc<dyn ProblemStore>,
    shared: &Shared<'_>,
    settings: &Settings,
) -> anyhow::Result<ProblemLookup> {
    let ratings = &settings.ratings;
    let tuning = RatingsSettings {
        upstream_timeout: Duration::from_millis(ratings.upstream_timeout_ms.max(1)),
        retry_base: Duration::from_millis(ratings.retry_base_ms.max(1)),
        max_attempts: ratings.max_attempts.max(1),
    };
    let upstream = LeetCode::new(
        ratings.upstream_url.clone(),
        tuning.upstream_timeout,
        ratings.upstream_per_second,
        shared.limiter.clone(),
    )
    .context("cannot build the ratings upstream client")?;
    Ok(ProblemLookup::new(
        store,
        Arc::new(upstream),
        shared.jobs.clone(),
        tuning,
        shared.clock.clone(),
    ))
}

pub fn embedded(
    db: &SqliteDb,
    shared: &Shared<'_>,
    settings: &Settings,
) -> anyhow::Result<RatingsPorts> {
    let store = Arc::new(SqliteProblems::new(db.pool.clone()));
    Ok(RatingsPorts { lookup: Arc::new(lookup(store, shared, settings)?) })
}

/// The cache's second tier and the one-fetch-per-slug keys are in Redis, shared by every
/// replica.
pub fn distributed(
    db: &PgDb,
    shards: &Shards,
    shared: &Shared<'_>,
    settings: &Settings,
) -> anyhow::Result<RatingsPorts> {
    let store = Arc::new(PgProblems::new(db.pool.clone()));
    let lookup =
        lookup(store, shared, settings)?.with_redis(shards.conn.clone(), shards.keys.clone());
    Ok(RatingsPorts { lookup: Arc::new(lookup) })
}

pub fn state(ports: &RatingsPorts) -> RatingsState {
    RatingsState(ports.lookup.clone())
}

/// The durable job kinds ratings runs: the upstream fetch.
pub fn job_kinds(ports: &RatingsPorts) -> Vec<(JobKind, Arc<dyn JobHandler>)> {
    vec![(ports.lookup.settings().fetch_job(), Arc::new(FetchJob(ports.lookup.clone())))]
}
