//! The embedded engine's write side, shared by every app: one dedicated SQLite connection,
//! driven by one task, which commits many commands per transaction so one fsync covers a whole
//! batch; and the `Idempotency-Key` records every app's keyed commands are remembered in.
//!
//! Each app adds its own statements as a view over the same connection (`ledger.auctions()`,
//! `ledger.reservations()`, in that app's `sqlite` module), so they commit with the batch.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::StoreResult;
use crate::time::to_micros;

/// Most rows per multi-row INSERT: well under SQLite's bound-parameter limit, large enough that
/// a batch of hundreds of commands is a handful of statements. A power of two.
pub(crate) const ROWS_PER_INSERT: usize = 128;

/// The outcome of a request made with an `Idempotency-Key`, as stored for replays.
#[derive(Debug, Clone)]
pub struct KeyedOutcome {
    pub user_id: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub response: String,
    pub created_at: DateTime<Utc>,
}

/// Runs a statement without binds or results (transaction control) on the writer's connection.
pub(crate) async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::query(sql).execute(conn).await?;
    Ok(())
}

/// Opens a savepoint around one command's statements: see [`end_command`].
pub(crate) async fn begin_command(conn: &mut SqliteConnection) -> StoreResult<()> {
    exec(conn, "SAVEPOINT command").await
}

/// Keeps the command's statements if `written` is `Ok`, else undoes them (and only them), so
/// one command's failure leaves the rest of the batch intact.
pub(crate) async fn end_command(
    conn: &mut SqliteConnection,
    written: StoreResult<()>,
) -> StoreResult<()> {
    if written.is_err() {
        exec(conn, "ROLLBACK TO SAVEPOINT command").await?;
    }
    exec(conn, "RELEASE SAVEPOINT command").await?;
    written
}

/// The writer's connection and its batch transaction.
pub struct SqliteLedger {
    conn: SqliteConnection,
}

impl SqliteLedger {
    pub fn new(conn: SqliteConnection) -> Self {
        Self { conn }
    }

    /// The writer's connection, for the apps' statements inside the same batch.
    pub(crate) fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Starts a batch. IMMEDIATE takes the write lock now, so no statement inside the batch can
    /// fail later with a busy snapshot.
    pub async fn begin(&mut self) -> StoreResult<()> {
        exec(&mut self.conn, "BEGIN IMMEDIATE").await
    }

    /// Ends a batch durably (one WAL fsync with `synchronous=FULL`).
    pub async fn commit(&mut self) -> StoreResult<()> {
        exec(&mut self.conn, "COMMIT").await
    }

    pub async fn rollback(&mut self) -> StoreResult<()> {
        exec(&mut self.conn, "ROLLBACK").await
    }

    /// The stored outcome of a keyed request newer than `since`: `(request_hash, response)`.
    /// Keys belong to the user across every endpoint of every app.
    pub async fn idempotent_outcome(
        &mut self,
        user_id: Uuid,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<Option<(Vec<u8>, String)>> {
        Ok(sqlx::query_as(
            "select request_hash, response from idempotency_keys
             where user_id = ? and key = ? and created_at > ?",
        )
        .bind(user_id)
        .bind(key)
        .bind(to_micros(since))
        .fetch_optional(&mut self.conn)
        .await?)
    }

    /// Remembers keyed requests' outcomes (replacing expired records of the same keys).
    pub async fn remember_outcomes(&mut self, outcomes: &[KeyedOutcome]) -> StoreResult<()> {
        for chunk in outcomes.chunks(ROWS_PER_INSERT) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
                "insert or replace into idempotency_keys (user_id, key, request_hash, response, created_at) ",
            );
            builder.push_values(chunk, |mut row, outcome| {
                row.push_bind(outcome.user_id)
                    .push_bind(outcome.key.clone())
                    .push_bind(outcome.request_hash.clone())
                    .push_bind(outcome.response.clone())
                    .push_bind(to_micros(outcome.created_at));
            });
            builder.build().execute(&mut self.conn).await?;
        }
        Ok(())
    }

    /// Drops idempotency records older than `before`; returns how many.
    pub async fn forget_outcomes_before(&mut self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("delete from idempotency_keys where created_at <= ?")
            .bind(to_micros(before))
            .execute(&mut self.conn)
            .await?;
        Ok(done.rows_affected())
    }
}
