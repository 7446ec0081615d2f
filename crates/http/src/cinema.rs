//! Cinema: what is showing, seat maps, and the admin catalog; reservations live in
//! [`reservations`], the admin endpoints in [`admin`].
//!
//! The read endpoints are what a premiere's crowd refreshes: "now showing" is served from the
//! two-tier cache (one database query per query string per TTL, whatever the traffic), and an
//! address that reads more than the configured rate is blocked for a while.

pub mod admin;
pub mod reservations;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{delete, get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize, Serializer};
use surge_core::cinema::{Genre, MAX_TITLE_CHARS, Seat, showing_window};
use surge_core::ratelimit::retry_after_secs;
use surge_core::text::fold;
use surge_core::validation::FieldErrors;
use surge_engine::cache::TwoTierCache;
use surge_engine::cinema::ReservationCommands;
use surge_engine::clock::Clock;
use surge_engine::ratelimit::{Blocking, RateLimiter};
use surge_store::cinema::{
    CinemaStore, MovieRecord, ScreeningRecord, ShowingMovie, ShowingQuery, TheaterRef,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts::authenticator::Authenticator;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Json, Path, Query};
use crate::response::JsonBody;

/// The cinema routes, for any state that holds a [`CinemaState`].
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    CinemaState: FromRef<S>,
    Arc<Authenticator>: FromRef<S>,
{
    Router::new()
        .route("/api/v1/movies", get(now_showing))
        .route("/api/v1/screenings/{id}/seats", get(seat_map))
        .route("/api/v1/reservations", post(reservations::reserve))
        .route("/api/v1/reservations/{id}", delete(reservations::cancel))
        .route("/api/v1/me/reservations", get(reservations::mine))
        .route("/api/v1/admin/theaters", post(admin::create_theater))
        .route("/api/v1/admin/movies", post(admin::create_movie))
        .route("/api/v1/admin/screenings", post(admin::create_screening))
}

/// What the cinema handlers reach (extracted as `State<CinemaState>`). Cloning is cheap.
#[derive(Clone)]
pub struct CinemaState(Arc<CinemaServices>);

impl CinemaState {
    pub fn new(services: CinemaServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for CinemaState {
    type Target = CinemaServices;

    fn deref(&self) -> &CinemaServices {
        &self.0
    }
}

/// The cinema ports and settings behind [`CinemaState`].
pub struct CinemaServices {
    pub clock: Arc<dyn Clock>,
    pub limiter: Arc<dyn RateLimiter>,
    pub store: Arc<dyn CinemaStore>,
    pub reservations: Arc<dyn ReservationCommands>,
    /// Rendered "now showing" bodies by query.
    pub showing: Arc<TwoTierCache<JsonBody>>,
    /// How long a client may reuse a "now showing" answer (the server's own cache time).
    pub showing_max_age: u64,
    /// Screenings by id (never changed once created): a seat rush should not cost a database
    /// read per request to learn the theater's size.
    pub screenings: moka::sync::Cache<Uuid, Arc<ScreeningRecord>>,
    /// Reads of "now showing" and seat maps per address, and the block for going over; `None`
    /// when reads are not limited.
    pub reads: Option<Blocking>,
    /// Least time between one user's successful reservations of one screening.
    pub reservation_cooldown: chrono::Duration,
}

/// The screening cache's usual shape: large, and idle entries leave after an hour.
pub fn screening_cache() -> moka::sync::Cache<Uuid, Arc<ScreeningRecord>> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_idle(std::time::Duration::from_secs(3600))
        .build()
}

/// A screening, from the process cache or the store (screenings never change once created);
/// `NotFound` is not cached, so a screening created a moment ago is found.
pub(crate) async fn screening(state: &CinemaState, id: Uuid) -> ApiResult<Arc<ScreeningRecord>> {
    if let Some(screening) = state.screenings.get(&id) {
        return Ok(screening);
    }
    let screening = Arc::new(state.store.screening(id).await?.ok_or(ApiError::NotFound)?);
    state.screenings.insert(id, screening.clone());
    Ok(screening)
}

/// Counts one read against the caller's address; over the limit, the address is blocked.
async fn count_read(state: &CinemaState, ip: ClientIp) -> ApiResult<()> {
    let Some(limit) = state.reads else { return Ok(()) };
    let key = match ip.0 {
        Some(ip) => format!("cinema-read:{ip}"),
        None => "cinema-read:unknown".to_owned(),
    };
    match state.limiter.acquire_or_block(limit, &key).await? {
        None => Ok(()),
        Some(blocked_ms) => {
            Err(ApiError::RateLimited { retry_after_secs: retry_after_secs(blocked_ms) })
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Theater {
    pub id: Uuid,
    pub name: String,
}

impl From<TheaterRef> for Theater {
    fn from(theater: TheaterRef) -> Self {
        Theater { id: theater.id, name: theater.name }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScreeningSlot {
    pub id: Uuid,
    pub theater: Theater,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A movie of the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct Movie {
    pub id: Uuid,
    pub title: String,
    #[schema(example = "TWELVE")]
    pub grade: String,
    #[schema(example = "SF")]
    pub genre: String,
    pub release_date: NaiveDate,
    pub thumbnail_url: String,
    pub running_minutes: i64,
}

impl From<MovieRecord> for Movie {
    fn from(movie: MovieRecord) -> Self {
        Movie {
            id: movie.id,
            title: movie.title,
            grade: movie.grade.as_str().to_owned(),
            genre: movie.genre.as_str().to_owned(),
            release_date: movie.release_date,
            thumbnail_url: movie.thumbnail_url,
            running_minutes: movie.running_minutes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShowingItem {
    #[serde(flatten)]
    pub movie: Movie,
    /// This movie's screenings in the next 7 days, by start time.
    pub screenings: Vec<ScreeningSlot>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Showing {
    pub items: Vec<ShowingItem>,
}

impl From<ShowingMovie> for ShowingItem {
    fn from(entry: ShowingMovie) -> Self {
        ShowingItem {
            movie: entry.movie.into(),
            screenings: entry
                .screenings
                .into_iter()
                .map(|slot| ScreeningSlot {
                    id: slot.id,
                    theater: slot.theater.into(),
                    starts_at: slot.starts_at,
                    ends_at: slot.ends_at,
                })
                .collect(),
        }
    }
}

/// One of a fixed set of upper-case names, as clients send it (any case); an unknown one is a
/// field error naming the choices.
pub(crate) fn parse_choice<T>(
    field: &str,
    name: &str,
    parse: fn(&str) -> Option<T>,
    choices: &[&str],
    errors: &mut FieldErrors,
) -> Option<T> {
    let parsed = parse(&name.trim().to_ascii_uppercase());
    if parsed.is_none() {
        errors.add(field, format!("must be one of {}", choices.join(", ")));
    }
    parsed
}

/// A genre (see [`parse_choice`]).
pub(crate) fn parse_genre(field: &str, name: &str, errors: &mut FieldErrors) -> Option<Genre> {
    parse_choice(field, name, Genre::parse, &Genre::ALL.map(|g| g.as_str()), errors)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowingParams {
    /// Case-insensitive substring of the title (at most 255 characters).
    pub title: Option<String>,
    /// `ACTION`, `ROMANCE`, `HORROR`, `SF`, `COMEDY`, `DRAMA`, `ANIMATION` or `THRILLER`.
    pub genre: Option<String>,
}

/// Movies with a screening starting in the next 7 days, newest release first.
#[utoipa::path(get, path = "/api/v1/movies", tag = "cinema", params(ShowingParams),
    responses((status = 200, body = Showing, description = "with an `ETag`; `If-None-Match` with it gives 304"),
        (status = 304, description = "not modified since the `ETag` sent in `If-None-Match`"),
        (status = 422, description = "bad genre or title"),
        (status = 429, description = "this address is blocked for a while (Retry-After)")))]
pub async fn now_showing(
    State(state): State<CinemaState>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(params): Query<ShowingParams>,
) -> ApiResult<Response> {
    count_read(&state, ip).await?;
    let mut errors = FieldErrors::new();
    // The length counts what was sent, like every length of the API.
    if params.title.as_deref().is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS) {
        errors.add("title", format!("must be at most {MAX_TITLE_CHARS} characters"));
    }
    let title = params.title.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let genre = params
        .genre
        .as_deref()
        // `genre=` (a form's "any") is no filter.
        .filter(|g| !g.is_empty())
        .and_then(|name| parse_genre("genre", name, &mut errors));
    errors.into_result(())?;
    let title = title.map(fold);
    let key = format!("{}|{}", genre.map_or("", |g| g.as_str()), title.as_deref().unwrap_or(""));
    let body = state
        .showing
        .get_or_load(&key, || async {
            let (from, until) = showing_window(state.clock.now());
            let query = ShowingQuery { title_contains: title.clone(), genre, from, until };
            let movies = state.store.now_showing(&query).await.map_err(|e| e.to_string())?;
            let showing = Showing { items: movies.into_iter().map(ShowingItem::from).collect() };
            let body = serde_json::to_vec(&showing).map_err(|e| e.to_string())?;
            Ok::<_, String>(Some(JsonBody::new(Bytes::from(body))))
        })
        .await
        .map_err(ApiError::Unavailable)?
        .ok_or_else(|| ApiError::Internal("the showing loader returned nothing".into()))?;
    Ok(JsonBody::clone(&body).respond(&headers, state.showing_max_age))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeatState {
    #[schema(value_type = String, example = "B3")]
    #[serde(serialize_with = "seat_code")]
    pub code: Seat,
    pub taken: bool,
}

/// A seat as its code (`B3`), written straight into the response.
fn seat_code<S: Serializer>(seat: &Seat, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(seat)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeatMap {
    pub screening_id: Uuid,
    pub rows: u8,
    pub cols: u8,
    /// Row by row, left to right.
    pub seats: Vec<SeatState>,
}

/// Every seat of a screening and whether it is taken, including reservations acknowledged a
/// moment ago on any replica.
#[utoipa::path(get, path = "/api/v1/screenings/{id}/seats", tag = "cinema", params(("id" = Uuid, Path)),
    responses((status = 200, body = SeatMap), (status = 404),
        (status = 429, description = "this address is blocked for a while (Retry-After)")))]
pub async fn seat_map(
    State(state): State<CinemaState>,
    ip: ClientIp,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SeatMap>> {
    count_read(&state, ip).await?;
    let screening = screening(&state, id).await?;
    let taken: std::collections::HashSet<Seat> =
        state.reservations.taken_seats(id).await?.into_iter().collect();
    let seats = (0..screening.rows)
        .flat_map(|row| (1..=screening.cols).map(move |col| Seat { row, col }))
        .map(|seat| SeatState { code: seat, taken: taken.contains(&seat) })
        .collect();
    Ok(Json(SeatMap { screening_id: id, rows: screening.rows, cols: screening.cols, seats }))
}
