//! Surge's HTTP API.
//!
//! One router per domain, merged under `/api/v1`, with one error type for every failure
//! (including axum's own rejections, unknown routes and panics).
//!
//! # Layout
//! - [`accounts`]: sign-up, login, refresh, logout, `/me`; tokens and passwords.
//! - [`auctions`]: auctions, bids and the SSE feed.
//! - [`cinema`]: now showing, seat maps, reservations and the admin catalog.
//! - [`deals`]: stores nearby, deals, orders, points and the owners' live streams.
//! - [`ratings`]: LeetCode problem ratings by slug, in batches, and listed.
//! - [`social`]: articles, likes and collects, read counts, top-liked and hot rankings.
//! - [`images`]: uploads and downloads.
//! - [`proxies`]: the client's address behind trusted reverse proxies.
//! - [`operations`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`openapi`]: the generated OpenAPI 3.1 document and `/api/docs`.
//! - [`web`]: the web UI at `/` (its page, script and style sheet, embedded); the CSRF check for
//!   its cookie session is `refuse_cross_site_cookie_writes` here.
//! - [`error`], [`extract`], [`pagination`], [`response`], [`state`], [`users`]: the shared
//!   pieces. App modules import only these (never [`state`], which lists the apps).

pub mod accounts;
pub mod auctions;
pub mod cinema;
pub mod deals;
pub mod error;
pub mod extract;
pub mod images;
pub mod openapi;
pub mod operations;
pub mod pagination;
pub mod proxies;
pub mod ratings;
pub mod response;
pub mod serve;
pub mod social;
pub mod sse;
pub mod state;
pub mod users;
pub mod web;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Method, Response as HttpResponse, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics::Histogram;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let json_limit = state.settings.json_body_limit;
    // Domain routers register full `/api/v1/…` paths and are merged, not nested: nesting wraps
    // every route in another boxed service that is cloned on each request.
    Router::new()
        .merge(accounts::router())
        .merge(auctions::router())
        .merge(cinema::router())
        .merge(deals::router())
        .merge(ratings::router())
        .merge(social::router())
        .merge(images::router())
        .merge(operations::router())
        .merge(openapi::router())
        .merge(web::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(json_limit))
        // JSON and pages, for clients that accept gzip or br; not event streams, images or
        // bodies too small to gain (tower-http's default predicate).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(middleware::from_fn(refuse_cross_site_cookie_writes))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(harden))
        .with_state(state)
}

/// A request id a client sent is kept (for tracing across services) only when it is short and
/// plain; anything else is dropped, and a fresh one is made, so no client text reaches the
/// logs or the response headers. Every response says `nosniff`: a browser must never guess a
/// type Surge did not send.
async fn harden(mut request: Request, next: Next) -> Response {
    let plain = |id: &[u8]| {
        (1..=64).contains(&id.len())
            && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if request.headers().get(REQUEST_ID).is_some_and(|id| !plain(id.as_bytes())) {
        request.headers_mut().remove(REQUEST_ID);
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// CSRF protection for the browser's cookie session: a request that changes something (any
/// method but GET, HEAD and OPTIONS), carries the `surge_session` cookie and no
/// `Authorization` header must come from a page of this origin — its `Origin` names this host
/// (browsers send `Origin` on every such request). Anything else is 403 `csrf_rejected`, before
/// a handler runs. Bearer-token clients (no cookie) are not affected: another site cannot make
/// a browser attach a bearer token. `SameSite=Lax` already keeps the cookie off cross-site
/// POSTs in current browsers; this holds even where it does not.
async fn refuse_cross_site_cookie_writes(request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = request.headers();
    if safe
        || headers.contains_key(axum::http::header::AUTHORIZATION)
        || extract::session_cookie(headers).is_none()
    {
        return next.run(request).await;
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    match (host, origin_host) {
        (Some(host), Some(origin)) if host.eq_ignore_ascii_case(origin) => next.run(request).await,
        _ => ApiError::Forbidden {
            code: "csrf_rejected",
            message: "a cookie-authenticated change must come from a page of this site".into(),
        }
        .into_response(),
    }
}

/// Records `surge_http_request_duration_seconds` by method, route template and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    latency_histogram(&method, route, response.status()).record(started.elapsed().as_secs_f64());
    response
}

/// The `method` label: one of the standard methods, else `other`. A label never carries what a
/// client made up (a 60 KB method name would otherwise become a metric series for good).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Histogram handles by (method, status) and route: building a labelled key per request costs
/// several allocations and a registry lookup; a read-locked map hit costs neither. Every label
/// comes from a fixed set: a standard method or `other`, a route template or `unmatched`, and
/// a status code.
fn latency_histogram(method: &Method, route: &str, status: StatusCode) -> Histogram {
    type Handles = HashMap<(&'static str, u16), HashMap<String, Histogram>>;
    static HANDLES: LazyLock<RwLock<Handles>> = LazyLock::new(Default::default);
    let method = method_label(method);
    let key = (method, status.as_u16());
    if let Some(handle) = HANDLES.read().ok().and_then(|h| h.get(&key)?.get(route).cloned()) {
        return handle;
    }
    let handle = metrics::histogram!(
        "surge_http_request_duration_seconds",
        "method" => method,
        "route" => route.to_owned(),
        "status" => status.as_u16().to_string()
    );
    if let Ok(mut handles) = HANDLES.write() {
        handles.entry(key).or_default().insert(route.to_owned(), handle.clone());
    }
    handle
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> HttpResponse<axum::body::Body> {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}
