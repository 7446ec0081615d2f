//! The job queue on SQLite: one writer at a time, so a single `UPDATE … RETURNING` claims
//! atomically. A poll first looks with a read, so an idle queue never takes the write lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool};

use super::{
    AfterFailure, COUNTS, ClaimedJob, ClaimedRow, CountRow, JobCount, JobQueue, JobRecord, NewJob,
    RECORD_COLUMNS, RecordRow, clipped,
};
use crate::StoreResult;
use crate::time::to_micros;

#[derive(Clone)]
pub struct SqliteJobs {
    pool: SqlitePool,
}

impl SqliteJobs {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// Jobs of the kinds in the JSON array bound first that are due at the time bound second: queued
/// and due, or running with a lease that ran out.
macro_rules! due {
    () => {
        "kind in (select value from json_each(?1))
     and ((status = 'queued' and run_at <= ?2) or (status = 'running' and lease_until <= ?2))"
    };
}

#[async_trait]
impl JobQueue for SqliteJobs {
    async fn enqueue(&self, job: NewJob, now: DateTime<Utc>) -> StoreResult<bool> {
        let added = sqlx::query(
            "insert into jobs (id, kind, dedupe_key, payload, status, max_attempts, run_at,
                               created_at, updated_at)
             values (?, ?, ?, ?, 'queued', ?, ?, ?, ?)
             on conflict do nothing",
        )
        .bind(job.id)
        .bind(&job.kind)
        .bind(&job.dedupe_key)
        .bind(&job.payload)
        .bind(job.max_attempts.max(1) as i64)
        .bind(to_micros(job.run_at))
        .bind(to_micros(now))
        .bind(to_micros(now))
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
        let kinds = serde_json::to_string(kinds).unwrap_or_else(|_| "[]".to_owned());
        let now = to_micros(now);
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
            "update jobs set status = 'dead', lease_until = null, locked_by = null, updated_at = ?2,
                 last_error = coalesce(last_error, 'the worker stopped during its last attempt')
             where ", due!(), " and status = 'running' and attempts >= max_attempts"
        ))
        .bind(&kinds)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<ClaimedRow> = sqlx::query_as(concat!(
            "update jobs set status = 'running', attempts = attempts + 1, lease_until = ?3,
                 locked_by = ?4, updated_at = ?2
             where id in (select id from jobs where ",
            due!(),
            " order by run_at limit ?5)
             returning id, kind, payload, attempts, max_attempts"
        ))
        .bind(&kinds)
        .bind(now)
        .bind(to_micros(lease_until))
        .bind(worker)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(ClaimedJob::from).collect())
    }

    async fn complete(&self, job: &ClaimedJob, worker: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "delete from jobs where id = ? and status = 'running' and locked_by = ? and attempts = ?",
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
            "update jobs set status = ?, run_at = coalesce(?, run_at), lease_until = null,
                 locked_by = null, last_error = ?, updated_at = ?
             where id = ? and status = 'running' and locked_by = ? and attempts = ?",
        )
        .bind(if dead { "dead" } else { "queued" })
        .bind(retry_at.map(to_micros))
        .bind(clipped(error))
        .bind(to_micros(now))
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
            "update jobs set status = 'queued', attempts = attempts - 1, run_at = ?,
                 lease_until = null, locked_by = null, updated_at = ?
             where id = ? and status = 'running' and locked_by = ? and attempts = ?",
        )
        .bind(to_micros(run_at))
        .bind(to_micros(now))
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
            "update jobs set lease_until = ?1, updated_at = ?1 where status = 'running'",
        )
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn counts(&self) -> StoreResult<Vec<JobCount>> {
        let rows: Vec<CountRow> = sqlx::query_as(COUNTS).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(JobCount::from).collect())
    }

    async fn find(&self, kind: &str, dedupe_key: &str) -> StoreResult<Vec<JobRecord>> {
        let rows: Vec<RecordRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RECORD_COLUMNS} from jobs where kind = ? and dedupe_key = ?
             order by created_at desc, id desc"
        )))
        .bind(kind)
        .bind(dedupe_key)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(JobRecord::from).collect())
    }
}
