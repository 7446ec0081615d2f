//! SQLite implementation of the cinema repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqliteExecutor, SqlitePool};
use uuid::Uuid;

use super::{
    CinemaStore, MOVIE_COLUMNS, MovieRecord, NewScreening, NewTheater, ReservationRecord,
    ScreeningRecord, ShowingMovie, ShowingQuery, StoredReservation, attach, screening_state,
    seats_from_text, seats_to_text,
};
use crate::ledger::{SqliteLedger, begin_command, end_command};
use crate::sql::{
    self, MovieRow, RESERVATION_COLUMNS, ReservationRow, SCREENING_SELECT, ScreeningRow, SlotRow,
};
use crate::time::{from_micros, to_micros};
use crate::{StoreError, StoreResult};
use surge_core::cinema::{ScreeningState, Seat};
use surge_core::text::fold;

#[derive(Clone)]
pub struct SqliteCinema {
    pool: SqlitePool,
}

impl SqliteCinema {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl CinemaStore for SqliteCinema {
    async fn create_theater(&self, theater: NewTheater) -> StoreResult<()> {
        sqlx::query(
            "insert into theaters (id, name, rows, cols, created_at) values (?, ?, ?, ?, ?)",
        )
        .bind(theater.id)
        .bind(&theater.name)
        .bind(i64::from(theater.rows))
        .bind(i64::from(theater.cols))
        .bind(to_micros(theater.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_movie(&self, movie: MovieRecord, created_at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "insert into movies (id, title, title_folded, grade, genre, release_date,
                 thumbnail_url, running_minutes, created_at)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(movie.id)
        .bind(&movie.title)
        .bind(fold(&movie.title))
        .bind(movie.grade.as_str())
        .bind(movie.genre.as_str())
        .bind(movie.release_date)
        .bind(&movie.thumbnail_url)
        .bind(movie.running_minutes)
        .bind(to_micros(created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn movie(&self, id: Uuid) -> StoreResult<Option<MovieRecord>> {
        let row: Option<MovieRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {MOVIE_COLUMNS} from movies m where m.id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(MovieRecord::from))
    }

    async fn create_screening(&self, screening: NewScreening) -> StoreResult<()> {
        // IMMEDIATE takes the write lock first: the overlap check and the insert are atomic.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let theater: Option<i64> = sqlx::query_scalar("select 1 from theaters where id = ?")
            .bind(screening.theater_id)
            .fetch_optional(&mut *tx)
            .await?;
        let movie: Option<i64> = sqlx::query_scalar("select 1 from movies where id = ?")
            .bind(screening.movie_id)
            .fetch_optional(&mut *tx)
            .await?;
        if theater.is_none() || movie.is_none() {
            return Err(StoreError::NotFound);
        }
        let overlapping: Option<i64> = sqlx::query_scalar(
            "select 1 from screenings
             where theater_id = ? and starts_at < ? and ends_at > ? limit 1",
        )
        .bind(screening.theater_id)
        .bind(to_micros(screening.ends_at))
        .bind(to_micros(screening.starts_at))
        .fetch_optional(&mut *tx)
        .await?;
        if overlapping.is_some() {
            return Err(StoreError::Conflict("screening_overlap"));
        }
        sqlx::query(
            "insert into screenings (id, movie_id, theater_id, starts_at, ends_at, created_at)
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(screening.id)
        .bind(screening.movie_id)
        .bind(screening.theater_id)
        .bind(to_micros(screening.starts_at))
        .bind(to_micros(screening.ends_at))
        .bind(to_micros(screening.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn screening(&self, id: Uuid) -> StoreResult<Option<ScreeningRecord>> {
        screening(&self.pool, id).await
    }

    async fn now_showing(&self, query: &ShowingQuery) -> StoreResult<Vec<ShowingMovie>> {
        let movies: Vec<MovieRow> =
            sql::movies_showing::<Sqlite>(query, "").build_query_as().fetch_all(&self.pool).await?;
        if movies.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = movies.iter().map(|movie| movie.id).collect();
        let slots: Vec<SlotRow<Sqlite>> =
            slots_query(query, &ids, "").build_query_as().fetch_all(&self.pool).await?;
        let movies = movies.into_iter().map(MovieRecord::from).collect();
        Ok(attach(movies, slots.into_iter().map(SlotRow::into_slot)))
    }

    async fn now_showing_plan(&self, query: &ShowingQuery) -> StoreResult<Vec<String>> {
        let ids: Vec<Uuid> = self.now_showing(query).await?.iter().map(|m| m.movie.id).collect();
        let mut plan = Vec::new();
        for mut explain in [
            sql::movies_showing::<Sqlite>(query, "explain query plan "),
            slots_query(query, &ids, "explain query plan "),
        ] {
            let rows: Vec<(i64, i64, i64, String)> =
                explain.build_query_as().fetch_all(&self.pool).await?;
            plan.extend(rows.into_iter().map(|row| row.3));
        }
        Ok(plan)
    }

    async fn taken_seats(&self, screening_id: Uuid) -> StoreResult<Vec<Seat>> {
        let codes: Vec<String> =
            sqlx::query_scalar("select seat from reserved_seats where screening_id = ?")
                .bind(screening_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(codes.iter().filter_map(|code| Seat::parse(code)).collect())
    }

    async fn reservation(&self, id: Uuid) -> StoreResult<Option<ReservationRecord>> {
        let row: Option<ReservationRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RESERVATION_COLUMNS} from reservations where id = ? and cancelled_at is null"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ReservationRow::into_record))
    }

    async fn reservations_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ReservationRecord>> {
        let rows: Vec<ReservationRow<Sqlite>> =
            sql::reservations_of::<Sqlite>(user_id, before, limit)
                .build_query_as()
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(ReservationRow::into_record).collect())
    }
}

/// The window's screenings of the given movies, by start time: an id list, as SQLite has no
/// arrays (`null` for none, which matches nothing).
fn slots_query(query: &ShowingQuery, ids: &[Uuid], prefix: &str) -> QueryBuilder<Sqlite> {
    let mut slots: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}select s.id, s.movie_id, s.theater_id, t.name as theater_name, s.starts_at,
                s.ends_at
         from screenings s join theaters t on t.id = s.theater_id
         where s.starts_at >= "
    ));
    slots
        .push_bind(to_micros(query.from))
        .push(" and s.starts_at < ")
        .push_bind(to_micros(query.until));
    slots.push(" and s.movie_id in (");
    let mut list = slots.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    if ids.is_empty() {
        list.push("null");
    }
    slots.push(") order by s.starts_at, s.id");
    slots
}

/// A screening, on the pool or on the embedded writer's connection.
async fn screening(
    executor: impl SqliteExecutor<'_>,
    id: Uuid,
) -> StoreResult<Option<ScreeningRecord>> {
    let row: Option<ScreeningRow<Sqlite>> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SCREENING_SELECT} where s.id = ?")))
            .bind(id)
            .fetch_optional(executor)
            .await?;
    Ok(row.map(ScreeningRow::into_record))
}

impl SqliteLedger {
    /// The cinema statements of the embedded writer, inside its current batch.
    pub fn reservations(&mut self) -> ReservationLedger<'_> {
        ReservationLedger { conn: self.connection() }
    }
}

/// Reservation writes on the embedded writer's connection: they commit with the batch.
pub struct ReservationLedger<'c> {
    conn: &'c mut SqliteConnection,
}

impl ReservationLedger<'_> {
    /// A screening's state for the reservation rule, rebuilt from its reservations.
    pub async fn screening_state(&mut self, id: Uuid) -> StoreResult<Option<ScreeningState>> {
        let Some(record) = screening(&mut *self.conn, id).await? else { return Ok(None) };
        #[derive(sqlx::FromRow)]
        struct Row {
            id: Uuid,
            user_id: Uuid,
            seats: String,
            created_at: i64,
            cancelled: bool,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "select id, user_id, seats, created_at, cancelled_at is not null as cancelled
             from reservations where screening_id = ?",
        )
        .bind(id)
        .fetch_all(&mut *self.conn)
        .await?;
        let reservations = rows.into_iter().map(|row| StoredReservation {
            id: row.id,
            user_id: row.user_id,
            seats: seats_from_text(&row.seats),
            created_at: from_micros(row.created_at),
            cancelled: row.cancelled,
        });
        Ok(Some(screening_state(&record, reservations.collect())))
    }

    /// The screening a reservation (live or cancelled) belongs to.
    pub async fn screening_of(&mut self, reservation_id: Uuid) -> StoreResult<Option<Uuid>> {
        Ok(sqlx::query_scalar("select screening_id from reservations where id = ?")
            .bind(reservation_id)
            .fetch_optional(&mut *self.conn)
            .await?)
    }

    /// Records a reservation and its seats, all or nothing (the batch goes on if this fails);
    /// the seats' primary key refuses a double booking even if the engine were wrong.
    pub async fn insert(&mut self, reservation: &ReservationRecord) -> StoreResult<()> {
        begin_command(self.conn).await?;
        let written = self.insert_rows(reservation).await;
        end_command(self.conn, written).await
    }

    /// Marks a reservation cancelled at `at` and frees its seats, all or nothing.
    pub async fn cancel(&mut self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        begin_command(self.conn).await?;
        let written = self.cancel_rows(id, at).await;
        end_command(self.conn, written).await
    }

    async fn insert_rows(&mut self, reservation: &ReservationRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into reservations (id, screening_id, user_id, seats, created_at)
             values (?, ?, ?, ?, ?)",
        )
        .bind(reservation.id)
        .bind(reservation.screening_id)
        .bind(reservation.user_id)
        .bind(seats_to_text(&reservation.seats))
        .bind(to_micros(reservation.created_at))
        .execute(&mut *self.conn)
        .await?;
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("insert into reserved_seats (screening_id, seat, reservation_id) ");
        builder.push_values(&reservation.seats, |mut row, seat| {
            row.push_bind(reservation.screening_id)
                .push_bind(seat.to_string())
                .push_bind(reservation.id);
        });
        builder.build().execute(&mut *self.conn).await?;
        Ok(())
    }

    async fn cancel_rows(&mut self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("update reservations set cancelled_at = ? where id = ?")
            .bind(to_micros(at))
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        sqlx::query("delete from reserved_seats where reservation_id = ?")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}
