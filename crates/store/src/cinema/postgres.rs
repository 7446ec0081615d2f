//! PostgreSQL implementation of the cinema repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use surge_core::cinema::{ReservationEvent, ScreeningState, Seat};
use surge_core::events::Event;
use surge_core::text::fold;
use uuid::Uuid;

use super::{
    CinemaStore, MOVIE_COLUMNS, MovieRecord, NewScreening, NewTheater, ReservationRecord,
    ScreeningRecord, ShowingMovie, ShowingQuery, StoredReservation, attach, screening_state,
    seats_from_text, seats_to_text,
};
use crate::events::ApplyError;
use crate::events::postgres::classify;
use crate::sql::{
    self, MovieRow, RESERVATION_COLUMNS, ReservationRow, SCREENING_SELECT, ScreeningRow, SlotRow,
};
use crate::{StoreError, StoreResult};

#[derive(Clone)]
pub struct PgCinema {
    pool: PgPool,
}

impl PgCinema {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A screening's persisted state for the reservation rule, to build its hot state from.
    pub async fn screening_state(&self, id: Uuid) -> StoreResult<Option<ScreeningState>> {
        let Some(record) = self.screening(id).await? else { return Ok(None) };
        #[derive(sqlx::FromRow)]
        struct Row {
            id: Uuid,
            user_id: Uuid,
            seats: String,
            created_at: DateTime<Utc>,
            cancelled: bool,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "select id, user_id, seats, created_at, cancelled_at is not null as cancelled
             from reservations where screening_id = $1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let reservations = rows.into_iter().map(|row| StoredReservation {
            id: row.id,
            user_id: row.user_id,
            seats: seats_from_text(&row.seats),
            created_at: row.created_at,
            cancelled: row.cancelled,
        });
        Ok(Some(screening_state(&record, reservations.collect())))
    }
}

#[async_trait]
impl CinemaStore for PgCinema {
    async fn create_theater(&self, theater: NewTheater) -> StoreResult<()> {
        sqlx::query(
            "insert into theaters (id, name, rows, cols, created_at) values ($1, $2, $3, $4, $5)",
        )
        .bind(theater.id)
        .bind(&theater.name)
        .bind(i32::from(theater.rows))
        .bind(i32::from(theater.cols))
        .bind(theater.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_movie(&self, movie: MovieRecord, created_at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "insert into movies (id, title, title_folded, grade, genre, release_date,
                 thumbnail_url, running_minutes, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(movie.id)
        .bind(&movie.title)
        .bind(fold(&movie.title))
        .bind(movie.grade.as_str())
        .bind(movie.genre.as_str())
        .bind(movie.release_date)
        .bind(&movie.thumbnail_url)
        .bind(movie.running_minutes as i32)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn movie(&self, id: Uuid) -> StoreResult<Option<MovieRecord>> {
        let row: Option<MovieRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {MOVIE_COLUMNS} from movies m where m.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(MovieRecord::from))
    }

    async fn create_screening(&self, screening: NewScreening) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // Locking the theater's row serialises screening inserts per theater, so the overlap
        // check and the insert are atomic.
        let theater: Option<Uuid> =
            sqlx::query_scalar("select id from theaters where id = $1 for update")
                .bind(screening.theater_id)
                .fetch_optional(&mut *tx)
                .await?;
        let movie: Option<Uuid> = sqlx::query_scalar("select id from movies where id = $1")
            .bind(screening.movie_id)
            .fetch_optional(&mut *tx)
            .await?;
        if theater.is_none() || movie.is_none() {
            return Err(StoreError::NotFound);
        }
        let overlapping: Option<i32> = sqlx::query_scalar(
            "select 1 from screenings
             where theater_id = $1 and starts_at < $2 and ends_at > $3 limit 1",
        )
        .bind(screening.theater_id)
        .bind(screening.ends_at)
        .bind(screening.starts_at)
        .fetch_optional(&mut *tx)
        .await?;
        if overlapping.is_some() {
            return Err(StoreError::Conflict("screening_overlap"));
        }
        sqlx::query(
            "insert into screenings (id, movie_id, theater_id, starts_at, ends_at, created_at)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(screening.id)
        .bind(screening.movie_id)
        .bind(screening.theater_id)
        .bind(screening.starts_at)
        .bind(screening.ends_at)
        .bind(screening.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn screening(&self, id: Uuid) -> StoreResult<Option<ScreeningRecord>> {
        let row: Option<ScreeningRow<Postgres>> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SCREENING_SELECT} where s.id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(ScreeningRow::into_record))
    }

    async fn now_showing(&self, query: &ShowingQuery) -> StoreResult<Vec<ShowingMovie>> {
        let movies: Vec<MovieRow> = sql::movies_showing::<Postgres>(query, "")
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        if movies.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = movies.iter().map(|movie| movie.id).collect();
        let slots: Vec<SlotRow<Postgres>> =
            slots_query(query, &ids, "").build_query_as().fetch_all(&self.pool).await?;
        let movies = movies.into_iter().map(MovieRecord::from).collect();
        Ok(attach(movies, slots.into_iter().map(SlotRow::into_slot)))
    }

    async fn now_showing_plan(&self, query: &ShowingQuery) -> StoreResult<Vec<String>> {
        let ids: Vec<Uuid> = self.now_showing(query).await?.iter().map(|m| m.movie.id).collect();
        let mut plan = Vec::new();
        for mut explain in [
            sql::movies_showing::<Postgres>(query, "explain "),
            slots_query(query, &ids, "explain "),
        ] {
            let rows: Vec<String> = explain.build_query_scalar().fetch_all(&self.pool).await?;
            plan.extend(rows);
        }
        Ok(plan)
    }

    async fn taken_seats(&self, screening_id: Uuid) -> StoreResult<Vec<Seat>> {
        let codes: Vec<String> =
            sqlx::query_scalar("select seat from reserved_seats where screening_id = $1")
                .bind(screening_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(codes.iter().filter_map(|code| Seat::parse(code)).collect())
    }

    async fn reservation(&self, id: Uuid) -> StoreResult<Option<ReservationRecord>> {
        let row: Option<ReservationRow<Postgres>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RESERVATION_COLUMNS} from reservations where id = $1 and cancelled_at is null"
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
        let rows: Vec<ReservationRow<Postgres>> =
            sql::reservations_of::<Postgres>(user_id, before, limit)
                .build_query_as()
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(ReservationRow::into_record).collect())
    }
}

/// The window's screenings of the given movies, by start time: one range scan of
/// `screenings_by_movie` per movie, however long the table's history grows.
fn slots_query(query: &ShowingQuery, ids: &[Uuid], prefix: &str) -> QueryBuilder<Postgres> {
    let mut slots: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "{prefix}select s.id, s.movie_id, s.theater_id, t.name as theater_name, s.starts_at,
                s.ends_at
         from unnest("
    ));
    slots.push_bind(ids.to_vec()).push(
        "::uuid[]) as m(id)
         cross join lateral (
             select s.id, s.movie_id, s.theater_id, s.starts_at, s.ends_at from screenings s
             where s.movie_id = m.id and s.starts_at >= ",
    );
    slots.push_bind(query.from).push(" and s.starts_at < ").push_bind(query.until);
    slots.push(") s join theaters t on t.id = s.theater_id order by s.starts_at, s.id");
    slots
}

/// Applies a shard batch's reservation events inside the persister's fenced transaction, in
/// stream order (a seat freed and taken again in one batch must be written in that order),
/// each idempotently: an event applied before changes nothing. A seat already held by another
/// reservation is refused by `reserved_seats`' key, which ends the event in the dead letter
/// rather than double-booking.
pub(crate) async fn apply_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&Event<ReservationEvent>],
) -> Result<(), ApplyError> {
    for event in events {
        let screening_id = event.entity;
        match &event.body {
            ReservationEvent::Reserved { reservation_id, user_id, seats, at } => {
                let inserted = sqlx::query(
                    "insert into reservations (id, screening_id, user_id, seats, created_at)
                     values ($1, $2, $3, $4, $5) on conflict (id) do nothing",
                )
                .bind(reservation_id)
                .bind(screening_id)
                .bind(user_id)
                .bind(seats_to_text(seats))
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if inserted == 1 {
                    let codes: Vec<String> = seats.iter().map(Seat::to_string).collect();
                    sqlx::query(
                        "insert into reserved_seats (screening_id, seat, reservation_id)
                         select $1, seat, $2 from unnest($3::text[]) as seat",
                    )
                    .bind(screening_id)
                    .bind(reservation_id)
                    .bind(&codes)
                    .execute(&mut **tx)
                    .await
                    .map_err(classify)?;
                }
            }
            ReservationEvent::Cancelled { reservation_id, at, .. } => {
                let cancelled = sqlx::query(
                    "update reservations set cancelled_at = $2
                     where id = $1 and cancelled_at is null",
                )
                .bind(reservation_id)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if cancelled == 1 {
                    sqlx::query("delete from reserved_seats where reservation_id = $1")
                        .bind(reservation_id)
                        .execute(&mut **tx)
                        .await
                        .map_err(classify)?;
                }
            }
        }
    }
    Ok(())
}
