//! The OpenAPI 3.1 document, generated from the handlers' annotations, and its docs page.

use axum::Router;
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

mod bounds;
use crate::{accounts, auctions, cinema, deals, images, operations, ratings, social};

#[derive(OpenApi)]
#[openapi(
    info(title = "Surge API", version = "1", description = "Flash-traffic apps on one engine. Errors: `{\"error\": {\"code\", \"message\", …}}`; 422 adds `fields`."),
    paths(
        accounts::signup, accounts::login, accounts::refresh, accounts::logout, accounts::me, accounts::update_me,
        accounts::sms::send_code, accounts::sms::login, accounts::oidc::start, accounts::oidc::callback,
        auctions::create, auctions::get_auction, auctions::search,
        auctions::bids::place, auctions::bids::history, auctions::events::stream,
        cinema::now_showing, cinema::seat_map, cinema::reservations::reserve, cinema::reservations::cancel,
        cinema::reservations::mine, cinema::admin::create_theater, cinema::admin::create_movie,
        cinema::admin::create_screening,
        deals::create_store, deals::nearby, deals::get_store, deals::create_deal, deals::get_deal,
        deals::add_favorite, deals::remove_favorite, deals::points, deals::top_up,
        deals::place_order, deals::cancel_order, deals::pickup_order, deals::store_orders, deals::my_orders,
        deals::events::store_stream, deals::events::my_stream,
        ratings::get_problem, ratings::batch, ratings::list,
        social::create, social::read, social::edit, social::publish, social::withdraw,
        social::like, social::unlike, social::collect, social::uncollect, social::by_author,
        social::top_liked, social::hot,
        images::upload, images::download,
        operations::healthz, operations::readyz, operations::metrics_text,
    ),
    components(schemas(
        accounts::Profile, accounts::Session, accounts::SignupRequest, accounts::LoginRequest,
        accounts::RefreshRequest, accounts::ProfileUpdate,
        accounts::sms::CodeRequest, accounts::sms::CodeSent, accounts::sms::SmsLoginRequest,
        auctions::Auction, auctions::AuctionListItem, auctions::CreateAuction, auctions::Person, auctions::ImageLink,
        auctions::bids::Bid, auctions::bids::BidRequest, auctions::bids::BidPlaced, auctions::bids::AuctionAfterBid,
        cinema::Showing, cinema::ShowingItem, cinema::ScreeningSlot, cinema::Theater, cinema::SeatMap, cinema::SeatState,
        cinema::reservations::ReservationRequest, cinema::reservations::Reservation,
        cinema::admin::TheaterRequest, cinema::admin::TheaterCreated, cinema::admin::MovieRequest, cinema::Movie,
        cinema::admin::ScreeningRequest, cinema::admin::Screening,
        deals::StoreRequest, deals::Store, deals::StoreWithDeals, deals::NearbyStore,
        deals::DealRequest, deals::Deal, deals::TopUpRequest, deals::Points,
        deals::OrderRequest, deals::Order, deals::OrderPlacedBody,
        ratings::Problem, ratings::TagView, ratings::Pending, ratings::BatchRequest, ratings::BatchAnswer,
        social::Article, social::ArticleRequest, social::Liked, social::Collected, social::ArticleSummary,
        social::Ranked, social::Ranking,
        images::UploadedImage, images::ImageUpload,
    )),
    modifiers(&BearerAuth),
    tags((name = "accounts"), (name = "auctions"), (name = "cinema"), (name = "deals"), (name = "images"), (name = "operations"), (name = "ratings"), (name = "social")),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// `/api/openapi.json` and the docs page at `/api/docs` (served from the binary, works offline).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new("/api/docs").external_url_unchecked("/api/openapi.json", document()))
}

/// The served document: the handlers' annotations, completed with what every operation can
/// answer besides its own outcomes (see [`complete`]).
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    complete(&mut document);
    bounds::apply(&mut document);
    document
}

/// The one error shape, as a schema component.
const ERROR_SCHEMA: &str = "Error";

/// Adds to every operation the statuses it can answer because of what it takes — 401 when it
/// needs a token, 400/413/415/422 for a JSON body, 422 for query parameters, 400 (malformed)
/// and 404 (unknown) for a path id, 503 when a dependency is down — and gives every error response the one error schema,
/// with `Retry-After` on 429 and 503. Clients and fuzzers then know every status and shape.
fn complete(document: &mut Value) {
    let schemas = &mut document["components"]["schemas"];
    schemas[ERROR_SCHEMA] = error_schema();
    let Some(paths) = document["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (_, operation) in item.iter_mut() {
            let implied = implied_statuses(path, operation);
            let responses = &mut operation["responses"];
            for status in implied {
                let entry = &mut responses[status.to_string()];
                if entry.is_null() {
                    *entry = json!({ "description": default_description(status) });
                }
            }
            let Some(responses) = responses.as_object_mut() else { continue };
            for (status, response) in responses.iter_mut() {
                let status: u16 = status.parse().unwrap_or(0);
                if status >= 400 && response.get("content").is_none() {
                    response["content"] = json!({ "application/json": {
                        "schema": { "$ref": format!("#/components/schemas/{ERROR_SCHEMA}") }
                    }});
                }
                if status == 429 || status == 503 {
                    response["headers"]["Retry-After"] = json!({
                        "description": "seconds to wait before trying again",
                        "required": true,
                        "schema": { "type": "integer", "minimum": 0 }
                    });
                }
            }
        }
    }
}

/// The statuses an operation can answer because of what it takes.
fn implied_statuses(path: &str, operation: &Value) -> Vec<u16> {
    let mut statuses = Vec::new();
    let parameters = operation["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
    let has = |place: &str| parameters.iter().any(|p| p["in"] == place);
    if operation.get("security").is_some() {
        statuses.push(401);
    }
    if operation.get("requestBody").is_some() {
        statuses.extend([400, 413, 415, 422]);
    }
    if has("query") {
        statuses.push(422);
    }
    if has("path") {
        statuses.extend([400, 404]);
    }
    // Every operation but the process's own health and metrics reads a store.
    if !matches!(path, "/healthz" | "/metrics") {
        statuses.push(503);
    }
    statuses
}

fn default_description(status: u16) -> &'static str {
    match status {
        400 => "`invalid_json` and other malformed requests",
        401 => "`unauthorized`: no valid access token",
        404 => "`not_found`",
        413 => "`payload_too_large`: the body is over the limit",
        415 => "`unsupported_media_type`: the body is not JSON",
        422 => "`validation_failed`: `fields` names each invalid field and says why",
        429 => "`rate_limited`",
        503 => "`unavailable`: a dependency (the database, Redis) does not answer",
        _ => "",
    }
}

/// `{"error": {"code", "message", …}}`: `fields` on 422, and each error's own extras
/// (`min_amount`, `taken`, …).
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "description": "snake_case, stable" },
                    "message": { "type": "string", "description": "for people" },
                    "fields": {
                        "type": "object",
                        "description": "422: each invalid field and what is wrong with it",
                        "additionalProperties": { "type": "string" }
                    }
                },
                "additionalProperties": true
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_but_health_and_metrics_can_be_unavailable_with_retry_after() {
        let document = document();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let unavailable = &operation["responses"]["503"];
                if matches!(path.as_str(), "/healthz" | "/metrics") {
                    continue;
                }
                assert!(
                    unavailable["headers"]["Retry-After"].is_object(),
                    "{method} {path}: {unavailable}"
                );
            }
        }
    }

    #[test]
    fn a_secured_operation_lists_401_and_a_body_lists_400_413_415_422() {
        let document = document();
        let create = &document["paths"]["/api/v1/auctions"]["post"]["responses"];
        for status in ["400", "401", "413", "415", "422"] {
            assert!(create[status].is_object(), "no {status} in {create}");
        }
        let search = &document["paths"]["/api/v1/auctions"]["get"]["responses"];
        assert!(search["401"].is_null(), "the search needs no token: {search}");
    }
}
