//! Placing bids and reading the bid history.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use metrics::Counter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use surge_core::accounts::UserRef;
use surge_core::auctions::Rejection;
use surge_core::auctions::validate_bid_amount;
use surge_core::idempotency::IdempotencyKey as EngineKey;
use surge_engine::auctions::{BidOutcome, PlaceBid};
use surge_store::auctions::BidRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AuctionsState;
use super::Person;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, IdempotencyKey, Json, Path, Query};
use crate::pagination::{self, Page, PageParams};

#[derive(Debug, Deserialize, ToSchema)]
pub struct BidRequest {
    /// Minor units.
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Bid {
    pub id: Uuid,
    pub auction_id: Uuid,
    pub bidder: Person,
    pub amount: i64,
    /// 1 for the auction's first accepted bid, then 2, 3, … with no gaps.
    pub seq: i64,
    pub placed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuctionAfterBid {
    pub current_price: i64,
    pub ends_at: DateTime<Utc>,
    pub bid_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BidPlaced {
    pub bid: Bid,
    pub auction: AuctionAfterBid,
}

impl From<BidRecord> for Bid {
    fn from(record: BidRecord) -> Self {
        Bid {
            id: record.id,
            auction_id: record.auction_id,
            bidder: record.bidder.into(),
            amount: record.amount,
            seq: record.seq,
            placed_at: record.placed_at,
        }
    }
}

/// `surge_bids_total` by outcome; handles are looked up once, not per bid.
static BIDS_ACCEPTED: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("surge_bids_total", "outcome" => "accepted"));
static BIDS_REJECTED: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("surge_bids_total", "outcome" => "rejected"));

fn rejection_error(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::TooLow { min_amount } => {
            ApiError::conflict("bid_too_low", format!("the bid must be at least {min_amount}"))
                .with("min_amount", min_amount)
        }
        Rejection::OwnAuction => ApiError::Forbidden {
            code: "own_auction",
            message: "you cannot bid on your own auction".into(),
        },
        Rejection::NotStarted => {
            ApiError::conflict("auction_not_started", "the auction has not started yet")
        }
        Rejection::Ended | Rejection::AlreadyClosed | Rejection::NotEnded => ApiError::Conflict {
            status: StatusCode::GONE,
            code: "auction_ended",
            message: "the auction has ended".into(),
            extra: Default::default(),
        },
    }
}

/// Place a bid.
#[utoipa::path(post, path = "/api/v1/auctions/{id}/bids", tag = "auctions", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "1–64 characters; a repeat within 24 h returns the first response")),
    request_body = BidRequest,
    responses((status = 201, body = BidPlaced), (status = 403, description = "own_auction"), (status = 404),
        (status = 409, description = "bid_too_low (with min_amount) or auction_not_started"), (status = 410, description = "auction_ended"),
        (status = 422, description = "validation_failed or idempotency_key_reused")))]
pub async fn place(
    State(state): State<AuctionsState>,
    Path(auction_id): Path<Uuid>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<BidRequest>,
) -> ApiResult<Response> {
    validate_bid_amount(request.amount)?;
    let bidder = UserRef { id: user.id, nickname: user.nickname.to_string() };
    let idempotency = key.map(|key| EngineKey {
        request_hash: Sha256::digest(format!("bid:{auction_id}:{}", request.amount)).to_vec(),
        key,
    });
    let outcome = state
        .commands
        .place_bid(PlaceBid {
            auction_id,
            bid_id: Uuid::now_v7(),
            bidder,
            amount: request.amount,
            idempotency,
        })
        .await?;
    match outcome {
        BidOutcome::Accepted(receipt) => {
            BIDS_ACCEPTED.increment(1);
            let placed = BidPlaced {
                bid: Bid {
                    id: receipt.bid.id,
                    auction_id: receipt.bid.auction_id,
                    bidder: receipt.bid.bidder.into(),
                    amount: receipt.bid.amount,
                    seq: receipt.bid.seq,
                    placed_at: receipt.bid.placed_at,
                },
                auction: AuctionAfterBid {
                    current_price: receipt.current_price,
                    ends_at: receipt.ends_at,
                    bid_count: receipt.bid_count,
                },
            };
            Ok((StatusCode::CREATED, Json(placed)).into_response())
        }
        BidOutcome::Rejected(rejection) => {
            BIDS_REJECTED.increment(1);
            Err(rejection_error(rejection))
        }
    }
}

/// Every accepted bid, newest first.
#[utoipa::path(get, path = "/api/v1/auctions/{id}/bids", tag = "auctions",
    params(("id" = Uuid, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = inline(Page<Bid>)), (status = 404)))]
pub async fn history(
    State(state): State<AuctionsState>,
    Path(auction_id): Path<Uuid>,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<Bid>>> {
    let limit = pagination::limit(params.limit)?;
    let before: Option<i64> =
        params.cursor.as_deref().map(pagination::decode_cursor).transpose()?;
    if state.store.get(auction_id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let rows = state.store.bids_before(auction_id, before, limit + 1).await?;
    Ok(axum::Json(pagination::page(
        rows,
        limit,
        |bid| pagination::encode_cursor(&bid.seq),
        Bid::from,
    )))
}
