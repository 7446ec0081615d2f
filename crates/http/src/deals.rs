//! Deals: stores on the map, their last-minute deals, favourites and points.
//!
//! The nearby search asks the store for every store inside the boxes around the circle (an
//! index walk), computes the exact great-circle distances here, keeps those within the
//! radius, and pages them nearest first by `(distance, id)`: a keyset cursor, so pages never
//! skip or repeat a store.
//!
//! The live streams (a store's orders, the favourite stores' new deals) are in [`events`].

pub mod events;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use surge_core::MAX_MONEY;
use surge_core::deals::orders::OrderRejection;
use surge_core::deals::{
    Category, DealDraft, Place, StoreDraft, boxes_around, distance_m, is_live, validate_deal,
    validate_radius, validate_store, validate_top_up,
};
use surge_core::idempotency::IdempotencyKey as EngineKey;
use surge_core::validation::FieldErrors;
use surge_engine::clock::Clock;
use surge_engine::deals::feed::DealsHub;
use surge_engine::deals::{
    DealCommands, OrderChange, OrderOutcome, PlaceOrderRequest, TopUpOutcome,
};
use surge_store::deals::{DealRecord, DealStore, NewDeal, OrderRecord, OrdersOf, StoreRecord};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts::authenticator::Authenticator;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, IdempotencyKey, Json, Path, Query};
use crate::pagination::{self, Page, PageParams};
use crate::response::{JsonBody, created};
use axum::http::HeaderMap;
use surge_engine::cache::TwoTierCache;

/// The deals routes, for any state that holds a [`DealsState`].
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    DealsState: FromRef<S>,
    Arc<Authenticator>: FromRef<S>,
{
    Router::new()
        .route("/api/v1/stores", post(create_store))
        .route("/api/v1/stores/nearby", get(nearby))
        .route("/api/v1/stores/{id}", get(get_store))
        .route("/api/v1/stores/{id}/deals", post(create_deal))
        .route("/api/v1/stores/{id}/favorite", put(add_favorite).delete(remove_favorite))
        .route("/api/v1/deals/{id}", get(get_deal))
        .route("/api/v1/me/points", get(points))
        .route("/api/v1/me/points/top-up", post(top_up))
        .route("/api/v1/deals/{id}/orders", post(place_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route("/api/v1/orders/{id}/pickup", post(pickup_order))
        .route("/api/v1/stores/{id}/orders", get(store_orders))
        .route("/api/v1/me/orders", get(my_orders))
        .route("/api/v1/stores/{id}/events", get(events::store_stream))
        .route("/api/v1/me/events", get(events::my_stream))
}

/// What the deals handlers reach (extracted as `State<DealsState>`). Cloning is cheap.
#[derive(Clone)]
pub struct DealsState(Arc<DealsServices>);

impl DealsState {
    pub fn new(services: DealsServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for DealsState {
    type Target = DealsServices;

    fn deref(&self) -> &DealsServices {
        &self.0
    }
}

/// The deals ports behind [`DealsState`].
pub struct DealsServices {
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn DealStore>,
    /// Orders, cancels, pickups and top-ups (the contended commands), and the writes that make
    /// live events (deals posted, favourites).
    pub commands: Arc<dyn DealCommands>,
    /// The live events the streams read.
    pub hub: Arc<DealsHub>,
    /// How often an idle stream sends a heartbeat.
    pub sse_heartbeat: std::time::Duration,
    /// Cancelled at shutdown: ends the streams.
    pub shutdown: CancellationToken,
    /// Nearby pages by query, for [`NEARBY_CACHE`]: a crowd at one place asks the same.
    pub nearby: Arc<TwoTierCache<JsonBody>>,
}

/// How long a nearby page is served from memory: distances never change, and a live-deal
/// count a second or two old is fine on a map.
pub const NEARBY_CACHE: std::time::Duration = std::time::Duration::from_secs(2);

/// The nearby pages' cache (in each process: a page is cheap to compute, and short-lived).
pub fn nearby_cache() -> TwoTierCache<JsonBody> {
    TwoTierCache::new("nearby", 10_000, NEARBY_CACHE)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StoreRequest {
    pub name: String,
    /// `snack`, `western`, `japanese`, `korean`, `chicken`, `chinese`, `meat`, `dessert`,
    /// `convenience` or `other`.
    pub category: String,
    /// Degrees, −90 to 90.
    pub lat: f64,
    /// Degrees, −180 to 180.
    pub lng: f64,
    pub address: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Store {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub category: String,
    pub lat: f64,
    pub lng: f64,
    pub address: String,
    pub created_at: DateTime<Utc>,
}

impl From<StoreRecord> for Store {
    fn from(store: StoreRecord) -> Self {
        Store {
            id: store.id,
            owner_id: store.owner_id,
            name: store.name,
            category: store.category.as_str().to_owned(),
            lat: store.place.lat,
            lng: store.place.lng,
            address: store.address,
            created_at: store.created_at,
        }
    }
}

/// A store with its live deals.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreWithDeals {
    #[serde(flatten)]
    pub store: Store,
    /// Deals live now (inside their window, units left), ending soonest first.
    pub deals: Vec<Deal>,
}

/// A store in a nearby search.
#[derive(Debug, Serialize, ToSchema)]
pub struct NearbyStore {
    #[serde(flatten)]
    pub store: Store,
    /// Great-circle distance from the searched place, in metres.
    pub distance_m: f64,
    /// How many of its deals are live now.
    pub active_deals: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DealRequest {
    pub title: String,
    /// Minor units.
    pub original_price: i64,
    /// Minor units, below `original_price`.
    pub deal_price: i64,
    /// 1–10,000 units.
    pub quantity: i64,
    /// Most units one buyer may take (default: the quantity).
    pub per_user_limit: Option<i64>,
    /// Default: now.
    pub starts_at: Option<DateTime<Utc>>,
    /// After the start and in the future; at most 30 days after the start.
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deal {
    pub id: Uuid,
    pub store_id: Uuid,
    pub title: String,
    pub original_price: i64,
    pub deal_price: i64,
    pub quantity: i64,
    /// Units still to be had.
    pub remaining: i64,
    pub per_user_limit: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Inside its window with units left.
    pub live: bool,
    pub created_at: DateTime<Utc>,
}

impl Deal {
    fn from_record(deal: DealRecord, now: DateTime<Utc>) -> Self {
        Deal {
            live: is_live(deal.starts_at, deal.ends_at, deal.remaining, now),
            id: deal.id,
            store_id: deal.store_id,
            title: deal.title,
            original_price: deal.original_price,
            deal_price: deal.deal_price,
            quantity: deal.quantity,
            remaining: deal.remaining,
            per_user_limit: deal.per_user_limit,
            starts_at: deal.starts_at,
            ends_at: deal.ends_at,
            created_at: deal.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TopUpRequest {
    /// 1–1,000,000 points.
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Points {
    pub balance: i64,
}

/// Open a store; the caller owns it.
#[utoipa::path(post, path = "/api/v1/stores", tag = "deals", security(("bearer" = [])),
    request_body = StoreRequest,
    responses((status = 201, body = Store, headers(("Location" = String)))))]
pub async fn create_store(
    State(state): State<DealsState>,
    user: AuthUser,
    Json(request): Json<StoreRequest>,
) -> ApiResult<Response> {
    let valid = validate_store(StoreDraft {
        name: request.name,
        category: request.category,
        lat: request.lat,
        lng: request.lng,
        address: request.address,
    })?;
    let store = StoreRecord {
        id: Uuid::now_v7(),
        owner_id: user.id,
        name: valid.name,
        category: valid.category,
        place: valid.place,
        address: valid.address,
        created_at: state.clock.now(),
    };
    state.store.create_store(store.clone()).await?;
    Ok(created(format!("/api/v1/stores/{}", store.id), Store::from(store)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NearbyParams {
    /// Latitude of the place searched from, −90 to 90.
    pub lat: f64,
    /// Longitude, −180 to 180.
    pub lng: f64,
    /// 1–20,000 metres (default 1,000).
    pub radius_m: Option<i64>,
    /// One of the ten categories.
    pub category: Option<String>,
    pub limit: Option<i64>,
    /// From the previous page.
    pub cursor: Option<String>,
}

/// Keyset position of a nearby page: the last store's distance (as its bits: a float printed
/// in JSON may not read back to the very same value, and a page boundary must be exact) and id.
#[derive(Debug, Serialize, Deserialize)]
struct NearbyCursor {
    d: u64,
    id: Uuid,
}

/// Stores within a radius, nearest first.
#[utoipa::path(get, path = "/api/v1/stores/nearby", tag = "deals", params(NearbyParams),
    responses((status = 200, body = inline(Page<NearbyStore>), description = "with an `ETag` (pages are cached for 2 s); `If-None-Match` with it gives 304"),
        (status = 304, description = "not modified since the `ETag` sent in `If-None-Match`")))]
pub async fn nearby(
    State(state): State<DealsState>,
    headers: HeaderMap,
    Query(params): Query<NearbyParams>,
) -> ApiResult<Response> {
    let mut errors = FieldErrors::new();
    let center = Place::check(params.lat, params.lng, &mut errors);
    let radius = validate_radius(params.radius_m).map_err(|e| errors.merge(e));
    let category = match params.category.as_deref() {
        None => None,
        Some(name) => {
            let category = Category::parse(name);
            if category.is_none() {
                errors.add("category", format!("must be one of {}", Category::names()));
            }
            category
        }
    };
    let limit = pagination::limit(params.limit).map_err(|e| errors.merge(e));
    let (Some(center), Ok(radius), Ok(limit)) = (center, radius, limit) else {
        return Err(errors.into());
    };
    errors.into_result(())?;
    let after =
        params.cursor.as_deref().map(pagination::decode_cursor::<NearbyCursor>).transpose()?;
    let key = format!(
        "{}|{}|{radius}|{}|{limit}|{}",
        center.lat,
        center.lng,
        category.map_or("", |c| c.as_str()),
        params.cursor.as_deref().unwrap_or("")
    );
    let page = state
        .nearby
        .get_or_load(&key, || async {
            let page = nearby_page(&state, center, radius as f64, category, limit, after)
                .await
                .map_err(|e| e.to_string())?;
            let body = serde_json::to_vec(&page).map_err(|e| e.to_string())?;
            Ok::<_, String>(Some(JsonBody::new(axum::body::Bytes::from(body))))
        })
        .await
        .map_err(ApiError::Unavailable)?
        .ok_or_else(|| ApiError::Internal("the nearby loader returned nothing".into()))?;
    Ok(JsonBody::clone(&page).respond(&headers, NEARBY_CACHE.as_secs()))
}

/// One nearby page, computed: the stores in the boxes around the circle, their exact
/// distance, those within the radius after the cursor, nearest first.
async fn nearby_page(
    state: &DealsState,
    center: Place,
    radius: f64,
    category: Option<Category>,
    limit: u32,
    after: Option<NearbyCursor>,
) -> ApiResult<Page<NearbyStore>> {
    let candidates = state.store.stores_in(&boxes_around(center, radius), category).await?;
    let mut within: Vec<(f64, Uuid)> = candidates
        .into_iter()
        .map(|store| (distance_m(center, store.place), store.id))
        .filter(|(distance, _)| *distance <= radius)
        .filter(|(distance, id)| match &after {
            None => true,
            Some(after) => (*distance, *id) > (f64::from_bits(after.d), after.id),
        })
        .collect();
    // Only the page (and the one past it, which says whether there is more) is read whole.
    let shown = (limit as usize + 1).min(within.len());
    if shown < within.len() {
        within.select_nth_unstable_by(shown, |(a, x), (b, y)| a.total_cmp(b).then(x.cmp(y)));
        within.truncate(shown);
    }
    within.sort_by(|(a, x), (b, y)| a.total_cmp(b).then(x.cmp(y)));
    let ids: Vec<Uuid> = within.iter().map(|(_, id)| *id).collect();
    let (records, counts) = tokio::try_join!(
        state.store.stores(&ids),
        state.store.live_deal_counts(&ids, state.clock.now())
    )?;
    let mut records: std::collections::HashMap<Uuid, StoreRecord> =
        records.into_iter().map(|store| (store.id, store)).collect();
    // A store is never deleted; one missing here would only be skipped.
    let within: Vec<(f64, StoreRecord)> = within
        .into_iter()
        .filter_map(|(distance, id)| records.remove(&id).map(|store| (distance, store)))
        .collect();
    Ok(pagination::page(
        within,
        limit,
        |(distance, store)| {
            pagination::encode_cursor(&NearbyCursor { d: distance.to_bits(), id: store.id })
        },
        |(distance, store)| NearbyStore {
            active_deals: counts.get(&store.id).copied().unwrap_or(0),
            distance_m: distance,
            store: Store::from(store),
        },
    ))
}

/// A store and its live deals.
#[utoipa::path(get, path = "/api/v1/stores/{id}", tag = "deals", params(("id" = Uuid, Path)),
    responses((status = 200, body = StoreWithDeals)))]
pub async fn get_store(
    State(state): State<DealsState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<StoreWithDeals>> {
    let store = state.store.store(id).await?.ok_or(ApiError::NotFound)?;
    let now = state.clock.now();
    let mut deals = Vec::new();
    for deal in state.store.live_deals(id, now).await? {
        let deal = Deal::from_record(with_live_stock(&state, deal).await?, now);
        // Sold out a moment ago (the store follows the engine): no longer live.
        if deal.live {
            deals.push(deal);
        }
    }
    Ok(Json(StoreWithDeals { store: Store::from(store), deals }))
}

/// The deal with its units left as the engine knows them now (the store may follow a moment
/// later on the distributed backend).
async fn with_live_stock(state: &DealsState, mut deal: DealRecord) -> ApiResult<DealRecord> {
    if let Some(remaining) = state.commands.live_remaining(deal.id).await? {
        deal.remaining = remaining;
    }
    Ok(deal)
}

/// The store, when the caller owns it: 404 for no such store, 403 for someone else's.
async fn owned_store(state: &DealsState, user: &AuthUser, id: Uuid) -> ApiResult<StoreRecord> {
    let store = state.store.store(id).await?.ok_or(ApiError::NotFound)?;
    if store.owner_id != user.id {
        return Err(ApiError::Forbidden {
            code: "not_store_owner",
            message: "only the store's owner may do this".into(),
        });
    }
    Ok(store)
}

/// Post a deal in one of the caller's stores.
#[utoipa::path(post, path = "/api/v1/stores/{id}/deals", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = DealRequest,
    responses((status = 201, body = Deal, headers(("Location" = String))),
        (status = 403, description = "`not_store_owner`")))]
pub async fn create_deal(
    State(state): State<DealsState>,
    user: AuthUser,
    Path(store_id): Path<Uuid>,
    Json(request): Json<DealRequest>,
) -> ApiResult<Response> {
    owned_store(&state, &user, store_id).await?;
    let now = state.clock.now();
    let valid = validate_deal(
        DealDraft {
            title: request.title,
            original_price: request.original_price,
            deal_price: request.deal_price,
            quantity: request.quantity,
            per_user_limit: request.per_user_limit,
            starts_at: request.starts_at,
            ends_at: request.ends_at,
        },
        now,
    )?;
    let deal = NewDeal {
        id: Uuid::now_v7(),
        store_id,
        title: valid.title,
        original_price: valid.original_price,
        deal_price: valid.deal_price,
        quantity: valid.quantity,
        per_user_limit: valid.per_user_limit,
        starts_at: valid.starts_at,
        ends_at: valid.ends_at,
        created_at: now,
    };
    let posted = state.commands.post_deal(deal).await?;
    Ok(created(format!("/api/v1/deals/{}", posted.deal.id), Deal::from_record(posted.deal, now)))
}

/// A deal and what is left of it.
#[utoipa::path(get, path = "/api/v1/deals/{id}", tag = "deals", params(("id" = Uuid, Path)),
    responses((status = 200, body = Deal)))]
pub async fn get_deal(
    State(state): State<DealsState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Deal>> {
    let deal = state.store.deal(id).await?.ok_or(ApiError::NotFound)?;
    let deal = with_live_stock(&state, deal).await?;
    Ok(Json(Deal::from_record(deal, state.clock.now())))
}

/// Make a store one of the caller's favourites (doing it again changes nothing).
#[utoipa::path(put, path = "/api/v1/stores/{id}/favorite", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204)))]
pub async fn add_favorite(
    State(state): State<DealsState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.store.store(id).await?.ok_or(ApiError::NotFound)?;
    state.commands.set_favorite(user.id, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a store off the caller's favourites (doing it again changes nothing).
#[utoipa::path(delete, path = "/api/v1/stores/{id}/favorite", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204)))]
pub async fn remove_favorite(
    State(state): State<DealsState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.store.store(id).await?.ok_or(ApiError::NotFound)?;
    state.commands.set_favorite(user.id, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's points.
#[utoipa::path(get, path = "/api/v1/me/points", tag = "deals", security(("bearer" = [])),
    responses((status = 200, body = Points)))]
pub async fn points(State(state): State<DealsState>, user: AuthUser) -> ApiResult<Json<Points>> {
    let balance = match state.commands.live_balance(user.id).await? {
        Some(balance) => balance,
        None => state.store.balance(user.id).await?,
    };
    Ok(Json(Points { balance }))
}

/// Add points to the caller's balance.
#[utoipa::path(post, path = "/api/v1/me/points/top-up", tag = "deals", security(("bearer" = [])),
    request_body = TopUpRequest, responses((status = 200, body = Points)))]
pub async fn top_up(
    State(state): State<DealsState>,
    user: AuthUser,
    Json(request): Json<TopUpRequest>,
) -> ApiResult<Json<Points>> {
    validate_top_up(request.amount)?;
    // Through the order engine: the balance it decides orders against is never behind.
    match state.commands.top_up(user.id, request.amount, MAX_MONEY).await? {
        TopUpOutcome::Added { balance } => Ok(Json(Points { balance })),
        TopUpOutcome::OverCap { .. } => Err(ApiError::field(
            "amount",
            format!("the balance may hold at most {MAX_MONEY} points"),
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrderRequest {
    /// Units to buy, at least 1.
    pub quantity: i64,
}

/// An order as the API shows it; the price is the server's (`deal_price × quantity`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub deal_id: Uuid,
    pub store_id: Uuid,
    pub buyer_id: Uuid,
    pub quantity: i64,
    pub total_price: i64,
    /// `confirmed`, `cancelled` or `picked_up`.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl From<OrderRecord> for Order {
    fn from(order: OrderRecord) -> Self {
        Order {
            id: order.id,
            deal_id: order.deal_id,
            store_id: order.store_id,
            buyer_id: order.buyer_id,
            quantity: order.quantity,
            total_price: order.total,
            status: order.status.as_str().to_owned(),
            created_at: order.created_at,
        }
    }
}

/// A placed order, with what is left of the deal and of the buyer's points.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPlacedBody {
    pub order: Order,
    pub remaining: i64,
    pub points_balance: i64,
}

/// An order refused by the rule, as its API error (extras inside the `error` object).
fn order_error(rejection: OrderRejection) -> ApiError {
    let message = rejection.to_string();
    let conflict = |code| ApiError::conflict(code, message.clone());
    match rejection {
        OrderRejection::DealNotActive => conflict("deal_not_active"),
        OrderRejection::InsufficientStock { remaining } => {
            conflict("insufficient_stock").with("remaining", remaining)
        }
        OrderRejection::PerUserLimit { limit, taken } => {
            conflict("per_user_limit").with("limit", limit).with("taken", taken)
        }
        OrderRejection::InsufficientPoints { balance } => ApiError::Conflict {
            status: StatusCode::PAYMENT_REQUIRED,
            code: "insufficient_points",
            message: message.clone(),
            extra: serde_json::Map::new(),
        }
        .with("balance", balance),
        OrderRejection::NotFound => ApiError::NotFound,
        OrderRejection::AlreadyPickedUp => conflict("already_picked_up"),
        OrderRejection::AlreadyCancelled => conflict("already_cancelled"),
        OrderRejection::DealEnded => conflict("deal_ended"),
        OrderRejection::NotStoreOwner => {
            ApiError::Forbidden { code: "not_store_owner", message: message.clone() }
        }
    }
}

/// Order units of a deal: its stock and the points are taken together, or neither.
#[utoipa::path(post, path = "/api/v1/deals/{id}/orders", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "1–64 characters; a repeat within 24 h returns the first response")),
    request_body = OrderRequest,
    responses((status = 201, body = OrderPlacedBody, headers(("Location" = String))),
        (status = 402, description = "`insufficient_points` (with `balance`)"),
        (status = 409, description = "`insufficient_stock` (with `remaining`), `per_user_limit` (with `limit`, `taken`), `deal_not_active`"),
        (status = 422, description = "validation_failed or idempotency_key_reused")))]
pub async fn place_order(
    State(state): State<DealsState>,
    Path(deal_id): Path<Uuid>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<OrderRequest>,
) -> ApiResult<Response> {
    if request.quantity < 1 {
        return Err(ApiError::field("quantity", "must be at least 1"));
    }
    let idempotency = key.map(|key| EngineKey {
        request_hash: Sha256::digest(format!("order:{deal_id}:{}", request.quantity)).to_vec(),
        key,
    });
    let outcome = state
        .commands
        .place_order(PlaceOrderRequest {
            deal_id,
            buyer_id: user.id,
            quantity: request.quantity,
            idempotency,
        })
        .await?;
    match outcome {
        OrderOutcome::Placed(placed) => Ok(created(
            format!("/api/v1/orders/{}", placed.order.id),
            OrderPlacedBody {
                order: Order::from(placed.order),
                remaining: placed.remaining,
                points_balance: placed.points_balance,
            },
        )),
        OrderOutcome::Rejected(rejection) => Err(order_error(rejection)),
    }
}

/// Cancel one of the caller's orders: the units and the points go back (not after pickup or
/// after the deal ended).
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Order),
        (status = 409, description = "`already_picked_up`, `already_cancelled`, `deal_ended`")))]
pub async fn cancel_order(
    State(state): State<DealsState>,
    Path(order_id): Path<Uuid>,
    user: AuthUser,
) -> ApiResult<Json<Order>> {
    let change = OrderChange::Cancel { order_id, buyer_id: user.id };
    match state.commands.change_order(change).await? {
        Ok(order) => Ok(Json(Order::from(order))),
        Err(rejection) => Err(order_error(rejection)),
    }
}

/// Mark an order of the caller's store as picked up.
#[utoipa::path(post, path = "/api/v1/orders/{id}/pickup", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Order), (status = 403, description = "`not_store_owner`"),
        (status = 409, description = "`already_picked_up`, `already_cancelled`")))]
pub async fn pickup_order(
    State(state): State<DealsState>,
    Path(order_id): Path<Uuid>,
    user: AuthUser,
) -> ApiResult<Json<Order>> {
    let change = OrderChange::Pickup { order_id, owner_id: user.id };
    match state.commands.change_order(change).await? {
        Ok(order) => Ok(Json(Order::from(order))),
        Err(rejection) => Err(order_error(rejection)),
    }
}

/// The caller's orders, newest first (on the distributed backend the newest may trail their
/// placing by the persister's lag, well under a second).
#[utoipa::path(get, path = "/api/v1/me/orders", tag = "deals", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = inline(Page<Order>))))]
pub async fn my_orders(
    State(state): State<DealsState>,
    user: AuthUser,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<Order>>> {
    let limit = pagination::limit(params.limit)?;
    let before = params.cursor.as_deref().map(pagination::decode_cursor::<Uuid>).transpose()?;
    let orders = state.store.orders(OrdersOf::Buyer(user.id), before, limit + 1).await?;
    Ok(Json(pagination::page(
        orders,
        limit,
        |order| pagination::encode_cursor(&order.id),
        Order::from,
    )))
}

/// The orders of one of the caller's stores, newest first.
#[utoipa::path(get, path = "/api/v1/stores/{id}/orders", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = inline(Page<Order>)), (status = 403, description = "`not_store_owner`")))]
pub async fn store_orders(
    State(state): State<DealsState>,
    Path(store_id): Path<Uuid>,
    user: AuthUser,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<Order>>> {
    owned_store(&state, &user, store_id).await?;
    let limit = pagination::limit(params.limit)?;
    let before = params.cursor.as_deref().map(pagination::decode_cursor::<Uuid>).transpose()?;
    let mut orders = state.store.orders(OrdersOf::Store(store_id), before, limit + 1).await?;
    // On the distributed backend the newest orders and statuses may not be in the store yet:
    // the engine's copy of every hot deal's orders wins.
    let live = state.commands.live_orders(store_id).await?;
    if !live.is_empty() {
        let mut merged: std::collections::BTreeMap<Uuid, OrderRecord> =
            orders.into_iter().map(|order| (order.id, order)).collect();
        merged.extend(
            live.into_iter()
                .filter(|order| before.is_none_or(|before| order.id < before))
                .map(|order| (order.id, order)),
        );
        orders = merged.into_values().rev().take(limit as usize + 1).collect();
    }
    Ok(Json(pagination::page(
        orders,
        limit,
        |order| pagination::encode_cursor(&order.id),
        Order::from,
    )))
}
