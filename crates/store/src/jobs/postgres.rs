//! The job queue on PostgreSQL: replicas claim due jobs with `FOR UPDATE SKIP LOCKED`, so two
//! replicas polling at once never claim the same job and never wait for each other.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};

use super::{
    AfterFailure, COUNTS, ClaimedJob, ClaimedRow, CountRow, JobCount, JobQueue, JobRecord, NewJob,
    RECORD_COLUMNS, RecordRow, clipped,
};
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
        .bind(job.max_attempts.max(1) as i64)
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
        // Every replica polls several times a second: an idle poll is one indexed read, not a
        // transaction of two updates.
        let any_due = sqlx::query(concat!("select 1 from jobs where ", due!(), " limit 1"))
            .bind(&kinds)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        if any_due.is_none() {
            return Ok(Vec::new());
        }
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
        let rows: Vec<ClaimedRow> = sqlx::query_as(concat!(
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
        Ok(rows.into_iter().map(ClaimedJob::from).collect())
    }

    async fn complete(&self, job: &ClaimedJob, worker: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "delete from jobs where id = $1 and status = 'running' and locked_by = $2
                 and attempts = $3",
        )
        .bind(job.id)
        .bind(worker)
        .bind(job.attempt as i64)
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
        .bind(job.attempt as i64)
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
        .bind(job.attempt as i64)
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
        let rows: Vec<CountRow> = sqlx::query_as(COUNTS).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(JobCount::from).collect())
    }

    async fn find(&self, kind: &str, dedupe_key: &str) -> StoreResult<Vec<JobRecord>> {
        let rows: Vec<RecordRow<Postgres>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RECORD_COLUMNS} from jobs where kind = $1 and dedupe_key = $2
             order by created_at desc, id desc"
        )))
        .bind(kind)
        .bind(dedupe_key)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(JobRecord::from).collect())
    }
}
