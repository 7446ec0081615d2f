//! The OpenAPI 3.1 document, generated from the handlers' annotations, and its docs page.

use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;
use crate::{accounts, auctions, cinema, images, operations};

#[derive(OpenApi)]
#[openapi(
    info(title = "Surge API", version = "1", description = "Flash-traffic apps on one engine. Errors: `{\"error\": {\"code\", \"message\", …}}`; 422 adds `fields`."),
    paths(
        accounts::signup, accounts::login, accounts::refresh, accounts::logout, accounts::me, accounts::update_me,
        auctions::create, auctions::get_auction, auctions::search,
        auctions::bids::place, auctions::bids::history, auctions::events::stream,
        cinema::now_showing, cinema::seat_map, cinema::reservations::reserve, cinema::reservations::cancel,
        cinema::reservations::mine, cinema::admin::create_theater, cinema::admin::create_movie,
        cinema::admin::create_screening,
        images::upload, images::download,
        operations::healthz, operations::readyz, operations::metrics_text,
    ),
    components(schemas(
        accounts::Profile, accounts::Session, accounts::SignupRequest, accounts::LoginRequest,
        accounts::RefreshRequest, accounts::ProfileUpdate,
        auctions::Auction, auctions::AuctionListItem, auctions::CreateAuction, auctions::Person, auctions::ImageLink,
        auctions::bids::Bid, auctions::bids::BidRequest, auctions::bids::BidPlaced, auctions::bids::AuctionAfterBid,
        cinema::Showing, cinema::ShowingItem, cinema::ScreeningSlot, cinema::Theater, cinema::SeatMap, cinema::SeatState,
        cinema::reservations::ReservationRequest, cinema::reservations::Reservation,
        cinema::admin::TheaterRequest, cinema::admin::TheaterCreated, cinema::admin::MovieRequest, cinema::Movie,
        cinema::admin::ScreeningRequest, cinema::admin::Screening,
        images::UploadedImage,
    )),
    modifiers(&BearerAuth),
    tags((name = "accounts"), (name = "auctions"), (name = "cinema"), (name = "images"), (name = "operations")),
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
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", ApiDoc::openapi()))
}
