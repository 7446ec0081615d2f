//! Applying shard-stream events to PostgreSQL: fence, then each app's events, idempotently.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use surge_core::events::AppEvent;

use super::ApplyError;
use crate::StoreResult;

/// The persister's side of PostgreSQL. Every write of a batch happens in one transaction that
/// first raises the shard's fencing epoch to the writer's own (refusing if a newer holder has
/// already written), so a stale lease holder can never commit, and a batch applied twice (a
/// holder died between COMMIT and XACK) changes nothing the second time.
#[derive(Clone)]
pub struct PgEventLedger {
    pool: PgPool,
}

impl PgEventLedger {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies `events` (in stream order) for `shard` as the holder of lease `epoch`.
    pub async fn apply(
        &self,
        shard: u16,
        epoch: i64,
        events: &[AppEvent],
        now: DateTime<Utc>,
    ) -> Result<(), ApplyError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let raised: Option<i64> = sqlx::query_scalar(
            "insert into shard_fences (shard, epoch, updated_at) values ($1, $2, $3)
             on conflict (shard) do update set epoch = excluded.epoch, updated_at = excluded.updated_at
             where shard_fences.epoch <= excluded.epoch
             returning epoch",
        )
        .bind(i32::from(shard))
        .bind(epoch)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        if raised.is_none() {
            let newer: i64 = sqlx::query_scalar("select epoch from shard_fences where shard = $1")
                .bind(i32::from(shard))
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
            return Err(ApplyError::Fenced { newer });
        }

        let mut auctions = Vec::new();
        let mut cinema = Vec::new();
        let mut orders = Vec::new();
        let mut points = Vec::new();
        for event in events {
            match event {
                AppEvent::Auction(event) => auctions.push(event),
                AppEvent::Cinema(event) => cinema.push(event),
                AppEvent::Order(event) => orders.push(event),
                AppEvent::Points(event) => points.push(event),
            }
        }
        crate::auctions::postgres::apply_events(&mut tx, &auctions).await?;
        crate::cinema::postgres::apply_events(&mut tx, &cinema).await?;
        crate::deals::postgres::apply_points_events(&mut tx, &points).await?;
        crate::deals::postgres::apply_order_events(&mut tx, &orders).await?;
        tx.commit().await.map_err(classify)
    }

    /// Records an entry that cannot be applied, with why. Recording it twice keeps one row.
    pub async fn dead_letter(
        &self,
        shard: u16,
        stream_id: &str,
        entry: &serde_json::Value,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApplyError> {
        sqlx::query(
            "insert into dead_letters (shard, stream_id, event, error, created_at)
             values ($1, $2, $3, $4, $5) on conflict (shard, stream_id) do nothing",
        )
        .bind(i32::from(shard))
        .bind(stream_id)
        .bind(entry)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// How many entries sit in the dead-letter table.
    pub async fn dead_letter_count(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("select count(*) from dead_letters").fetch_one(&self.pool).await?)
    }
}

/// Transient failures are retried with the same batch; anything the data itself caused
/// (integrity class 23, data exception class 22) is permanent and ends in the dead letter.
pub(crate) fn classify(error: sqlx::Error) -> ApplyError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code.starts_with("23") || code.starts_with("22") {
                ApplyError::Permanent(format!("{} ({code})", db.message()))
            } else {
                ApplyError::Transient(format!("{} ({code})", db.message()))
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => ApplyError::Permanent(error.to_string()),
        _ => ApplyError::Transient(error.to_string()),
    }
}
