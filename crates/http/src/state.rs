//! What every handler can reach: the ports, as trait objects, plus settings.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::ObjectStore;
use surge_engine::auctions::{AuctionCommands, AuctionFeed};
use surge_engine::cache::TwoTierCache;
use surge_engine::cinema::ReservationCommands;
use surge_engine::clock::Clock;
use surge_engine::ratelimit::{Blocking, Quota, RateLimiter};
use surge_store::accounts::{RefreshTokenStore, UserStore};
use surge_store::auctions::AuctionStore;
use surge_store::cinema::{CinemaStore, ScreeningRecord};
use surge_store::images::ImageStore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::accounts::tokens::TokenService;
use crate::cinema::JsonBody;

/// Answers `/readyz`: are the dependencies reachable?
#[async_trait]
pub trait Readiness: Send + Sync {
    /// `Err` names what is down.
    async fn check(&self) -> Result<(), String>;
}

/// Renders the Prometheus exposition text.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// HTTP-level settings taken from the server configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub admin_emails: Vec<String>,
    /// Failed logins per email.
    pub login_failures: Quota,
    /// Accepted image uploads per user.
    pub uploads: Quota,
    pub sse_heartbeat: Duration,
    /// Largest JSON body accepted.
    pub json_body_limit: usize,
    /// Reads of "now showing" and seat maps per address, and the block for going over; `None`
    /// when reads are not limited.
    pub cinema_reads: Option<Blocking>,
    /// Least time between one user's successful reservations of one screening.
    pub reservation_cooldown: chrono::Duration,
}

/// The handle every handler receives. One `Arc`, so the per-request clone axum makes is one
/// atomic increment rather than one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The ports and settings behind [`AppState`].
pub struct Services {
    pub clock: Arc<dyn Clock>,
    pub users: Arc<dyn UserStore>,
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    pub auctions: Arc<dyn AuctionStore>,
    pub images: Arc<dyn ImageStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub bids: Arc<dyn AuctionCommands>,
    pub cinema: Arc<dyn CinemaStore>,
    pub reservations: Arc<dyn ReservationCommands>,
    /// Rendered "now showing" bodies by query.
    pub showing: Arc<TwoTierCache<JsonBody>>,
    /// Screenings by id (never changed once created): a seat rush should not cost a database
    /// read per request to learn the theater's size.
    pub screenings: moka::sync::Cache<Uuid, Arc<ScreeningRecord>>,
    pub feed: Arc<dyn AuctionFeed>,
    pub limiter: Arc<dyn RateLimiter>,
    pub tokens: Arc<TokenService>,
    /// Nicknames by user id for hot paths (a bid names its bidder); PATCH /me invalidates.
    pub nicknames: moka::sync::Cache<Uuid, Arc<str>>,
    pub readiness: Arc<dyn Readiness>,
    pub metrics: MetricsRender,
    pub settings: Arc<HttpSettings>,
    /// Cancelled when the server begins shutting down, so long-lived streams end themselves.
    pub shutdown: CancellationToken,
}
