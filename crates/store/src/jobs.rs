//! The durable job queue every app shares: jobs stored in the database, claimed with a lease so
//! that a job whose worker died is claimed again by another worker (or replica), retried at a
//! time the caller chooses, and parked as `dead` with its last error after its last attempt.
//! Workers and handlers live in `surge-engine::jobs`; the retry arithmetic in
//! `surge-core::jobs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreResult;
use crate::sql::{DbTime, Dialect};

pub mod postgres;
pub mod sqlite;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    /// Which handler runs it (`ratings.fetch`, …).
    pub kind: String,
    /// At most one queued or running job per kind and key: enqueueing the same key again is a
    /// no-op while the first is active.
    pub dedupe_key: Option<String>,
    /// What the handler needs, as JSON.
    pub payload: String,
    pub run_at: DateTime<Utc>,
    pub max_attempts: u32,
}

/// A job a worker has claimed: it holds the lease for this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// This attempt's number, 1 for the first.
    pub attempt: u32,
    pub max_attempts: u32,
}

/// Where a failed attempt left its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Queued again for its retry time.
    Retrying,
    /// Out of attempts (or failed for good): parked as dead.
    Dead,
    /// The worker no longer held the lease (it ran out and another worker claimed the job):
    /// nothing changed.
    LeaseLost,
}

/// A job's state as stored, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: String,
    pub dedupe_key: Option<String>,
    pub status: String,
    pub attempts: u32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// How many jobs of a kind are in a status (`queued`, `running`, `dead`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub kind: String,
    pub status: String,
    pub count: i64,
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds `job` unless an active job has its kind and dedupe key; true when added.
    async fn enqueue(&self, job: NewJob, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Claims up to `limit` due jobs of `kinds` for `worker`, leased until `lease_until`: queued
    /// jobs whose time has come, and running jobs whose lease ran out (their worker died). Each
    /// claim counts an attempt; a job whose lease ran out on its last attempt becomes dead.
    async fn claim(
        &self,
        kinds: &[&str],
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedJob>>;

    /// The attempt succeeded: the job is removed, if `worker` still holds this attempt.
    async fn complete(&self, job: &ClaimedJob, worker: &str) -> StoreResult<bool>;

    /// The attempt failed with `error`: the job runs again at `retry_at`, or is dead when this
    /// was its last attempt or `retry_at` is `None` (a failure no retry can fix).
    async fn fail(
        &self,
        job: &ClaimedJob,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<AfterFailure>;

    /// The attempt could not start yet (a rate limit said "later"): queued again for `run_at`,
    /// the attempt not counted; false when `worker` no longer held it.
    async fn defer(
        &self,
        job: &ClaimedJob,
        worker: &str,
        run_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Makes every running job claimable at once: the embedded server, the only worker there
    /// is, calls it at start-up for the jobs its previous run was killed in the middle of.
    async fn release_running(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Jobs per kind and status, for metrics.
    async fn counts(&self) -> StoreResult<Vec<JobCount>>;

    /// The jobs with this kind and key, newest first.
    async fn find(&self, kind: &str, dedupe_key: &str) -> StoreResult<Vec<JobRecord>>;
}

/// A claimed job as `RETURNING id, kind, payload, attempts, max_attempts` gives it.
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedRow {
    id: Uuid,
    kind: String,
    payload: String,
    attempts: i64,
    max_attempts: i64,
}

impl From<ClaimedRow> for ClaimedJob {
    fn from(row: ClaimedRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            payload: row.payload,
            attempt: row.attempts as u32,
            max_attempts: row.max_attempts as u32,
        }
    }
}

/// `kind, status, n` of [`COUNTS`].
#[derive(sqlx::FromRow)]
pub(crate) struct CountRow {
    kind: String,
    status: String,
    n: i64,
}

impl From<CountRow> for JobCount {
    fn from(row: CountRow) -> Self {
        Self { kind: row.kind, status: row.status, count: row.n }
    }
}

/// Jobs per kind and status: the same statement on both backends.
pub(crate) const COUNTS: &str =
    "select kind, status, count(*) as n from jobs group by kind, status order by kind, status";

/// A job's stored state, as [`RECORD_COLUMNS`] gives it.
#[derive(sqlx::FromRow)]
pub(crate) struct RecordRow<DB: Dialect> {
    id: Uuid,
    kind: String,
    dedupe_key: Option<String>,
    status: String,
    attempts: i64,
    run_at: DB::Time,
    last_error: Option<String>,
}

pub(crate) const RECORD_COLUMNS: &str =
    "id, kind, dedupe_key, status, attempts, run_at, last_error";

impl<DB: Dialect> From<RecordRow<DB>> for JobRecord {
    fn from(row: RecordRow<DB>) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            dedupe_key: row.dedupe_key,
            status: row.status,
            attempts: row.attempts as u32,
            run_at: row.run_at.utc(),
            last_error: row.last_error,
        }
    }
}

/// The error kept on a dead job is cut to this many characters.
pub const MAX_ERROR_LEN: usize = 1000;

fn clipped(error: &str) -> String {
    error.chars().take(MAX_ERROR_LEN).collect()
}
