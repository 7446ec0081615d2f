//! The catalog, for admins (granted with `surge admin grant EMAIL`): theaters, movies and
//! screenings. A change that can alter "now showing" empties its cache on every replica.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use surge_core::cinema::{Grade, validate_movie, validate_screening_start, validate_theater};
use surge_store::StoreError;
use surge_store::cinema::{MovieRecord, NewScreening, NewTheater};
use utoipa::ToSchema;
use uuid::Uuid;

use super::CinemaState;
use super::{Movie, Theater, parse_choice, parse_genre};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, Json};

fn require_admin(user: &AuthUser) -> ApiResult<()> {
    if user.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden { code: "forbidden", message: "admins only".into() })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TheaterRequest {
    pub name: String,
    /// 1–26 (rows are lettered A–Z).
    pub rows: i64,
    /// 1–50.
    pub cols: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TheaterCreated {
    pub id: Uuid,
    pub name: String,
    pub rows: i64,
    pub cols: i64,
}

/// Add a theater.
#[utoipa::path(post, path = "/api/v1/admin/theaters", tag = "cinema", security(("bearer" = [])),
    request_body = TheaterRequest,
    responses((status = 201, body = TheaterCreated), (status = 401), (status = 403), (status = 422)))]
pub async fn create_theater(
    State(state): State<CinemaState>,
    user: AuthUser,
    Json(request): Json<TheaterRequest>,
) -> ApiResult<(StatusCode, Json<TheaterCreated>)> {
    require_admin(&user)?;
    validate_theater(&request.name, request.rows, request.cols)?;
    let theater = NewTheater {
        id: Uuid::now_v7(),
        name: request.name.trim().to_owned(),
        rows: request.rows as u8,
        cols: request.cols as u8,
        created_at: state.clock.now(),
    };
    state.store.create_theater(theater.clone()).await?;
    let created = TheaterCreated {
        id: theater.id,
        name: theater.name,
        rows: request.rows,
        cols: request.cols,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MovieRequest {
    pub title: String,
    /// `ALL`, `TWELVE`, `FIFTEEN` or `ADULT`.
    pub grade: String,
    /// `ACTION`, `ROMANCE`, `HORROR`, `SF`, `COMEDY`, `DRAMA`, `ANIMATION` or `THRILLER`.
    pub genre: String,
    pub release_date: NaiveDate,
    pub thumbnail_url: String,
    pub running_minutes: i64,
}

/// Add a movie.
#[utoipa::path(post, path = "/api/v1/admin/movies", tag = "cinema", security(("bearer" = [])),
    request_body = MovieRequest,
    responses((status = 201, body = Movie), (status = 401), (status = 403), (status = 422)))]
pub async fn create_movie(
    State(state): State<CinemaState>,
    user: AuthUser,
    Json(request): Json<MovieRequest>,
) -> ApiResult<(StatusCode, Json<Movie>)> {
    require_admin(&user)?;
    let mut errors =
        validate_movie(&request.title, request.running_minutes, &request.thumbnail_url)
            .err()
            .unwrap_or_default();
    let grade = parse_choice(
        "grade",
        &request.grade,
        Grade::parse,
        &Grade::ALL.map(|g| g.as_str()),
        &mut errors,
    );
    let genre = parse_genre("genre", &request.genre, &mut errors);
    let (Some(grade), Some(genre)) = (grade, genre) else { return Err(errors.into()) };
    errors.into_result(())?;
    let movie = MovieRecord {
        id: Uuid::now_v7(),
        title: request.title.trim().to_owned(),
        grade,
        genre,
        release_date: request.release_date,
        thumbnail_url: request.thumbnail_url,
        running_minutes: request.running_minutes,
    };
    state.store.create_movie(movie.clone(), state.clock.now()).await?;
    state.showing.invalidate_all().await;
    Ok((StatusCode::CREATED, Json(movie.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ScreeningRequest {
    pub movie_id: Uuid,
    pub theater_id: Uuid,
    pub starts_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Screening {
    pub id: Uuid,
    pub movie_id: Uuid,
    pub theater: Theater,
    pub starts_at: DateTime<Utc>,
    /// The start plus the movie's running time.
    pub ends_at: DateTime<Utc>,
}

/// Schedule a screening; it may not overlap another in the same theater.
#[utoipa::path(post, path = "/api/v1/admin/screenings", tag = "cinema", security(("bearer" = [])),
    request_body = ScreeningRequest,
    responses((status = 201, body = Screening), (status = 401), (status = 403),
        (status = 409, description = "screening_overlap"), (status = 422)))]
pub async fn create_screening(
    State(state): State<CinemaState>,
    user: AuthUser,
    Json(request): Json<ScreeningRequest>,
) -> ApiResult<(StatusCode, Json<Screening>)> {
    require_admin(&user)?;
    let now = state.clock.now();
    validate_screening_start(request.starts_at, now)?;
    let movie = state
        .store
        .movie(request.movie_id)
        .await?
        .ok_or_else(|| ApiError::field("movie_id", "no such movie"))?;
    let screening = NewScreening {
        id: Uuid::now_v7(),
        movie_id: movie.id,
        theater_id: request.theater_id,
        starts_at: request.starts_at,
        ends_at: request.starts_at + Duration::minutes(movie.running_minutes),
        created_at: now,
    };
    match state.store.create_screening(screening.clone()).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(ApiError::field("theater_id", "no such theater")),
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "screening_overlap",
                "another screening in this theater overlaps that time",
            ));
        }
        Err(other) => return Err(other.into()),
    }
    state.showing.invalidate_all().await;
    let record = state
        .store
        .screening(screening.id)
        .await?
        .ok_or_else(|| ApiError::Internal("created screening vanished".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(Screening {
            id: record.id,
            movie_id: record.movie_id,
            theater: record.theater.into(),
            starts_at: record.starts_at,
            ends_at: record.ends_at,
        }),
    ))
}
