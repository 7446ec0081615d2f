//! LeetCode problem lookups: cache, database, then the upstream — once per slug however many
//! requests miss at once, across replicas too — and a durable job when the upstream is slow or
//! down, so that a later lookup finds the answer without the client doing anything.
//!
//! The order of a lookup ([`ProblemLookup::get`]):
//! 1. the two-tier cache (process, then Redis), whose concurrent misses in a process share one
//!    load;
//! 2. the database: a problem fetched within the hour, or a "no such problem" within 10 minutes;
//! 3. the upstream, by the one replica holding the slug's flight key (Redis `SET NX`); the
//!    others wait for its answer in the database. A found problem and a "no such problem" are
//!    stored; a failure enqueues the `ratings.fetch` job and the caller answers "pending".

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use surge_core::ratings::{MISSING_TTL_SECS, Problem, Tag, rating};
use surge_store::ratings::ProblemStore;

use crate::EngineError;
use crate::cache::TwoTierCache;
use crate::clock::Clock;
use crate::jobs::{JobFailure, JobHandler, JobKind, Jobs};
use crate::redis::{KeySpace, RedisConnection};

pub mod upstream;

/// A problem as the upstream describes it, before it is rated and stamped.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamProblem {
    pub question_id: String,
    pub title: String,
    pub difficulty: String,
    pub ac_rate: f64,
    pub tags: Vec<Tag>,
}

/// What the upstream answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Found(UpstreamProblem),
    /// It says there is no such problem.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream did not answer within the timeout")]
    Timeout,
    #[error("the outbound rate limit allows no call within the timeout")]
    Busy,
    #[error("the upstream is unreachable: {0}")]
    Unreachable(String),
    #[error("the upstream answered HTTP {0}")]
    Status(u16),
    #[error("the upstream answered garbage: {0}")]
    Garbage(String),
}

/// The problem source: LeetCode's GraphQL ([`upstream::LeetCode`]), or a test double.
#[async_trait]
pub trait Upstream: Send + Sync {
    async fn fetch(&self, slug: &str) -> Result<Fetched, UpstreamError>;
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Arc<Problem>),
    /// The upstream says there is no such problem (remembered for 10 minutes).
    Missing,
    /// The upstream is slow or failing; the fetch job will have the answer later.
    Pending,
}

/// An answer as the cache tiers keep it, with the time it stops being served.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    problem: Option<Problem>,
    fresh_until: DateTime<Utc>,
}

impl Cached {
    fn lookup(&self) -> Lookup {
        match &self.problem {
            Some(problem) => Lookup::Found(Arc::new(problem.clone())),
            None => Lookup::Missing,
        }
    }
}

/// An upstream fetch's outcome, once stored.
enum Outcome {
    Answered(Cached),
    Failed(String),
}

#[derive(Debug, Clone, Copy)]
pub struct RatingsSettings {
    pub upstream_timeout: Duration,
    /// The fetch job's first retry delay, doubled (with jitter) for each later one.
    pub retry_base: Duration,
    /// Attempts of a fetch job before it is dead.
    pub max_attempts: u32,
}

impl RatingsSettings {
    /// The durable fetch job: retried from `retry_base`, leased for two upstream timeouts.
    pub fn fetch_job(&self) -> JobKind {
        JobKind {
            name: FETCH_JOB,
            max_attempts: self.max_attempts.max(1),
            retry_base: self.retry_base,
            lease: self.upstream_timeout * 2 + Duration::from_secs(2),
        }
    }

    /// What `Retry-After` says while a fetch is pending, in whole seconds.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_base.as_millis().div_ceil(1000).max(1) as u64
    }
}

pub const FETCH_JOB: &str = "ratings.fetch";
/// A stale problem served while the upstream fails is looked at again after this long.
const STALE_RECHECK: chrono::Duration = chrono::Duration::seconds(30);
/// How often a replica waiting for another's fetch looks whether it has finished.
const FLIGHT_POLL: Duration = Duration::from_millis(20);
const CACHE_NAMESPACE: &str = "problems";

/// The one-replica-per-slug fetch key in Redis (none on the embedded backend, where the
/// process's single flight is the whole story).
#[derive(Clone)]
pub struct Flights {
    conn: RedisConnection,
    keys: KeySpace,
}

impl Flights {
    pub fn new(conn: RedisConnection, keys: KeySpace) -> Self {
        Self { conn, keys }
    }

    async fn try_take(&self, slug: &str, ttl: Duration) -> Result<bool, String> {
        let mut command = ::redis::cmd("SET");
        command
            .arg(self.keys.flight(CACHE_NAMESPACE, slug))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        let mut conn = self.conn.clone();
        let taken: Option<String> =
            command.query_async(&mut conn).await.map_err(|error| error.to_string())?;
        Ok(taken.is_some())
    }

    async fn held(&self, slug: &str) -> bool {
        let mut command = ::redis::cmd("EXISTS");
        command.arg(self.keys.flight(CACHE_NAMESPACE, slug));
        let mut conn = self.conn.clone();
        command.query_async::<i64>(&mut conn).await.map(|n| n > 0).unwrap_or(false)
    }

    async fn release(&self, slug: &str) {
        let mut command = ::redis::cmd("DEL");
        command.arg(self.keys.flight(CACHE_NAMESPACE, slug));
        let mut conn = self.conn.clone();
        let _ = command.query_async::<i64>(&mut conn).await;
    }
}

pub struct ProblemLookup {
    store: Arc<dyn ProblemStore>,
    upstream: Arc<dyn Upstream>,
    jobs: Jobs,
    settings: RatingsSettings,
    cache: TwoTierCache<Cached>,
    flights: Option<Flights>,
    clock: Arc<dyn Clock>,
}

impl ProblemLookup {
    pub fn new(
        store: Arc<dyn ProblemStore>,
        upstream: Arc<dyn Upstream>,
        jobs: Jobs,
        settings: RatingsSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let ttl = Duration::from_secs(surge_core::ratings::PROBLEM_TTL_SECS as u64);
        Self {
            store,
            upstream,
            jobs,
            settings,
            cache: TwoTierCache::new(CACHE_NAMESPACE, 100_000, ttl),
            flights: None,
            clock,
        }
    }

    /// Shares the cache and the fetch keys with every replica.
    pub fn with_redis(mut self, conn: RedisConnection, keys: KeySpace) -> Self {
        self.cache = self.cache.with_redis(conn.clone(), keys.clone());
        self.flights = Some(Flights::new(conn, keys));
        self
    }

    pub fn settings(&self) -> &RatingsSettings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn ProblemStore> {
        &self.store
    }

    /// The job queue the fetch jobs go to.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The problem `slug` (already validated), from the nearest tier that has a fresh answer.
    pub async fn get(&self, slug: &str) -> Result<Lookup, EngineError> {
        for _ in 0..2 {
            let cached = self.cache.get_or_load(slug, || self.load(slug)).await?;
            match cached {
                None => return Ok(Lookup::Pending),
                Some(cached) if cached.fresh_until > self.clock.now() => {
                    return Ok(cached.lookup());
                }
                // Expired while cached: drop it and load again (once).
                Some(_) => self.cache.invalidate(slug).await,
            }
        }
        Ok(Lookup::Pending)
    }

    /// The fetch job's work: done when a fresh answer is stored; otherwise a load through the
    /// same single flight as the lookups (so a lookup arriving meanwhile joins this fetch
    /// rather than making its own), and done if that stored one.
    pub async fn refresh(&self, slug: &str) -> Result<(), JobFailure> {
        let retry = |error: EngineError| JobFailure::Retry(error.to_string());
        if self.stored(slug).await.map_err(retry)?.is_some() {
            return Ok(());
        }
        // Whatever the cache holds for the slug is stale or a stand-in for a failure.
        self.cache.invalidate(slug).await;
        self.cache.get_or_load(slug, || self.load(slug)).await.map_err(retry)?;
        match self.stored(slug).await.map_err(retry)? {
            Some(_) => Ok(()),
            None => Err(JobFailure::Retry("the upstream has no answer yet".into())),
        }
    }

    /// The cache's loader: the database, else the upstream. `None`: pending.
    async fn load(&self, slug: &str) -> Result<Option<Cached>, EngineError> {
        if let Some(cached) = self.stored(slug).await? {
            return Ok(Some(cached));
        }
        let stale = self.store.get(slug).await?;
        match self.fetch_once(slug).await? {
            Outcome::Answered(cached) => Ok(Some(cached)),
            Outcome::Failed(reason) => {
                tracing::info!(slug, reason, "upstream fetch failed; a job will retry it");
                let payload = serde_json::json!({ "slug": slug }).to_string();
                self.jobs
                    .enqueue(
                        &self.settings.fetch_job(),
                        Some(slug),
                        payload,
                        self.settings.retry_base,
                    )
                    .await?;
                // A stale problem beats "pending"; it is looked at again soon.
                Ok(stale.map(|problem| Cached {
                    problem: Some(problem),
                    fresh_until: self.clock.now() + STALE_RECHECK,
                }))
            }
        }
    }

    /// A fresh answer in the database, if there is one.
    async fn stored(&self, slug: &str) -> Result<Option<Cached>, EngineError> {
        let now = self.clock.now();
        if let Some(problem) = self.store.get(slug).await? {
            let fresh_until = problem.fresh_until();
            if fresh_until > now {
                return Ok(Some(Cached { problem: Some(problem), fresh_until }));
            }
            return Ok(None);
        }
        Ok(self
            .store
            .missing_until(slug)
            .await?
            .filter(|until| *until > now)
            .map(|until| Cached { problem: None, fresh_until: until }))
    }

    /// Asks the upstream, unless another replica is asking already: then waits for its answer.
    async fn fetch_once(&self, slug: &str) -> Result<Outcome, EngineError> {
        let Some(flights) = &self.flights else { return self.fetch_and_store(slug).await };
        let hold = self.settings.upstream_timeout + Duration::from_secs(2);
        match flights.try_take(slug, hold).await {
            Ok(true) => {
                let outcome = self.fetch_and_store(slug).await;
                flights.release(slug).await;
                outcome
            }
            Ok(false) => {
                let deadline = tokio::time::Instant::now() + self.settings.upstream_timeout;
                while flights.held(slug).await && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(FLIGHT_POLL).await;
                }
                Ok(match self.stored(slug).await? {
                    Some(cached) => Outcome::Answered(cached),
                    None => Outcome::Failed("another replica's fetch has no answer yet".into()),
                })
            }
            // Redis is down: this replica asks on its own rather than not at all.
            Err(error) => {
                tracing::warn!(error, "cannot take the fetch key; fetching anyway");
                self.fetch_and_store(slug).await
            }
        }
    }

    async fn fetch_and_store(&self, slug: &str) -> Result<Outcome, EngineError> {
        let fetched = self.upstream.fetch(slug).await;
        let outcome = match &fetched {
            Ok(Fetched::Found(_)) => "found",
            Ok(Fetched::Missing) => "missing",
            Err(UpstreamError::Timeout) => "timeout",
            Err(UpstreamError::Busy) => "busy",
            Err(_) => "failed",
        };
        metrics::counter!("surge_ratings_upstream_calls_total", "outcome" => outcome).increment(1);
        let now = self.clock.now();
        match fetched {
            Ok(Fetched::Found(found)) => {
                let Some(rating) = rating(found.ac_rate) else {
                    return Ok(Outcome::Failed("the acceptance rate is not a number".into()));
                };
                let problem = Problem {
                    slug: slug.to_owned(),
                    question_id: found.question_id,
                    title: found.title,
                    difficulty: found.difficulty,
                    ac_rate: found.ac_rate,
                    rating,
                    tags: found.tags,
                    fetched_at: now,
                };
                self.store.save(&problem).await?;
                let fresh_until = problem.fresh_until();
                Ok(Outcome::Answered(Cached { problem: Some(problem), fresh_until }))
            }
            Ok(Fetched::Missing) => {
                let until = now + chrono::Duration::seconds(MISSING_TTL_SECS);
                self.store.remember_missing(slug, until).await?;
                Ok(Outcome::Answered(Cached { problem: None, fresh_until: until }))
            }
            Err(error) => Ok(Outcome::Failed(error.to_string())),
        }
    }
}

/// The `ratings.fetch` job: payload `{"slug": "…"}`.
pub struct FetchJob(pub Arc<ProblemLookup>);

#[derive(Deserialize)]
struct FetchPayload {
    slug: String,
}

#[async_trait]
impl JobHandler for FetchJob {
    async fn run(&self, payload: &str) -> Result<(), JobFailure> {
        let payload: FetchPayload = serde_json::from_str(payload)
            .map_err(|error| JobFailure::Permanent(format!("unreadable payload: {error}")))?;
        if !surge_core::ratings::valid_slug(&payload.slug) {
            return Err(JobFailure::Permanent(format!("`{}` is not a slug", payload.slug)));
        }
        self.0.refresh(&payload.slug).await
    }
}
