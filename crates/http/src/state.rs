//! What every handler can reach: the shared ports (accounts, images, auth, limits, operations)
//! and one sub-state per app ([`crate::auctions::AuctionsState`], [`crate::cinema::CinemaState`],
//! [`crate::deals::DealsState`], [`crate::ratings::RatingsState`],
//! [`crate::social::SocialState`]), which that app's handlers extract on their own
//! (`State<CinemaState>`, through axum's `FromRef`). App modules never import this one: their
//! routers are generic over any state their sub-state comes from.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRef;
use object_store::ObjectStore;
use surge_engine::clock::Clock;
use surge_engine::ratelimit::{Quota, RateLimiter};
use surge_store::accounts::{RefreshTokenStore, UserStore};
use surge_store::images::ImageStore;
use tokio_util::sync::CancellationToken;

use crate::accounts::authenticator::Authenticator;
use crate::accounts::oidc::Oidc;
use crate::accounts::sms::SmsLogin;
use crate::accounts::tokens::TokenService;
use crate::auctions::AuctionsState;
use crate::cinema::CinemaState;
use crate::deals::DealsState;
use crate::ratings::RatingsState;
use crate::social::SocialState;
use crate::users::Nicknames;

/// Answers `/readyz`: are the dependencies reachable?
#[async_trait]
pub trait Readiness: Send + Sync {
    /// `Err` names what is down.
    async fn check(&self) -> Result<(), String>;
}

/// Renders the Prometheus exposition text.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// HTTP-level settings shared by every app, taken from the server configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Failed logins per email.
    pub login_failures: Quota,
    /// Accepted image uploads per user.
    pub uploads: Quota,
    /// Largest JSON body accepted.
    pub json_body_limit: usize,
    /// Sign-ups per client address; `None` when not limited.
    pub signups_per_ip: Option<Quota>,
    /// Mark the session cookie `Secure` (the deployment is served over TLS, by Surge's proxy).
    pub secure_cookies: bool,
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

/// The shared ports and settings behind [`AppState`], and each app's sub-state.
pub struct Services {
    pub clock: Arc<dyn Clock>,
    pub users: Arc<dyn UserStore>,
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    pub images: Arc<dyn ImageStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub tokens: Arc<TokenService>,
    /// Verifies tokens and finds their account (see [`Authenticator`]).
    pub auth: Arc<Authenticator>,
    /// SMS-code login: the codes and their delivery.
    pub sms: Arc<SmsLogin>,
    /// Sign-in through OpenID Connect providers.
    pub oidc: Arc<Oidc>,
    /// Nicknames by user id for hot paths (a bid names its bidder); PATCH /me invalidates.
    pub nicknames: Nicknames,
    pub readiness: Arc<dyn Readiness>,
    pub metrics: MetricsRender,
    pub settings: Arc<HttpSettings>,
    /// Cancelled when the server begins shutting down, so long-lived streams end themselves.
    pub shutdown: CancellationToken,
    pub auctions: AuctionsState,
    pub cinema: CinemaState,
    pub deals: DealsState,
    pub ratings: RatingsState,
    pub social: SocialState,
}

/// What the authentication extractor needs, from any app's router.
impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for AuctionsState {
    fn from_ref(state: &AppState) -> Self {
        state.auctions.clone()
    }
}

impl FromRef<AppState> for CinemaState {
    fn from_ref(state: &AppState) -> Self {
        state.cinema.clone()
    }
}

impl FromRef<AppState> for SocialState {
    fn from_ref(state: &AppState) -> Self {
        state.social.clone()
    }
}

impl FromRef<AppState> for RatingsState {
    fn from_ref(state: &AppState) -> Self {
        state.ratings.clone()
    }
}

impl FromRef<AppState> for DealsState {
    fn from_ref(state: &AppState) -> Self {
        state.deals.clone()
    }
}
