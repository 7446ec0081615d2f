//! Reserving seats, giving them back, and a user's reservations.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use metrics::Counter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use surge_core::cinema::{ReservationRejection, Seat, validate_seats};
use surge_core::idempotency::IdempotencyKey as EngineKey;
use surge_engine::cinema::{CancelReservation, Reserve, ReserveOutcome};
use surge_store::cinema::{ReservationRecord, seats_to_text};
use utoipa::ToSchema;
use uuid::Uuid;

use super::CinemaState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, IdempotencyKey, Json, Path, Query};
use crate::pagination::{self, Page, PageParams};

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReservationRequest {
    pub screening_id: Uuid,
    /// 1 to 5 seats of one row, next to each other, e.g. `["B3", "B4"]`.
    pub seats: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reservation {
    pub id: Uuid,
    pub screening_id: Uuid,
    #[schema(example = json!(["B3", "B4"]))]
    pub seats: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// `surge_reservations_total` by outcome; handles are looked up once, not per request.
static RESERVED: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("surge_reservations_total", "outcome" => "reserved"));
static REFUSED: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("surge_reservations_total", "outcome" => "refused"));

fn codes(seats: &[Seat]) -> Vec<String> {
    seats.iter().map(Seat::to_string).collect()
}

impl From<ReservationRecord> for Reservation {
    fn from(record: ReservationRecord) -> Self {
        Reservation {
            id: record.id,
            screening_id: record.screening_id,
            seats: codes(&record.seats),
            created_at: record.created_at,
        }
    }
}

fn rejection_error(rejection: ReservationRejection) -> ApiError {
    match rejection {
        ReservationRejection::SeatsTaken { taken } => {
            ApiError::conflict("seats_taken", "some of these seats are already taken")
                .with("taken", codes(&taken))
        }
        ReservationRejection::UserSeatLimit { held } => ApiError::conflict(
            "user_seat_limit",
            format!(
                "at most {} seats of one screening per person; you hold {held}",
                surge_core::cinema::MAX_SEATS_PER_USER
            ),
        )
        .with("held", held),
        ReservationRejection::ScreeningStarted => {
            ApiError::conflict("screening_started", "the screening has already started")
        }
        ReservationRejection::TooSoon { retry_after_secs } => {
            ApiError::RateLimited { retry_after_secs: retry_after_secs.max(1) as u64 }
        }
        ReservationRejection::NotFound => ApiError::NotFound,
    }
}

/// Reserve seats. All or nothing; a refused request leaves no trace (it does not use up the
/// one-reservation-per-5-minutes allowance).
#[utoipa::path(post, path = "/api/v1/reservations", tag = "cinema", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–64 characters; a repeat within 24 h returns the first response")),
    request_body = ReservationRequest,
    responses((status = 201, body = Reservation, headers(("Location" = String))), (status = 401), (status = 404),
        (status = 409, description = "seats_taken (with taken), user_seat_limit or screening_started"),
        (status = 422, description = "validation_failed (seat codes, count, row, adjacency) or idempotency_key_reused"),
        (status = 429, description = "another reservation for this screening less than the cooldown ago (Retry-After)")))]
pub async fn reserve(
    State(state): State<CinemaState>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<ReservationRequest>,
) -> ApiResult<Response> {
    let screening = super::screening(&state, request.screening_id).await?;
    let seats = validate_seats(&request.seats, screening.rows, screening.cols)?;
    let idempotency = key.map(|key| EngineKey {
        request_hash: Sha256::digest(format!("reserve:{}:{}", screening.id, seats_to_text(&seats)))
            .to_vec(),
        key,
    });
    let outcome = state
        .reservations
        .reserve(Reserve {
            screening_id: screening.id,
            user_id: user.id,
            seats,
            cooldown: state.reservation_cooldown,
            idempotency,
        })
        .await?;
    match outcome {
        ReserveOutcome::Reserved(receipt) => {
            RESERVED.increment(1);
            let mut headers = HeaderMap::new();
            if let Ok(location) =
                HeaderValue::from_str(&format!("/api/v1/reservations/{}", receipt.id))
            {
                headers.insert(header::LOCATION, location);
            }
            let body = Reservation {
                id: receipt.id,
                screening_id: receipt.screening_id,
                seats: codes(&receipt.seats),
                created_at: receipt.created_at,
            };
            Ok((StatusCode::CREATED, headers, Json(body)).into_response())
        }
        ReserveOutcome::Rejected(rejection) => {
            REFUSED.increment(1);
            Err(rejection_error(rejection))
        }
    }
}

/// Cancel one of your reservations; its seats are free again at once.
#[utoipa::path(delete, path = "/api/v1/reservations/{id}", tag = "cinema", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401), (status = 404, description = "no such reservation of yours"),
        (status = 409, description = "screening_started")))]
pub async fn cancel(
    State(state): State<CinemaState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let request = CancelReservation { reservation_id: id, user_id: user.id };
    match state.reservations.cancel(request).await? {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(rejection) => Err(rejection_error(rejection)),
    }
}

/// Your live reservations, newest first.
#[utoipa::path(get, path = "/api/v1/me/reservations", tag = "cinema", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = inline(Page<Reservation>)), (status = 401)))]
pub async fn mine(
    State(state): State<CinemaState>,
    user: AuthUser,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<Reservation>>> {
    let limit = pagination::limit(params.limit)?;
    let before: Option<Uuid> =
        params.cursor.as_deref().map(pagination::decode_cursor).transpose()?;
    let rows = state.store.reservations_of(user.id, before, limit + 1).await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |row| pagination::encode_cursor(&row.id),
        Reservation::from,
    )))
}
