//! The job queue on PostgreSQL: replicas claim due jobs with `FOR UPDATE SKIP LOCKED`, so two
//! replicas polling at once never claim the same job and never wait for each other.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use super::{AfterFailure, ClaimedJob, JobCount, JobQueue, JobRecord, NewJob, clipped};
use crate::StoreResult;

#[derive(Clone)]
pub struct PgJobs {
    pool: PgPool,
}

impl PgJobs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Jobs of the kinds bound first that are due at the time bound second: queued and due, or
/// running with a lease that ran out.
macro_rules! due {
    () => {
        "kind = any($1)
     and ((status = 'queued' and run_at <= $2) or (status = 'running' and lease_until <= $2))"
    };
}

#[async_trait]
impl JobQueue for PgJobs {
    async fn enqueue(&self, job: NewJob, now: DateTime<Utc>) -> StoreResult<bool> {
        let added = sqlx::query(
            "insert into jobs (id, kind, dedupe_key, payload, status, max_attempts, run_at,
                               created_at, updated_at)
             values ($1, $2, $3, $4, 'queued', $5, $6, $7, $7)
             on conflict do nothing",
        )
        .bind(job.id)
        .bind(&job.kind)
        .bind(&job.dedupe_key)
        .bind(&job.payload)
        .bind(job.max_attempts.max(1) as i32)
        .bind(job.run_at)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    async fn claim(
        &self,
        kinds: &[&str],
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedJob>> {
        let kinds: Vec<String> = kinds.iter().map(|kind| (*kind).to_owned()).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "update jobs set status = 'dead', lease_until = null, locked_by = null, updated_at = $2,
                 last_error = coalesce(last_error, 'the worker stopped during its last attempt')
             where id in (select id from jobs
                          where ", due!(), " and status = 'running' and attempts >= max_attempts
                          for update skip locked)"
        ))
        .bind(&kinds)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(concat!(
            "update jobs set status = 'running', attempts = attempts + 1, lease_until = $3,
                 locked_by = $4, updated_at = $2
             where id in (select id from jobs where ",
            due!(),
            "
                          order by run_at limit $5 for update skip locked)
             returning id, kind, payload, attempts, max_attempts"
        ))
        .bind(&kinds)
        .bind(now)
        .bind(lease_until)
        .bind(worker)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedJob {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    payload: row.try_get("payload")?,
                    attempt: row.try_get::<i32, _>("attempts")? as u32,
                    max_attempts: row.try_get::<i32, _>("max_attempts")? as u32,
                })
            })
            .collect()
    }

    async fn complete(&self, job: &ClaimedJob, worker: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "delete from jobs where id = $1 and status = 'running' and locked_by = $2
                 and attempts = $3",
        )
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt as i32)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn fail(
        &self,
        job: &ClaimedJob,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<AfterFailure> {
        let dead = retry_at.is_none() || job.attempt >= job.max_attempts;
        let changed = sqlx::query(
            "update jobs set status = $1, run_at = coalesce($2, run_at), lease_until = null,
                 locked_by = null, last_error = $3, updated_at = $4
             where id = $5 and status = 'running' and locked_by = $6 and attempts = $7",
        )
        .bind(if dead { "dead" } else { "queued" })
        .bind(retry_at)
        .bind(clipped(error))
        .bind(now)
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt as i32)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(match (changed, dead) {
            (0, _) => AfterFailure::LeaseLost,
            (_, true) => AfterFailure::Dead,
            (_, false) => AfterFailure::Retrying,
        })
    }

    async fn defer(
        &self,
        job: &ClaimedJob,
        worker: &str,
        run_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "update jobs set status = 'queued', attempts = attempts - 1, run_at = $1,
                 lease_until = null, locked_by = null, updated_at = $2
             where id = $3 and status = 'running' and locked_by = $4 and attempts = $5",
        )
        .bind(run_at)
        .bind(now)
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt as i32)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn release_running(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query(
            "update jobs set lease_until = $1, updated_at = $1 where status = 'running'",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn counts(&self) -> StoreResult<Vec<JobCount>> {
        let rows = sqlx::query(
            "select kind, status, count(*) as n from jobs group by kind, status order by kind, status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JobCount {
                    kind: row.try_get("kind")?,
                    status: row.try_get("status")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    async fn find(&self, kind: &str, dedupe_key: &str) -> StoreResult<Vec<JobRecord>> {
        let rows = sqlx::query(
            "select id, kind, dedupe_key, status, attempts, run_at, last_error from jobs
             where kind = $1 and dedupe_key = $2 order by created_at desc, id desc",
        )
        .bind(kind)
        .bind(dedupe_key)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JobRecord {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    dedupe_key: row.try_get("dedupe_key")?,
                    status: row.try_get("status")?,
                    attempts: row.try_get::<i32, _>("attempts")? as u32,
                    run_at: row.try_get("run_at")?,
                    last_error: row.try_get("last_error")?,
                })
            })
            .collect()
    }
}
