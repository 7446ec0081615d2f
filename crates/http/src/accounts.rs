//! Accounts: sign-up, login (password, or a code sent by SMS: [`sms`]), token refresh and
//! logout, and the caller's profile.

pub mod authenticator;
pub mod oidc;
pub mod passwords;
pub mod sessions;
pub mod sms;
pub mod tokens;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use surge_core::accounts as rules;
use surge_core::ratelimit::{Decision, retry_after_secs};
use surge_core::validation::FieldErrors;
use surge_store::StoreError;
use surge_store::accounts::{NewRefreshToken, NewUser, ProfilePatch, Rotation, User};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, ClientIp, Json, SESSION_COOKIE};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/signup", post(signup))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/sms/code", post(sms::send_code))
        .route("/api/v1/auth/sms/login", post(sms::login))
        .route("/api/v1/auth/oidc/{provider}/start", get(oidc::start))
        .route("/api/v1/auth/oidc/{provider}/callback", get(oidc::callback))
        .route("/api/v1/me", get(me).patch(update_me))
}

/// A user's own profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub id: Uuid,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub nickname: String,
    #[schema(value_type = Option<String>, format = Date)]
    pub birthday: Option<NaiveDate>,
    pub about: Option<String>,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Issued on sign-up, login and refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub user: Profile,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    pub nickname: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Fields to change; absent fields stay, `null` clears `birthday` or `about`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfileUpdate {
    #[serde(default)]
    pub nickname: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Date)]
    pub birthday: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub about: Option<Option<String>>,
}

/// Tells "absent" (outer `None`, via `default`) from "null" (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A profile with the user's roles as granted now (`surge admin grant`): a token carries the
/// roles of its login or refresh, so a grant takes effect at the next one.
async fn profile(state: &AppState, user: User) -> ApiResult<Profile> {
    Ok(Profile {
        roles: state.users.roles(user.id).await?,
        id: user.id,
        email: user.email,
        phone: user.phone,
        nickname: user.nickname,
        birthday: user.birthday,
        about: user.about,
        created_at: user.created_at,
    })
}

/// Starts a new refresh-token family for `user`: its id and its first refresh token.
async fn new_family(state: &AppState, user: &User) -> ApiResult<(Uuid, String)> {
    // The account's first authenticated request then finds it in the cache.
    state.nicknames.insert(user.id, user.nickname.as_str().into());
    let (refresh_token, token_hash) = state.tokens.mint_refresh();
    let now = state.clock.now();
    let session = Uuid::now_v7();
    state
        .refresh_tokens
        .insert(NewRefreshToken {
            id: Uuid::now_v7(),
            family_id: session,
            user_id: user.id,
            token_hash,
            expires_at: now + state.tokens.refresh_ttl(),
            created_at: now,
        })
        .await?;
    Ok((session, refresh_token))
}

/// Starts a new refresh-token family for `user` and builds the session response.
async fn open_session(state: &AppState, user: User, status: StatusCode) -> ApiResult<Response> {
    let (session, refresh_token) = new_family(state, &user).await?;
    session_response(state, user, session, refresh_token, status).await
}

/// A browser session for `user` (a sign-in that ends in a redirect, not JSON): the
/// `Set-Cookie` of its access token.
pub(crate) async fn browser_session(state: &AppState, user: User) -> ApiResult<HeaderValue> {
    let (session, _refresh_token) = new_family(state, &user).await?;
    let roles = state.users.roles(user.id).await?;
    let access_token = state.tokens.issue_access(user.id, Some(session), roles);
    HeaderValue::from_str(&session_cookie(state, &access_token))
        .map_err(|e| ApiError::Internal(format!("session cookie: {e}")))
}

/// The `Set-Cookie` value carrying `access_token` for browsers.
fn session_cookie(state: &AppState, access_token: &str) -> String {
    let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={access_token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        state.tokens.access_ttl_secs()
    )
}

/// The response of a login, sign-up or refresh: an access token of `session` (the
/// refresh-token family), the refresh token, and the cookie for browsers.
async fn session_response(
    state: &AppState,
    user: User,
    session: Uuid,
    refresh_token: String,
    status: StatusCode,
) -> ApiResult<Response> {
    let profile = profile(state, user).await?;
    let access_token = state.tokens.issue_access(profile.id, Some(session), profile.roles.clone());
    let cookie = session_cookie(state, &access_token);
    let session = Session {
        user: profile,
        access_token,
        refresh_token,
        expires_in: state.tokens.access_ttl_secs(),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    Ok((status, headers, Json(session)).into_response())
}

/// Create an account.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "accounts", request_body = SignupRequest,
    responses((status = 201, body = Session), (status = 409, description = "email_taken"), (status = 422, description = "validation_failed"),
        (status = 429, description = "too many sign-ups from this address (`limits.signups_per_ip_per_hour`; Retry-After)")))]
pub async fn signup(
    axum::extract::State(state): axum::extract::State<AppState>,
    ip: ClientIp,
    Json(request): Json<SignupRequest>,
) -> ApiResult<Response> {
    let mut errors = FieldErrors::new();
    let email = rules::normalize_email(&request.email);
    rules::validate_email(&email, &mut errors);
    rules::validate_password(&request.password, &mut errors);
    let nickname = rules::validate_nickname(&request.nickname, &mut errors);
    errors.into_result(())?;
    // Accounts per address: charged before the work, given back when no account was made.
    let limit = state.settings.signups_per_ip.map(|quota| {
        let address = ip.0.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        (quota, format!("signup:{address}"))
    });
    if let Some((quota, key)) = &limit
        && let Decision::Denied { retry_after_ms } = state.limiter.acquire(*quota, key).await?
    {
        return Err(ApiError::RateLimited { retry_after_secs: retry_after_secs(retry_after_ms) });
    }
    let created = create_account(&state, email, request.password, nickname).await;
    if created.is_err()
        && let Some((quota, key)) = &limit
    {
        state.limiter.release(*quota, key).await?;
    }
    open_session(&state, created?, StatusCode::CREATED).await
}

async fn create_account(
    state: &AppState,
    email: String,
    password: String,
    nickname: String,
) -> ApiResult<User> {
    let password_hash = passwords::hash(password).await?;
    let created = state
        .users
        .create(NewUser {
            id: Uuid::now_v7(),
            email,
            password_hash,
            nickname,
            created_at: state.clock.now(),
        })
        .await;
    match created {
        Ok(user) => Ok(user),
        Err(StoreError::Conflict("email")) => {
            Err(ApiError::conflict("email_taken", "an account with this email already exists"))
        }
        Err(other) => Err(other.into()),
    }
}

/// Log in with email and password. Ten failures per email per minute block further attempts.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, description = "invalid_credentials"), (status = 429, description = "rate_limited")))]
pub async fn login(
    axum::extract::State(state): axum::extract::State<AppState>,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Response> {
    let email = rules::normalize_email(&request.email);
    let limit_key = format!("login:{email}");
    let quota = state.settings.login_failures;
    // Charged before the password is checked and given back on success: parallel guesses
    // cannot all pass the limit before any of them has failed.
    if let Decision::Denied { retry_after_ms } = state.limiter.acquire(quota, &limit_key).await? {
        return Err(ApiError::RateLimited { retry_after_secs: retry_after_secs(retry_after_ms) });
    }
    let credentials = state.users.credentials_by_email(&email).await?;
    let stored_hash = credentials.as_ref().and_then(|c| c.password_hash.clone());
    let matches = passwords::verify(request.password, stored_hash).await?;
    match credentials {
        Some(credentials) if matches => {
            state.limiter.release(quota, &limit_key).await?;
            open_session(&state, credentials.user, StatusCode::OK).await
        }
        _ => Err(ApiError::Unauthorized {
            code: "invalid_credentials",
            message: "the email or password is wrong".into(),
        }),
    }
}

fn invalid_refresh() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_refresh_token",
        message: "the refresh token is invalid, expired or revoked".into(),
    }
}

/// Exchange a refresh token for a new pair. The presented token stops working; presenting it
/// again revokes every token of its family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "accounts", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, description = "invalid_refresh_token")))]
pub async fn refresh(
    axum::extract::State(state): axum::extract::State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Response> {
    let (refresh_token, token_hash) = state.tokens.mint_refresh();
    let now = state.clock.now();
    let next = NewRefreshToken {
        id: Uuid::now_v7(),
        family_id: Uuid::nil(),
        user_id: Uuid::nil(),
        token_hash,
        expires_at: now + state.tokens.refresh_ttl(),
        created_at: now,
    };
    let presented = tokens::hash_refresh(&request.refresh_token);
    match state.refresh_tokens.rotate(&presented, next, now).await? {
        Rotation::Rotated { user_id, family_id } => {
            let user = state.users.get(user_id).await?.ok_or_else(invalid_refresh)?;
            session_response(&state, user, family_id, refresh_token, StatusCode::OK).await
        }
        Rotation::ReuseDetected { family_id } => {
            tracing::warn!("a rotated refresh token was presented again; its family is revoked");
            state.auth.revoked.revoke(family_id);
            Err(invalid_refresh())
        }
        Rotation::Invalid => Err(invalid_refresh()),
    }
}

/// End a session: the refresh token's family is revoked, and with it the session's access
/// tokens (on every replica within a second).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", request_body = RefreshRequest,
    responses((status = 204)))]
pub async fn logout(
    axum::extract::State(state): axum::extract::State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Response> {
    let presented = tokens::hash_refresh(&request.refresh_token);
    if let Some(session) =
        state.refresh_tokens.revoke_family_of(&presented, state.clock.now()).await?
    {
        state.auth.revoked.revoke(session);
    }
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        headers.insert(header::SET_COOKIE, value);
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, description = "unauthorized")))]
pub async fn me(
    axum::extract::State(state): axum::extract::State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Profile>> {
    let found = state.users.get(user.id).await?.ok_or_else(ApiError::unauthorized)?;
    Ok(Json(profile(&state, found).await?))
}

/// Change the caller's nickname, birthday or about text.
#[utoipa::path(patch, path = "/api/v1/me", tag = "accounts", security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, body = Profile), (status = 422, description = "validation_failed")))]
pub async fn update_me(
    axum::extract::State(state): axum::extract::State<AppState>,
    user: AuthUser,
    Json(update): Json<ProfileUpdate>,
) -> ApiResult<Json<Profile>> {
    let mut errors = FieldErrors::new();
    let now = state.clock.now();
    let nickname = update.nickname.map(|n| rules::validate_nickname(&n, &mut errors));
    let birthday = update
        .birthday
        .map(|b| b.and_then(|b| rules::validate_birthday(&b, now.date_naive(), &mut errors)));
    if let Some(Some(about)) = &update.about {
        rules::validate_about(about, &mut errors);
    }
    errors.into_result(())?;
    let patch = ProfilePatch { nickname, birthday, about: update.about };
    let updated = state
        .users
        .update_profile(user.id, patch, now)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    state.nicknames.invalidate(&user.id);
    Ok(Json(profile(&state, updated).await?))
}
