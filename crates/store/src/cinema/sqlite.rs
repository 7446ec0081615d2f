//! SQLite implementation of the cinema repository.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqliteExecutor, SqlitePool};
use uuid::Uuid;

use super::{
    CinemaStore, MOVIE_COLUMNS, MovieRecord, NewScreening, NewTheater, ReservationRecord,
    ScreeningRecord, ScreeningSlot, ShowingMovie, ShowingQuery, StoredReservation, TheaterRef,
    attach, genre_from, grade_from, screening_state, seats_from_text, seats_to_text,
};
use crate::auctions::fold;
use crate::auctions::sqlite::{AuctionLedger, exec};
use crate::time::{from_micros, to_micros};
use crate::{StoreError, StoreResult};
use surge_core::cinema::{ScreeningState, Seat};

#[derive(Clone)]
pub struct SqliteCinema {
    pool: SqlitePool,
}

impl SqliteCinema {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct MovieRow {
    id: Uuid,
    title: String,
    grade: String,
    genre: String,
    release_date: NaiveDate,
    thumbnail_url: String,
    running_minutes: i64,
}

impl From<MovieRow> for MovieRecord {
    fn from(row: MovieRow) -> Self {
        MovieRecord {
            id: row.id,
            title: row.title,
            grade: grade_from(&row.grade),
            genre: genre_from(&row.genre),
            release_date: row.release_date,
            thumbnail_url: row.thumbnail_url,
            running_minutes: row.running_minutes,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SlotRow {
    id: Uuid,
    movie_id: Uuid,
    theater_id: Uuid,
    theater_name: String,
    starts_at: i64,
    ends_at: i64,
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: Uuid,
    screening_id: Uuid,
    user_id: Uuid,
    seats: String,
    created_at: i64,
}

impl From<ReservationRow> for ReservationRecord {
    fn from(row: ReservationRow) -> Self {
        ReservationRecord {
            id: row.id,
            screening_id: row.screening_id,
            user_id: row.user_id,
            seats: seats_from_text(&row.seats),
            created_at: from_micros(row.created_at),
        }
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
            movies_query(query, "").build_query_as().fetch_all(&self.pool).await?;
        if movies.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = movies.iter().map(|movie| movie.id).collect();
        let slots: Vec<SlotRow> =
            slots_query(query, &ids, "").build_query_as().fetch_all(&self.pool).await?;
        let slots = slots.into_iter().map(|slot| {
            let at = ScreeningSlot {
                id: slot.id,
                theater: TheaterRef { id: slot.theater_id, name: slot.theater_name },
                starts_at: from_micros(slot.starts_at),
                ends_at: from_micros(slot.ends_at),
            };
            (slot.movie_id, at)
        });
        Ok(attach(movies.into_iter().map(MovieRecord::from).collect(), slots))
    }

    async fn now_showing_plan(&self, query: &ShowingQuery) -> StoreResult<Vec<String>> {
        let ids: Vec<Uuid> = self.now_showing(query).await?.iter().map(|m| m.movie.id).collect();
        let mut plan = Vec::new();
        for mut explain in [
            movies_query(query, "explain query plan "),
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
        let row: Option<ReservationRow> = sqlx::query_as(
            "select id, screening_id, user_id, seats, created_at from reservations
             where id = ? and cancelled_at is null",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ReservationRecord::from))
    }

    async fn reservations_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ReservationRecord>> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "select id, screening_id, user_id, seats, created_at from reservations where user_id = ",
        );
        builder.push_bind(user_id).push(" and cancelled_at is null");
        if let Some(before) = before {
            builder.push(" and id < ").push_bind(before);
        }
        builder.push(" order by id desc limit ").push_bind(i64::from(limit));
        let rows: Vec<ReservationRow> = builder.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(ReservationRecord::from).collect())
    }
}

/// Movies with a screening in the window, newest release first.
fn movies_query(query: &ShowingQuery, prefix: &str) -> QueryBuilder<Sqlite> {
    let (from, until) = (to_micros(query.from), to_micros(query.until));
    let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}select {MOVIE_COLUMNS} from movies m
         where exists (select 1 from screenings s where s.movie_id = m.id
                       and s.starts_at >= "
    ));
    builder.push_bind(from).push(" and s.starts_at < ").push_bind(until).push(")");
    if let Some(title) = &query.title_contains {
        builder.push(" and instr(m.title_folded, ").push_bind(title.clone()).push(") > 0");
    }
    if let Some(genre) = query.genre {
        builder.push(" and m.genre = ").push_bind(genre.as_str());
    }
    builder.push(" order by m.release_date desc, m.id");
    builder
}

/// The window's screenings of the given movies, by start time.
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

async fn screening(
    executor: impl SqliteExecutor<'_>,
    id: Uuid,
) -> StoreResult<Option<ScreeningRecord>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        movie_id: Uuid,
        theater_id: Uuid,
        theater_name: String,
        rows: i64,
        cols: i64,
        starts_at: i64,
        ends_at: i64,
    }
    let row: Option<Row> = sqlx::query_as(
        "select s.id, s.movie_id, s.theater_id, t.name as theater_name, t.rows, t.cols,
                s.starts_at, s.ends_at
         from screenings s join theaters t on t.id = s.theater_id where s.id = ?",
    )
    .bind(id)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| ScreeningRecord {
        id: row.id,
        movie_id: row.movie_id,
        theater: TheaterRef { id: row.theater_id, name: row.theater_name },
        rows: row.rows as u8,
        cols: row.cols as u8,
        starts_at: from_micros(row.starts_at),
        ends_at: from_micros(row.ends_at),
    }))
}

impl AuctionLedger {
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
        exec(self.conn, "SAVEPOINT reservation").await?;
        let written = self.insert_rows(reservation).await;
        self.end_savepoint(written).await
    }

    /// Marks a reservation cancelled at `at` and frees its seats, all or nothing.
    pub async fn cancel(&mut self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        exec(self.conn, "SAVEPOINT reservation").await?;
        let written = self.cancel_rows(id, at).await;
        self.end_savepoint(written).await
    }

    /// Keeps the savepoint's writes if `written` is `Ok`, else undoes them (and only them).
    async fn end_savepoint(&mut self, written: StoreResult<()>) -> StoreResult<()> {
        if written.is_err() {
            exec(self.conn, "ROLLBACK TO SAVEPOINT reservation").await?;
        }
        exec(self.conn, "RELEASE SAVEPOINT reservation").await?;
        written
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
