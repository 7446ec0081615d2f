//! Sign-in through OpenID Connect providers (`auth.oidc.<name>.*`): the authorization code flow
//! with PKCE. `start` sends the browser to the provider; `callback` takes the code back,
//! exchanges it, verifies the ID token (signature by the provider's JWKS, `iss`, `aud`, `exp`,
//! and the nonce), finds or makes the account, sets the session cookie and redirects.
//!
//! Between the two, the state, nonce, PKCE verifier and where to go afterwards travel in the
//! `surge_oidc` cookie, HttpOnly and signed with a key every replica derives from the token
//! signing key: any replica can finish a sign-in another one started, and nothing is stored.
//! A forged or missing state is 400 `state_mismatch`, a wrong nonce 400 `nonce_mismatch`, and a
//! code the provider refuses (a replayed one) or a token that does not verify 401
//! `oidc_failed`. An account is linked by a verified email only.
//!
//! The provider's discovery document and keys are fetched on first use and kept an hour, then
//! fetched again (a provider rotating its keys is seen within the hour, or at once when a token
//! names a key we do not have). HTTP goes through the server's reqwest client, redirects off.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use surge_store::accounts::ExternalIdentity;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query, cookie};
use crate::state::AppState;

/// The cookie carrying a sign-in in progress.
const PENDING_COOKIE: &str = "surge_oidc";
/// How long a sign-in may take at the provider.
const PENDING_SECS: i64 = 600;
/// How long a provider's discovery document and keys are used before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// One configured provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Exactly as the provider writes it in its tokens (`iss`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Asked for besides `openid`.
    pub scopes: Vec<String>,
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The configured providers, their discovered metadata, and the key signing the cookie.
pub struct Oidc {
    providers: BTreeMap<String, ProviderConfig>,
    metadata: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
    http: OidcHttp,
    key: [u8; 32],
}

impl Oidc {
    /// `secret_seed`: secret bytes every replica shares (the signing key's). The HTTP client
    /// follows no redirects: a provider's endpoints are called as its discovery names them.
    pub fn new(
        providers: BTreeMap<String, ProviderConfig>,
        secret_seed: &[u8],
    ) -> Result<Self, String> {
        surge_engine::outbound::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("surge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let key =
            Sha256::new().chain_update(b"surge/oidc-state/v1").chain_update(secret_seed).finalize();
        Ok(Self { providers, metadata: Mutex::default(), http: OidcHttp(http), key: key.into() })
    }

    async fn metadata(
        &self,
        name: &str,
        config: &ProviderConfig,
    ) -> ApiResult<CoreProviderMetadata> {
        let cached = self.metadata.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned();
        if let Some((at, metadata)) = cached
            && at.elapsed() < METADATA_TTL
        {
            return Ok(metadata);
        }
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| ApiError::Internal(format!("auth.oidc.{name}.issuer: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http).await.map_err(|e| {
            tracing::warn!(provider = name, error = %e, "cannot read the provider's discovery document");
            ApiError::Unavailable(format!("the sign-in provider {name} cannot be reached"))
        })?;
        self.metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    /// Whether `name` is a configured provider.
    pub fn knows(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    fn forget_metadata(&self, name: &str) {
        self.metadata.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    async fn client(&self, name: &str, redirect: &str) -> ApiResult<(Client, &ProviderConfig)> {
        let config = self.providers.get(name).ok_or(ApiError::NotFound)?;
        let metadata = self.metadata(name, config).await?;
        let redirect = RedirectUrl::new(redirect.to_owned())
            .map_err(|e| ApiError::Internal(format!("callback URL: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        Ok((client, config))
    }

    fn sign(&self, pending: &Pending) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(pending).unwrap_or_default());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes())))
    }

    /// The pending sign-in in `cookie`, if its signature holds and it has not expired.
    fn open(&self, cookie: &str, now: i64) -> Option<Pending> {
        let (payload, signature) = cookie.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        if !constant_time_eq(&self.mac(payload.as_bytes()), &signature) {
            return None;
        }
        let pending: Pending =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (pending.expires > now).then_some(pending)
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }
}

/// A sign-in between `start` and `callback`.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    redirect: String,
    /// Unix seconds.
    expires: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartParams {
    /// A path on this site to return to afterwards (default `/`): starts with one `/`, no
    /// backslash, no spaces.
    #[param(pattern = "^/")]
    pub redirect: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the sign-in was refused or cancelled.
    pub error: Option<String>,
}

/// Where the provider sends the browser back: this request's host and the callback path.
fn callback_url(state: &AppState, headers: &HeaderMap, provider: &str) -> ApiResult<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::bad_request("missing_host", "the request names no Host"))?;
    let scheme = if state.settings.secure_cookies { "https" } else { "http" };
    Ok(format!("{scheme}://{host}/api/v1/auth/oidc/{provider}/callback"))
}

/// Only a path on this site: not another site (`//host`, `https://…`), not a backslash trick.
fn local_path(redirect: &str) -> bool {
    redirect.starts_with('/')
        && !redirect.starts_with("//")
        && !redirect.contains('\\')
        && redirect.bytes().all(|b| b.is_ascii_graphic())
}

fn pending_cookie(state: &AppState, value: &str, max_age: i64) -> ApiResult<HeaderValue> {
    let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{PENDING_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/api/v1/auth/oidc; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| ApiError::Internal(format!("oidc cookie: {e}")))
}

fn redirect_to(location: &str, cookies: Vec<HeaderValue>) -> ApiResult<Response> {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location)
            .map_err(|e| ApiError::Internal(format!("location: {e}")))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

fn state_mismatch() -> ApiError {
    ApiError::bad_request(
        "state_mismatch",
        "this sign-in was not started here, has expired, or was tampered with; start again",
    )
}

fn failed(message: impl Into<String>) -> ApiError {
    ApiError::Unauthorized { code: "oidc_failed", message: message.into() }
}

/// Sign in through a provider: redirects to it (authorization code flow with PKCE).
#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}/start", tag = "accounts",
    params(("provider" = String, Path), StartParams),
    responses((status = 302, description = "to the provider's sign-in page"), (status = 404, description = "no such provider"),
        (status = 422, description = "`redirect` is not a path on this site"), (status = 503, description = "the provider cannot be reached")))]
pub async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(params): Query<StartParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !state.oidc.knows(&provider) {
        return Err(ApiError::NotFound);
    }
    let redirect = params.redirect.unwrap_or_else(|| "/".to_owned());
    if !local_path(&redirect) {
        return Err(ApiError::field("redirect", "must be a path on this site"));
    }
    let callback = callback_url(&state, &headers, &provider)?;
    let (client, config) = state.oidc.client(&provider, &callback).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf, nonce) = request.url();
    let pending = Pending {
        provider,
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        redirect,
        expires: state.clock.now().timestamp() + PENDING_SECS,
    };
    let cookie = pending_cookie(&state, &state.oidc.sign(&pending), PENDING_SECS)?;
    redirect_to(url.as_str(), vec![cookie])
}

/// Where the provider returns: checks state and nonce, verifies the ID token, signs in and
/// redirects to where the sign-in started.
#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}/callback", tag = "accounts",
    params(("provider" = String, Path), CallbackParams),
    responses((status = 302, description = "to `redirect`, with the session cookie set"),
        (status = 400, description = "`state_mismatch` or `nonce_mismatch`"),
        (status = 401, description = "`oidc_failed`: the provider refused the code, or its ID token does not verify"),
        (status = 404, description = "no such provider"), (status = 503, description = "the provider cannot be reached")))]
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(params): Query<CallbackParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !state.oidc.knows(&provider) {
        return Err(ApiError::NotFound);
    }
    let now = state.clock.now();
    let pending = cookie(&headers, PENDING_COOKIE)
        .and_then(|value| state.oidc.open(value, now.timestamp()))
        .filter(|pending| pending.provider == provider)
        .ok_or_else(state_mismatch)?;
    let given = params.state.as_deref().unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), pending.state.as_bytes()) {
        return Err(state_mismatch());
    }
    if let Some(error) = params.error {
        return Err(failed(format!("the provider did not sign you in ({error})")));
    }
    let code = params.code.ok_or_else(|| failed("the provider sent no code"))?;
    let callback = callback_url(&state, &headers, &provider)?;
    let (client, _) = state.oidc.client(&provider, &callback).await?;
    let exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| ApiError::Internal(format!("provider {provider}: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier));
    let tokens: CoreTokenResponse =
        exchange.request_async(&state.oidc.http).await.map_err(|e| {
            tracing::info!(provider = %provider, error = %e, "the provider refused a code");
            failed("the provider refused the sign-in code (used already, or expired)")
        })?;
    let id_token = tokens.id_token().ok_or_else(|| failed("the provider sent no ID token"))?;
    let verifier = client.id_token_verifier();
    let claims = match id_token.claims(&verifier, &Nonce::new(pending.nonce)) {
        Ok(claims) => claims,
        Err(ClaimsVerificationError::InvalidNonce(_)) => {
            return Err(ApiError::bad_request(
                "nonce_mismatch",
                "the ID token is not for this sign-in",
            ));
        }
        Err(error) => {
            if matches!(error, ClaimsVerificationError::SignatureVerification(_)) {
                // Perhaps the provider rotated its keys: read them again next time.
                state.oidc.forget_metadata(&provider);
            }
            tracing::info!(provider = %provider, error = %error, "an ID token did not verify");
            return Err(failed("the provider's ID token does not verify"));
        }
    };
    let verified_email = claims
        .email()
        .filter(|_| claims.email_verified() == Some(true))
        .map(|email| email.as_str().trim().to_lowercase());
    let nickname = nickname_of(
        claims.preferred_username().map(|u| u.as_str()),
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        verified_email.as_deref(),
    );
    let identity = ExternalIdentity {
        provider: provider.clone(),
        subject: claims.subject().as_str().to_owned(),
        verified_email,
    };
    let user =
        state.users.find_or_create_by_identity(&identity, Uuid::now_v7(), &nickname, now).await?;
    let session = super::browser_session(&state, user).await?;
    let clear = pending_cookie(&state, "", 0)?;
    redirect_to(&pending.redirect, vec![session, clear])
}

/// A nickname for a new account (1–10 characters): the provider's username, else its name,
/// else the email's local part, else "member".
fn nickname_of(username: Option<&str>, name: Option<&str>, email: Option<&str>) -> String {
    let local = email.and_then(|e| e.split('@').next());
    [username, name, local]
        .into_iter()
        .flatten()
        .map(|candidate| {
            candidate
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .chars()
                .take(10)
                .collect::<String>()
        })
        .find(|candidate| !candidate.trim().is_empty())
        .map(|candidate| candidate.trim().to_owned())
        .unwrap_or_else(|| "member".to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The server's reqwest client as openidconnect's HTTP client (redirects must be off).
#[derive(Clone)]
struct OidcHttp(reqwest::Client);

#[derive(Debug, thiserror::Error)]
enum OidcHttpError {
    #[error("request: {0}")]
    Request(#[from] reqwest::Error),
    #[error("response: {0}")]
    Response(#[from] openidconnect::http::Error),
}

impl<'c> AsyncHttpClient<'c> for OidcHttp {
    type Error = OidcHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request: reqwest::Request = request.try_into()?;
            let response = self.0.execute(request).await?;
            let mut answer = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            Ok(answer.body(response.bytes().await?.to_vec())?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_redirects() {
        for good in ["/", "/#/auctions", "/x?y=1"] {
            assert!(local_path(good), "{good}");
        }
        for bad in ["", "//evil.example", "https://evil.example", "/\\evil", "x", "/a b"] {
            assert!(!local_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_nickname_comes_from_the_claims_in_order() {
        assert_eq!(nickname_of(Some("alice"), Some("Alice A"), Some("a@x.io")), "alice");
        assert_eq!(nickname_of(None, Some("Bartholomew Jones"), None), "Bartholome");
        assert_eq!(nickname_of(None, None, Some("carol@x.io")), "carol");
        assert_eq!(nickname_of(Some("  "), None, None), "member");
    }
}
