//! Surge's HTTP API.
//!
//! One router per domain, merged under `/api/v1`, with one error type for every failure
//! (including axum's own rejections, unknown routes and panics).
//!
//! # Layout
//! - [`accounts`]: sign-up, login, refresh, logout, `/me`; tokens and passwords.
//! - [`auctions`]: auctions, bids and the SSE feed.
//! - [`images`]: uploads and downloads.
//! - [`operations`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`openapi`]: the generated OpenAPI 3.1 document and `/api/docs`.
//! - [`error`], [`extract`], [`pagination`], [`state`]: the shared pieces.

pub mod accounts;
pub mod auctions;
pub mod error;
pub mod extract;
pub mod images;
pub mod openapi;
pub mod operations;
pub mod pagination;
pub mod state;

use std::any::Any;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Response as HttpResponse};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let json_limit = state.settings.json_body_limit;
    let api = Router::new()
        .merge(accounts::router())
        .merge(auctions::router())
        .merge(images::router())
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    Router::new()
        .nest("/api/v1", api)
        .merge(operations::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Records `surge_http_request_duration_seconds` by method, route template and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("surge_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> HttpResponse<axum::body::Body> {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}
