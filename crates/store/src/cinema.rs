//! Cinema: the catalog (theaters, movies, screenings), "now showing", seat maps and a user's
//! reservations. Reservations are written only by the engine, which decides them as contended
//! commands; the database refuses a double booking on its own as well (one row per taken seat,
//! keyed by screening and seat).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use surge_core::cinema::{Genre, Grade, Held, ScreeningState, Seat};
use uuid::Uuid;

use crate::StoreResult;

pub mod postgres;
pub mod sqlite;

#[derive(Debug, Clone)]
pub struct NewTheater {
    pub id: Uuid,
    pub name: String,
    pub rows: u8,
    pub cols: u8,
    pub created_at: DateTime<Utc>,
}

/// A theater as screenings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TheaterRef {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovieRecord {
    pub id: Uuid,
    pub title: String,
    pub grade: Grade,
    pub genre: Genre,
    pub release_date: NaiveDate,
    pub thumbnail_url: String,
    pub running_minutes: i64,
}

#[derive(Debug, Clone)]
pub struct NewScreening {
    pub id: Uuid,
    pub movie_id: Uuid,
    pub theater_id: Uuid,
    pub starts_at: DateTime<Utc>,
    /// The start plus the movie's running time.
    pub ends_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A screening with what its seat map and the reservation rule need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningRecord {
    pub id: Uuid,
    pub movie_id: Uuid,
    pub theater: TheaterRef,
    pub rows: u8,
    pub cols: u8,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// One screening in a "now showing" entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningSlot {
    pub id: Uuid,
    pub theater: TheaterRef,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A movie with its screenings in the queried window, by start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowingMovie {
    pub movie: MovieRecord,
    pub screenings: Vec<ScreeningSlot>,
}

/// "Now showing": movies with a screening starting in `[from, until)`, optionally filtered.
#[derive(Debug, Clone)]
pub struct ShowingQuery {
    /// Already case-folded with [`surge_core::text::fold`].
    pub title_contains: Option<String>,
    pub genre: Option<Genre>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRecord {
    pub id: Uuid,
    pub screening_id: Uuid,
    pub user_id: Uuid,
    pub seats: Vec<Seat>,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait CinemaStore: Send + Sync {
    async fn create_theater(&self, theater: NewTheater) -> StoreResult<()>;
    async fn create_movie(&self, movie: MovieRecord, created_at: DateTime<Utc>) -> StoreResult<()>;
    async fn movie(&self, id: Uuid) -> StoreResult<Option<MovieRecord>>;
    /// Refuses with `Conflict("screening_overlap")` a screening that overlaps another in the
    /// same theater, and with `NotFound` one whose movie or theater does not exist. The check
    /// and the insert are one atomic step.
    async fn create_screening(&self, screening: NewScreening) -> StoreResult<()>;
    async fn screening(&self, id: Uuid) -> StoreResult<Option<ScreeningRecord>>;
    /// Newest release first (then id), each movie's screenings by start time (then id).
    async fn now_showing(&self, query: &ShowingQuery) -> StoreResult<Vec<ShowingMovie>>;
    /// The database's plan for [`Self::now_showing`]'s two queries (one line per plan node),
    /// so operators and tests can see they run on indexes.
    async fn now_showing_plan(&self, query: &ShowingQuery) -> StoreResult<Vec<String>>;
    async fn taken_seats(&self, screening_id: Uuid) -> StoreResult<Vec<Seat>>;
    async fn reservation(&self, id: Uuid) -> StoreResult<Option<ReservationRecord>>;
    /// A user's reservations, newest first (ids are UUIDv7), strictly before `before`.
    async fn reservations_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ReservationRecord>>;
}

/// A live or cancelled reservation as the engine rebuilds a screening's state from it.
#[derive(Debug, Clone)]
pub(crate) struct StoredReservation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub seats: Vec<Seat>,
    pub created_at: DateTime<Utc>,
    pub cancelled: bool,
}

/// A screening's reservation state: live reservations hold seats; every reservation, cancelled
/// or not, counts for its user's cooldown.
pub(crate) fn screening_state(
    record: &ScreeningRecord,
    reservations: Vec<StoredReservation>,
) -> ScreeningState {
    let mut state = ScreeningState {
        id: record.id,
        rows: record.rows,
        cols: record.cols,
        starts_at: record.starts_at,
        ..ScreeningState::default()
    };
    for reservation in reservations {
        let last = state.last_reserved.entry(reservation.user_id).or_insert(reservation.created_at);
        *last = (*last).max(reservation.created_at);
        if !reservation.cancelled {
            let held = Held { user_id: reservation.user_id, seats: reservation.seats };
            state.reservations.insert(reservation.id, held);
        }
    }
    state
}

/// The movie columns every movie query selects, from `movies m`.
pub(crate) const MOVIE_COLUMNS: &str =
    "m.id, m.title, m.grade, m.genre, m.release_date, m.thumbnail_url, m.running_minutes";

/// Seat codes as stored in `reservations.seats` and carried in shard streams: `B3,B4`.
pub fn seats_to_text(seats: &[Seat]) -> String {
    seats.iter().map(Seat::to_string).collect::<Vec<_>>().join(",")
}

/// Reads [`seats_to_text`] back (a code that does not parse is skipped).
pub fn seats_from_text(text: &str) -> Vec<Seat> {
    text.split(',').filter_map(Seat::parse).collect()
}

pub(crate) fn genre_from(text: &str) -> Genre {
    Genre::parse(text).unwrap_or(Genre::Drama)
}

pub(crate) fn grade_from(text: &str) -> Grade {
    Grade::parse(text).unwrap_or(Grade::All)
}

/// Attaches each movie's screenings (given in start order) to it, keeping the movies' order.
pub(crate) fn attach(
    movies: Vec<MovieRecord>,
    slots: impl IntoIterator<Item = (Uuid, ScreeningSlot)>,
) -> Vec<ShowingMovie> {
    let mut showing: Vec<ShowingMovie> =
        movies.into_iter().map(|movie| ShowingMovie { movie, screenings: Vec::new() }).collect();
    let index: std::collections::HashMap<Uuid, usize> =
        showing.iter().enumerate().map(|(i, entry)| (entry.movie.id, i)).collect();
    for (movie_id, slot) in slots {
        if let Some(&at) = index.get(&movie_id) {
            showing[at].screenings.push(slot);
        }
    }
    showing
}
