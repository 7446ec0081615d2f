//! Auctions: create, read and search; bids live in [`bids`], the live feed in [`events`].

pub mod bids;
pub mod events;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use surge_core::accounts::UserRef;
use surge_core::auctions::AuctionEvent;
use surge_core::auctions::{AuctionDraft, AuctionStatus, MAX_SEARCH_CHARS, validate_draft};
use surge_core::text::fold;
use surge_core::validation::FieldErrors;
use surge_engine::auctions::AuctionCommands;
use surge_engine::clock::Clock;
use surge_engine::feed::Feed;
use surge_store::auctions::{
    AuctionRecord, AuctionStore, AuctionSummary, NewAuction, SearchQuery, Sort, SortValue,
};
use surge_store::images::ImageStore;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts::authenticator::Authenticator;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, Json, Path, Query};
use crate::images::image_url;
use crate::pagination::{self, Page};

/// The auction routes, for any state that holds an [`AuctionsState`].
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AuctionsState: FromRef<S>,
    Arc<Authenticator>: FromRef<S>,
{
    Router::new()
        .route("/api/v1/auctions", get(search).post(create))
        .route("/api/v1/auctions/{id}", get(get_auction))
        .route("/api/v1/auctions/{id}/bids", get(bids::history).post(bids::place))
        .route("/api/v1/auctions/{id}/events", get(events::stream))
}

/// What the auction handlers reach (extracted as `State<AuctionsState>`). Cloning is cheap.
#[derive(Clone)]
pub struct AuctionsState(Arc<AuctionsServices>);

impl AuctionsState {
    pub fn new(services: AuctionsServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AuctionsState {
    type Target = AuctionsServices;

    fn deref(&self) -> &AuctionsServices {
        &self.0
    }
}

/// The auction ports and settings behind [`AuctionsState`].
pub struct AuctionsServices {
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn AuctionStore>,
    pub commands: Arc<dyn AuctionCommands>,
    pub feed: Arc<dyn Feed<AuctionEvent>>,
    /// For checking that attached images are the seller's own.
    pub images: Arc<dyn ImageStore>,
    /// How often an idle event stream sends a comment.
    pub sse_heartbeat: Duration,
    /// Cancelled when the server begins shutting down, so event streams end themselves.
    pub shutdown: CancellationToken,
}

/// Someone shown by id and nickname.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Person {
    pub id: Uuid,
    pub nickname: String,
}

impl From<UserRef> for Person {
    fn from(user: UserRef) -> Self {
        Person { id: user.id, nickname: user.nickname }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageLink {
    pub id: Uuid,
    pub url: String,
}

/// An auction in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct Auction {
    pub id: Uuid,
    pub seller: Person,
    pub title: String,
    pub description: String,
    pub starting_price: i64,
    pub min_increment: i64,
    /// Highest accepted bid, or the starting price while there is none.
    pub current_price: i64,
    pub high_bidder: Option<Person>,
    pub bid_count: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub extend_seconds: i64,
    #[schema(value_type = String, example = "live")]
    pub status: AuctionStatus,
    /// The high bidder once the auction has ended.
    pub winner: Option<Person>,
    pub images: Vec<ImageLink>,
    pub created_at: DateTime<Utc>,
}

impl Auction {
    fn from_record(record: AuctionRecord, now: DateTime<Utc>) -> Self {
        let status = AuctionStatus::at(record.starts_at, record.ends_at, now);
        let high_bidder = record.high_bidder.map(Person::from);
        Auction {
            id: record.id,
            seller: record.seller.into(),
            title: record.title,
            description: record.description,
            starting_price: record.starting_price,
            min_increment: record.min_increment,
            current_price: record.current_price,
            winner: if status == AuctionStatus::Ended { high_bidder.clone() } else { None },
            high_bidder,
            bid_count: record.bid_count,
            starts_at: record.starts_at,
            ends_at: record.ends_at,
            extend_seconds: record.extend_seconds,
            status,
            images: record
                .image_ids
                .into_iter()
                .map(|id| ImageLink { id, url: image_url(id) })
                .collect(),
            created_at: record.created_at,
        }
    }
}

/// One search result.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuctionListItem {
    pub id: Uuid,
    pub title: String,
    pub current_price: i64,
    pub bid_count: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[schema(value_type = String, example = "live")]
    pub status: AuctionStatus,
    pub thumbnail_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateAuction {
    pub title: String,
    /// Plain text; never interpreted as HTML.
    #[serde(default)]
    pub description: String,
    pub starting_price: i64,
    pub min_increment: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    pub extend_seconds: Option<i64>,
    #[serde(default)]
    pub image_ids: Vec<Uuid>,
}

/// Create an auction; the caller is the seller.
#[utoipa::path(post, path = "/api/v1/auctions", tag = "auctions", security(("bearer" = [])), request_body = CreateAuction,
    responses((status = 201, body = Auction, headers(("Location" = String))), (status = 401), (status = 422, description = "validation_failed")))]
pub async fn create(
    State(state): State<AuctionsState>,
    user: AuthUser,
    Json(request): Json<CreateAuction>,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let draft = AuctionDraft {
        title: request.title,
        description: request.description,
        starting_price: request.starting_price,
        min_increment: request.min_increment,
        starts_at: request.starts_at,
        ends_at: request.ends_at,
        extend_seconds: request.extend_seconds,
        image_ids: request.image_ids,
    };
    let valid = validate_draft(draft, now)?;
    if !valid.image_ids.is_empty() {
        let owned = state.images.owned_by(user.id, &valid.image_ids).await?;
        if owned.len() != valid.image_ids.len() {
            return Err(FieldErrors::single("image_ids", "must be images you uploaded").into());
        }
    }
    let id = Uuid::now_v7();
    state
        .store
        .create(NewAuction { id, seller_id: user.id, auction: valid, created_at: now })
        .await?;
    let record = state
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::Internal("created auction vanished".into()))?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/auctions/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(Auction::from_record(record, now))).into_response())
}

/// One auction.
#[utoipa::path(get, path = "/api/v1/auctions/{id}", tag = "auctions",
    params(("id" = Uuid, Path)), responses((status = 200, body = Auction), (status = 404)))]
pub async fn get_auction(
    State(state): State<AuctionsState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Auction>> {
    let record = state.store.get(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(Auction::from_record(record, state.clock.now())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Case-insensitive substring of the title.
    pub q: Option<String>,
    /// `upcoming`, `live` or `ended`.
    pub status: Option<String>,
    /// Lowest current price.
    pub min_price: Option<i64>,
    /// Highest current price.
    pub max_price: Option<i64>,
    /// `ends_at` (default), `current_price`, `created_at`, `title`; prefix `-` for descending.
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Keyset position of a search page: the sort it belongs to, the sort value and the id.
#[derive(Debug, Serialize, Deserialize)]
struct SearchCursor {
    s: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    i: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    id: Uuid,
}

/// Search auctions.
#[utoipa::path(get, path = "/api/v1/auctions", tag = "auctions", params(SearchParams),
    responses((status = 200, body = inline(Page<AuctionListItem>)), (status = 422, description = "bad sort or filter")))]
pub async fn search(
    State(state): State<AuctionsState>,
    Query(params): Query<SearchParams>,
) -> ApiResult<Json<Page<AuctionListItem>>> {
    let mut errors = FieldErrors::new();
    let sort = match params.sort.as_deref() {
        None => Sort::parse("ends_at"),
        Some(value) => Sort::parse(value),
    };
    if sort.is_none() {
        errors.add(
            "sort",
            "must be one of ends_at, current_price, created_at, title, optionally prefixed with -",
        );
    }
    let status = params.status.as_deref().map(AuctionStatus::parse);
    if matches!(status, Some(None)) {
        errors.add("status", "must be upcoming, live or ended");
    }
    for (field, value) in [("min_price", params.min_price), ("max_price", params.max_price)] {
        if value.is_some_and(|v| v < 0) {
            errors.add(field, "must not be negative");
        }
    }
    if let (Some(min), Some(max)) = (params.min_price, params.max_price)
        && min > max
    {
        errors.add("max_price", "must not be below min_price");
    }
    // The length counts what was sent, like every length of the API.
    if params.q.as_deref().is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS) {
        errors.add("q", format!("must be at most {MAX_SEARCH_CHARS} characters"));
    }
    let q = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let limit = pagination::limit(params.limit).map_err(|e| errors.merge(e));
    let (Some(sort), Ok(limit)) = (sort, limit) else {
        return Err(errors.into());
    };
    errors.into_result(())?;
    let after = match &params.cursor {
        None => None,
        Some(cursor) => {
            let cursor: SearchCursor = pagination::decode_cursor(cursor)?;
            let value = match (sort.is_text(), cursor.i, cursor.t) {
                (false, Some(i), None) => SortValue::Int(i),
                (true, None, Some(t)) => SortValue::Text(t),
                _ => return Err(ApiError::field("cursor", "is not a cursor this endpoint issued")),
            };
            if cursor.s != sort.as_str() {
                return Err(ApiError::field("cursor", "belongs to a different sort order"));
            }
            Some((value, cursor.id))
        }
    };
    let now = state.clock.now();
    let query = SearchQuery {
        title_contains: q.map(fold),
        status: status.flatten(),
        min_price: params.min_price,
        max_price: params.max_price,
        sort,
        after,
        limit: limit + 1,
        now,
    };
    let rows = state.store.search(&query).await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |row: &AuctionSummary| {
            let (i, t) = match &row.sort_value {
                SortValue::Int(i) => (Some(*i), None),
                SortValue::Text(t) => (None, Some(t.clone())),
            };
            pagination::encode_cursor(&SearchCursor {
                s: sort.as_str().to_owned(),
                i,
                t,
                id: row.id,
            })
        },
        |row| AuctionListItem {
            status: AuctionStatus::at(row.starts_at, row.ends_at, now),
            id: row.id,
            title: row.title,
            current_price: row.current_price,
            bid_count: row.bid_count,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            thumbnail_url: row.thumbnail.map(image_url),
        },
    )))
}
