//! Durable jobs for the whole server: work that must happen even if the process handling the
//! request dies (an upstream fetch that timed out, an SMS no provider took). A job is a row in
//! the database ([`surge_store::jobs`]); every process runs a [`JobRunner`] that claims due
//! jobs under a lease, runs their kind's [`JobHandler`], and then deletes the job, schedules
//! its retry (exponential backoff with jitter, [`surge_core::jobs::retry_delay`]) or parks it
//! as dead after its last attempt. A job whose worker died is claimed again once its lease runs
//! out, by any replica; so handlers must be idempotent — they may run twice.
//!
//! To add a job kind: a [`JobKind`] (name, attempts, backoff, lease) and a handler, listed in
//! the server's wiring; enqueue with [`Jobs::enqueue`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use surge_store::jobs::{AfterFailure, ClaimedJob, JobQueue, NewJob};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::EngineError;
use crate::clock::Clock;
use crate::workers::BackgroundJob;

/// How often an idle runner looks for due jobs (a job enqueued by this process wakes it at
/// once; one enqueued by another replica, or a retry coming due, waits at most this long).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How many jobs one process runs at once.
pub const CONCURRENCY: usize = 16;
/// How often the job counts are published as metrics.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Worth another attempt (the upstream was down, timed out, answered garbage).
    Retry(String),
    /// No attempt can succeed (the payload is unreadable): dead at once.
    Permanent(String),
    /// Not started (a rate limit): run again after this long, the attempt not counted.
    Later(Duration),
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFailure::Retry(reason) | JobFailure::Permanent(reason) => f.write_str(reason),
            JobFailure::Later(delay) => write!(f, "deferred by {} ms", delay.as_millis()),
        }
    }
}

/// What runs a kind of job. It must be idempotent: a job is run again when its worker died
/// before recording the outcome.
#[async_trait]
pub trait JobHandler: Send + Sync {
    async fn run(&self, payload: &str) -> Result<(), JobFailure>;
}

/// A kind of job and how it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKind {
    /// Names the handler, the rows and the metrics' `kind` label (`ratings.fetch`).
    pub name: &'static str,
    /// Attempts before the job is dead, the first included.
    pub max_attempts: u32,
    /// The delay before the first retry, doubled for each later one.
    pub retry_base: Duration,
    /// How long a worker may hold an attempt; the handler is stopped at its end, and a worker
    /// that died is replaced once it has passed.
    pub lease: Duration,
}

/// The enqueueing side, which every app holds: cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    /// Wakes this process's runner when it enqueues, so a job starts without a poll's delay.
    wake: Arc<Notify>,
}

impl Jobs {
    pub fn new(queue: Arc<dyn JobQueue>, clock: Arc<dyn Clock>) -> Self {
        Self { queue, clock, wake: Arc::new(Notify::new()) }
    }

    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    /// Enqueues a job of `kind` to run after `delay`, unless one with the same `dedupe_key` is
    /// already queued or running; true when this call added it.
    pub async fn enqueue(
        &self,
        kind: &JobKind,
        dedupe_key: Option<&str>,
        payload: String,
        delay: Duration,
    ) -> Result<bool, EngineError> {
        let now = self.clock.now();
        let run_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        let job = NewJob {
            id: Uuid::now_v7(),
            kind: kind.name.to_owned(),
            dedupe_key: dedupe_key.map(str::to_owned),
            payload,
            run_at,
            max_attempts: kind.max_attempts,
        };
        let added = self.queue.enqueue(job, now).await?;
        if added {
            metrics::counter!("surge_jobs_enqueued_total", "kind" => kind.name).increment(1);
            if delay.is_zero() {
                self.wake.notify_one();
            }
        }
        Ok(added)
    }
}

/// Runs the jobs of the registered kinds in this process.
pub struct JobRunner {
    jobs: Jobs,
    kinds: HashMap<&'static str, (JobKind, Arc<dyn JobHandler>)>,
    /// Names this process in the rows it claims.
    worker: String,
}

impl JobRunner {
    pub fn new(jobs: Jobs, worker: String) -> Self {
        Self { jobs, kinds: HashMap::new(), worker }
    }

    pub fn register(mut self, kind: JobKind, handler: Arc<dyn JobHandler>) -> Self {
        self.kinds.insert(kind.name, (kind, handler));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The runner as a job every process runs (not a singleton: replicas share the work, and
    /// the database decides who runs what).
    pub fn into_background(self) -> BackgroundJob {
        let runner = Arc::new(self);
        BackgroundJob::new("jobs", move || {
            let runner = runner.clone();
            async move { runner.run().await }
        })
    }

    /// Publishes the queued/running/dead counts of the registered kinds as
    /// `surge_jobs{kind,status}` gauges (0 where there are none).
    pub fn metrics(&self) -> BackgroundJob {
        let jobs = self.jobs.clone();
        let kinds: Vec<&'static str> = self.kinds.keys().copied().collect();
        BackgroundJob::every("jobs-metrics", METRICS_INTERVAL, move || {
            let (jobs, kinds) = (jobs.clone(), kinds.clone());
            async move {
                let counts = match jobs.queue.counts().await {
                    Ok(counts) => counts,
                    Err(error) => {
                        tracing::debug!(error = %error, "cannot count the jobs");
                        return;
                    }
                };
                for kind in kinds {
                    for status in ["queued", "running", "dead"] {
                        let count = counts
                            .iter()
                            .find(|c| c.kind == kind && c.status == status)
                            .map_or(0, |c| c.count);
                        metrics::gauge!("surge_jobs", "kind" => kind, "status" => status)
                            .set(count as f64);
                    }
                }
            }
        })
    }

    async fn run(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let kinds: Vec<&str> = self.kinds.keys().copied().collect();
        let longest_lease = self
            .kinds
            .values()
            .map(|(kind, _)| kind.lease)
            .max()
            .unwrap_or(Duration::from_secs(30));
        loop {
            let free = slots.available_permits() as u32;
            let claimed = if free == 0 {
                Vec::new()
            } else {
                let now = self.jobs.clock.now();
                let lease_until =
                    now + chrono::Duration::from_std(longest_lease).unwrap_or_default();
                match self.jobs.queue.claim(&kinds, &self.worker, now, lease_until, free).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot claim jobs; retrying");
                        Vec::new()
                    }
                }
            };
            let full = claimed.len() as u32 == free && free > 0;
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let runner = self.clone();
                tokio::spawn(async move {
                    runner.attempt(job).await;
                    drop(permit);
                });
            }
            if !full {
                let _ = tokio::time::timeout(POLL_INTERVAL, self.jobs.wake.notified()).await;
            }
        }
    }

    /// Runs one attempt and records its outcome.
    async fn attempt(&self, job: ClaimedJob) {
        let Some((kind, handler)) = self.kinds.get(job.kind.as_str()) else { return };
        let outcome = match tokio::time::timeout(kind.lease, handler.run(&job.payload)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(JobFailure::Retry(format!(
                "the attempt took longer than its lease ({} ms)",
                kind.lease.as_millis()
            ))),
        };
        let queue = &self.jobs.queue;
        let now = self.jobs.clock.now();
        let recorded = match &outcome {
            Ok(()) => queue.complete(&job, &self.worker).await.map(|done| {
                if done {
                    metrics::counter!("surge_jobs_completed_total", "kind" => kind.name)
                        .increment(1);
                }
            }),
            Err(JobFailure::Later(delay)) => {
                let run_at = now + chrono::Duration::from_std(*delay).unwrap_or_default();
                queue.defer(&job, &self.worker, run_at, now).await.map(drop)
            }
            Err(failure) => {
                let retry_at = match failure {
                    JobFailure::Retry(_) => {
                        let jitter = (Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
                        let delay =
                            surge_core::jobs::retry_delay(kind.retry_base, job.attempt, jitter);
                        Some(now + chrono::Duration::from_std(delay).unwrap_or_default())
                    }
                    JobFailure::Permanent(_) | JobFailure::Later(_) => None,
                };
                queue.fail(&job, &self.worker, &failure.to_string(), retry_at, now).await.map(
                    |after| match after {
                        AfterFailure::Retrying => {
                            metrics::counter!("surge_jobs_retried_total", "kind" => kind.name)
                                .increment(1);
                        }
                        AfterFailure::Dead => {
                            metrics::counter!("surge_jobs_dead_total", "kind" => kind.name)
                                .increment(1);
                            tracing::warn!(job.id = %job.id, job.kind = kind.name,
                                attempts = job.attempt, error = %failure, "job is dead");
                        }
                        AfterFailure::LeaseLost => {}
                    },
                )
            }
        };
        if let Err(error) = recorded {
            // The lease runs out and the job is claimed again: at least once, never lost.
            tracing::warn!(job.id = %job.id, error = %error, "cannot record a job's outcome");
        }
    }
}
