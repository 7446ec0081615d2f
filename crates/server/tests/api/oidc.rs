//! Sign-in through OpenID Connect against a small provider this test starts (discovery, JWKS,
//! authorize, token; Ed25519-signed ID tokens; single-use codes; PKCE checked): the whole flow
//! through redirects and cookies, the same subject finding the same account, linking by a
//! verified email only — and a forged state, a replayed code, a wrong nonce and a token signed
//! by another key all refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use openidconnect::core::{
    CoreEdDsaPrivateSigningKey, CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType, CoreSubjectIdentifierType,
    CoreTokenResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, Audience, AuthUrl, EmptyAdditionalClaims, EmptyAdditionalProviderMetadata,
    EmptyExtraTokenFields, EndUserEmail, EndUserUsername, IdTokenFields, IssuerUrl, JsonWebKeyId,
    JsonWebKeySetUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, PrivateSigningKey, ResponseTypes,
    StandardClaims, SubjectIdentifier, TokenUrl,
};
use serde_json::{Value, json};
use surge::config::OidcProviderSettings;

use crate::helpers::{TestApp, expect_error, expect_json, spawn_app_with};

const CLIENT_ID: &str = "surge";
const CLIENT_SECRET: &str = "s3cret";

/// Who the provider signs in, and how it misbehaves when told to.
#[derive(Clone)]
struct Behaviour {
    subject: String,
    email: String,
    email_verified: bool,
    /// Put this nonce in the ID token instead of the one asked for.
    wrong_nonce: bool,
    /// Sign with a key that is not in the JWKS.
    other_key: bool,
}

/// The nonce and PKCE challenge an authorization code was issued for.
type IssuedCode = (Option<String>, String);

#[derive(Clone)]
struct Provider {
    issuer: String,
    key: Arc<String>,
    other_key: Arc<String>,
    /// A code is taken out when used.
    codes: Arc<Mutex<HashMap<String, IssuedCode>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

/// An Ed25519 key as PKCS#8 PEM (the format Surge's own signing key uses).
fn ed25519_pem(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    surge_http::accounts::tokens::load_or_generate_signing_key(&path).unwrap();
    std::fs::read_to_string(path).unwrap()
}

fn signing_key(pem: &str) -> CoreEdDsaPrivateSigningKey {
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(pem, Some(JsonWebKeyId::new("k1".into()))).unwrap()
}

async fn discovery(State(op): State<Provider>) -> Response {
    let metadata = CoreProviderMetadata::new(
        IssuerUrl::new(op.issuer.clone()).unwrap(),
        AuthUrl::new(format!("{}/authorize", op.issuer)).unwrap(),
        JsonWebKeySetUrl::new(format!("{}/jwks", op.issuer)).unwrap(),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::EdDsa],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(TokenUrl::new(format!("{}/token", op.issuer)).unwrap()));
    axum::Json(metadata).into_response()
}

async fn jwks(State(op): State<Provider>) -> Response {
    axum::Json(CoreJsonWebKeySet::new(vec![signing_key(&op.key).as_verification_key()]))
        .into_response()
}

async fn authorize(
    State(op): State<Provider>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256", "PKCE is asked for");
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let pending = (q.get("nonce").cloned(), q["code_challenge"].clone());
    op.codes.lock().unwrap().insert(code.clone(), pending);
    Redirect::to(&format!("{}?code={code}&state={}", q["redirect_uri"], q["state"])).into_response()
}

async fn token(State(op): State<Provider>, headers: HeaderMap, body: String) -> Response {
    use base64::Engine as _;
    let form: HashMap<String, String> = reqwest::Url::parse(&format!("http://form/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let refused = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        != Some(&format!("Basic {basic}"))
    {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})))
            .into_response();
    }
    // Single use: a replayed code is unknown.
    let Some((nonce, challenge)) = op.codes.lock().unwrap().remove(&form["code"]) else {
        return refused("unknown or used code");
    };
    let verifier = PkceCodeVerifier::new(form["code_verifier"].clone());
    if PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() != challenge {
        return refused("PKCE verifier does not match");
    }
    let behaviour = op.behaviour.lock().unwrap().clone();
    let access = AccessToken::new("access-1".into());
    let standard = StandardClaims::new(SubjectIdentifier::new(behaviour.subject.clone()))
        .set_email(Some(EndUserEmail::new(behaviour.email.clone())))
        .set_email_verified(Some(behaviour.email_verified))
        .set_preferred_username(Some(EndUserUsername::new("oidcuser".into())));
    let nonce = if behaviour.wrong_nonce { Some("not-the-nonce".into()) } else { nonce };
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(op.issuer.clone()).unwrap(),
        vec![Audience::new(CLIENT_ID.into())],
        Utc::now() + Duration::minutes(5),
        Utc::now(),
        standard,
        EmptyAdditionalClaims {},
    )
    .set_nonce(nonce.map(Nonce::new));
    let key = signing_key(if behaviour.other_key { &op.other_key } else { &op.key });
    let id_token =
        CoreIdToken::new(claims, &key, CoreJwsSigningAlgorithm::EdDsa, Some(&access), None)
            .unwrap();
    let response = CoreTokenResponse::new(
        access,
        CoreTokenType::Bearer,
        IdTokenFields::new(Some(id_token), EmptyExtraTokenFields {}),
    );
    axum::Json(response).into_response()
}

impl Provider {
    async fn start(dir: &std::path::Path) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = Provider {
            issuer: format!("http://{}", listener.local_addr().unwrap()),
            key: Arc::new(ed25519_pem(dir, "provider.pem")),
            other_key: Arc::new(ed25519_pem(dir, "forger.pem")),
            codes: Arc::default(),
            behaviour: Arc::new(Mutex::new(Behaviour {
                subject: "subject-1".into(),
                email: "oidc-user@example.com".into(),
                email_verified: true,
                wrong_nonce: false,
                other_key: false,
            })),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        provider
    }

    fn behave(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.behaviour.lock().unwrap());
    }
}

async fn app_with(provider: &Provider) -> TestApp {
    let issuer = provider.issuer.clone();
    spawn_app_with(move |settings| {
        settings.auth.oidc.insert(
            "test".into(),
            OidcProviderSettings {
                issuer,
                client_id: CLIENT_ID.into(),
                client_secret: Some(CLIENT_SECRET.into()),
                scopes: "email profile".into(),
            },
        );
    })
    .await
}

/// A client that shows every redirect instead of following it.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[header::LOCATION].to_str().unwrap().to_owned()
}

/// The `name=value` of the cookie `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// A sign-in up to the provider's answer: the callback URL and the pending-sign-in cookie.
async fn to_callback(app: &TestApp) -> (String, String) {
    let http = browser();
    let start =
        http.get(app.url("/auth/oidc/test/start?redirect=/%23/social")).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let pending = set_cookie(&start, "surge_oidc").expect("the pending sign-in cookie");
    let at_provider = http.get(location(&start)).send().await.unwrap();
    assert_eq!(at_provider.status(), 303, "the provider sends the browser back");
    (location(&at_provider), pending)
}

async fn finish(callback: &str, pending: &str) -> reqwest::Response {
    browser().get(callback).header(header::COOKIE, pending).send().await.unwrap()
}

async fn me(app: &TestApp, session: &str) -> Value {
    let response = browser().get(app.url("/me")).header(header::COOKIE, session).send().await;
    expect_json(response.unwrap(), 200).await
}

#[tokio::test]
async fn a_sign_in_makes_an_account_and_the_same_subject_finds_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Provider::start(dir.path()).await;
    let app = app_with(&provider).await;

    let (callback, pending) = to_callback(&app).await;
    assert!(callback.starts_with(&app.url("/auth/oidc/test/callback?")), "{callback}");
    let done = finish(&callback, &pending).await;
    assert_eq!(done.status(), 302);
    assert_eq!(location(&done), "/#/social", "back where the sign-in started");
    let session = set_cookie(&done, "surge_session").expect("the session cookie");
    let cleared = set_cookie(&done, "surge_oidc").unwrap();
    assert_eq!(cleared, "surge_oidc=", "the pending sign-in is over");
    let first = me(&app, &session).await;
    assert_eq!(first["email"], "oidc-user@example.com");
    assert_eq!(first["nickname"], "oidcuser");

    let (callback, pending) = to_callback(&app).await;
    let again = finish(&callback, &pending).await;
    let second = me(&app, &set_cookie(&again, "surge_session").unwrap()).await;
    assert_eq!(second["id"], first["id"], "the same subject, the same account");
}

#[tokio::test]
async fn an_existing_account_is_linked_by_a_verified_email_only() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Provider::start(dir.path()).await;
    let app = app_with(&provider).await;
    let existing = app.signup().await;

    provider.behave(|b| {
        b.subject = "subject-unverified".into();
        b.email = existing.email.clone();
        b.email_verified = false;
    });
    let (callback, pending) = to_callback(&app).await;
    let unverified =
        me(&app, &set_cookie(&finish(&callback, &pending).await, "surge_session").unwrap()).await;
    assert_ne!(unverified["id"], existing.id.as_str(), "an unverified email links nothing");
    assert!(unverified["email"].is_null(), "nor is it taken for the new account");

    provider.behave(|b| {
        b.subject = "subject-verified".into();
        b.email_verified = true;
    });
    let (callback, pending) = to_callback(&app).await;
    let linked =
        me(&app, &set_cookie(&finish(&callback, &pending).await, "surge_session").unwrap()).await;
    assert_eq!(linked["id"], existing.id.as_str(), "a verified email finds the account");
}

#[tokio::test]
async fn a_forged_state_a_replayed_code_a_wrong_nonce_and_a_foreign_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Provider::start(dir.path()).await;
    let app = app_with(&provider).await;

    // A forged state, or no pending sign-in at all.
    let (callback, pending) = to_callback(&app).await;
    let forged = callback.replace("state=", "state=x");
    expect_error(finish(&forged, &pending).await, 400, "state_mismatch").await;
    expect_error(finish(&callback, "surge_oidc=nothing.here").await, 400, "state_mismatch").await;
    let tampered = pending.replacen('.', "x.", 1);
    expect_error(finish(&callback, &tampered).await, 400, "state_mismatch").await;

    // The code works once.
    assert_eq!(finish(&callback, &pending).await.status(), 302);
    expect_error(finish(&callback, &pending).await, 401, "oidc_failed").await;

    // An ID token for another sign-in.
    provider.behave(|b| b.wrong_nonce = true);
    let (callback, pending) = to_callback(&app).await;
    expect_error(finish(&callback, &pending).await, 400, "nonce_mismatch").await;

    // An ID token signed by a key the provider does not publish.
    provider.behave(|b| {
        b.wrong_nonce = false;
        b.other_key = true;
    });
    let (callback, pending) = to_callback(&app).await;
    expect_error(finish(&callback, &pending).await, 401, "oidc_failed").await;
}

#[tokio::test]
async fn an_unknown_provider_is_404_and_a_foreign_redirect_is_422() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Provider::start(dir.path()).await;
    let app = app_with(&provider).await;
    let unknown = browser().get(app.url("/auth/oidc/nope/start")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    for bad in ["//evil.example/", "https://evil.example/"] {
        let path = format!("/auth/oidc/test/start?redirect={}", urlencode(bad));
        let refused = browser().get(app.url(&path)).send().await.unwrap();
        assert_eq!(refused.status(), 422, "{bad}");
    }
}

fn urlencode(text: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().append_pair("v", text);
    url.query().unwrap().trim_start_matches("v=").to_owned()
}
