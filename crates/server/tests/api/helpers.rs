//! Spawns one Surge per test (fresh data dir, port 0, a manual clock) and offers typed helpers
//! for its HTTP API, so the tests read as what a client does.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use surge::config::Settings;
use surge::startup::Application;
use surge_engine::clock::{Clock, ManualClock};
use tokio::sync::oneshot;

/// How long one ordinary request may take before a test gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a test waits for something the server does in the background
/// (an SSE event, the closer ending an auction).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The password every helper-made account uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// A Surge instance running inside the test's runtime.
pub struct TestApp {
    pub api: Api,
    /// The server's ports, for setting up what the API would make slowly (thousands of
    /// accounts without hashing a password each).
    pub state: surge_http::AppState,
    /// The clock the server reads; tests move it forward to end auctions or expire tokens.
    pub clock: Arc<ManualClock>,
    /// Kept so the database and images outlive the server.
    pub data_dir: tempfile::TempDir,
    /// The PostgreSQL database of a distributed-backend run.
    _database: Option<surge_testkit::ScratchDatabase>,
    /// Dropping the app stops the server through this.
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// The server's idea of now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }
}

impl TestApp {
    /// `count` accounts created straight in the store, each with a fresh access token: a
    /// signup hashes a password, far too slow for thousands of users.
    pub async fn quick_users(&self, count: usize) -> Vec<QuickUser> {
        let mut users = Vec::with_capacity(count);
        for _ in 0..count {
            let id = uuid::Uuid::now_v7();
            self.state
                .users
                .create(surge_store::accounts::NewUser {
                    id,
                    email: unique_email(),
                    password_hash: "$argon2id$not-a-password".into(),
                    nickname: unique_nickname(),
                    created_at: self.now(),
                })
                .await
                .expect("cannot create a user");
            users.push(QuickUser { id: id.to_string(), token: self.token_for(id, false) });
        }
        users
    }

    /// A fresh access token for `user_id` (an admin's when `admin`).
    pub fn token_for(&self, user_id: uuid::Uuid, admin: bool) -> String {
        let roles = if admin { vec!["admin".to_owned()] } else { Vec::new() };
        self.state.tokens.issue_access(user_id, None, roles)
    }
}

/// An account made by [`TestApp::quick_users`].
#[derive(Clone, Debug)]
pub struct QuickUser {
    pub id: String,
    pub token: String,
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Starts Surge with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts Surge after `configure` has adjusted the test settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::Builder::new()
        .prefix("surge-test-")
        .tempdir()
        .expect("could not create a data dir");
    let mut settings = Settings::for_tests(data_dir.path().to_path_buf());
    let database = TestBackend::from_env().prepare(&mut settings).await;
    configure(&mut settings);

    let clock = Arc::new(ManualClock::new());
    let server_clock: Arc<dyn Clock> = clock.clone();
    let application =
        Application::build_with_clock(settings, server_clock).await.expect("Surge failed to build");
    let port = application.port();
    let state = application.state().clone();

    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(application.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    TestApp {
        api: Api::new(format!("http://127.0.0.1:{port}")),
        state,
        clock,
        data_dir,
        _database: database,
        shutdown: Some(shutdown),
    }
}

/// The backend the API suite runs on, from `SURGE_TEST_BACKEND`: `embedded` (the default),
/// `redis` (PostgreSQL + one Redis node) or `redis-cluster` (PostgreSQL + a 3-master Redis
/// Cluster). `scripts/test.sh` runs the suite once per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Embedded,
    Redis,
    RedisCluster,
}

impl TestBackend {
    pub fn from_env() -> Self {
        match std::env::var("SURGE_TEST_BACKEND").as_deref() {
            Err(_) | Ok("" | "embedded") => TestBackend::Embedded,
            Ok("redis") => TestBackend::Redis,
            Ok("redis-cluster") => TestBackend::RedisCluster,
            Ok(other) => panic!("SURGE_TEST_BACKEND={other}: use embedded, redis or redis-cluster"),
        }
    }

    /// Points `settings` at this backend: for the distributed ones a fresh PostgreSQL database,
    /// a Redis key prefix of its own, a shared signing key and short leases.
    pub async fn prepare(self, settings: &mut Settings) -> Option<surge_testkit::ScratchDatabase> {
        let variable = match self {
            TestBackend::Embedded => return None,
            TestBackend::Redis => surge_testkit::REDIS_URL_VAR,
            TestBackend::RedisCluster => surge_testkit::REDIS_CLUSTER_URLS_VAR,
        };
        let database = surge_testkit::ScratchDatabase::create().await;
        settings.database_url = Some(database.url.clone());
        settings.redis_url = Some(surge_testkit::redis_urls(variable).join(","));
        settings.distributed.key_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        settings.distributed.shards = 4;
        settings.distributed.lease_ttl_ms = 1_000;
        let key = settings.data_dir.join("jwt.pem");
        surge_http::accounts::tokens::load_or_generate_signing_key(&key)
            .expect("cannot write a signing key");
        settings.jwt_signing_key_file = Some(key);
        Some(database)
    }
}

/// An account created through the API, with its current tokens.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub nickname: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestUser {
    fn from_token_response(body: &Value, password: &str) -> TestUser {
        TestUser {
            id: string(&body["user"]["id"]),
            email: string(&body["user"]["email"]),
            password: password.to_owned(),
            nickname: string(&body["user"]["nickname"]),
            access_token: string(&body["access_token"]),
            refresh_token: string(&body["refresh_token"]),
        }
    }
}

/// An e-mail address nobody else in the test run uses.
pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A nickname of 9 characters, unique enough for one test.
pub fn unique_nickname() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("u{}", &id[..8])
}

/// The HTTP side of a Surge instance: its address and a client. Cheap to clone into tasks.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:{port}`
    pub address: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(address: String) -> Api {
        surge_engine::outbound::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("could not build an HTTP client");
        Api { address, client }
    }

    /// A URL under the API base path `/api/v1`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.address)
    }

    /// A URL outside the API base path (`/healthz`, `/api/openapi.json`, …).
    pub fn root_url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `url` as returned by the server (absolute, or a path on this server) made absolute.
    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            self.root_url(url)
        }
    }

    /// Sends a request with the ordinary timeout; a transport error fails the test.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        request.timeout(REQUEST_TIMEOUT).send().await.expect("request to Surge failed")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> Response {
        self.send(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    /// GETs an API path that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        expect_json(self.get(path).await, 200).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn patch_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.send(self.client.patch(self.url(path)).bearer_auth(token).json(body)).await
    }

    // ---- accounts ----

    pub async fn signup_request(&self, body: &Value) -> Response {
        self.post_json("/auth/signup", None, body).await
    }

    /// Creates a fresh account with a unique e-mail.
    pub async fn signup(&self) -> TestUser {
        self.signup_user(&unique_email(), PASSWORD, &unique_nickname()).await
    }

    /// Creates an account with the given details; it must succeed.
    pub async fn signup_user(&self, email: &str, password: &str, nickname: &str) -> TestUser {
        let response = self
            .signup_request(&json!({"email": email, "password": password, "nickname": nickname}))
            .await;
        let body = expect_json(response, 201).await;
        TestUser::from_token_response(&body, password)
    }

    /// Creates `count` accounts, several at a time (password hashing is the slow part, and
    /// each hash takes memory, so not all at once).
    pub async fn signup_many(&self, count: usize) -> Vec<TestUser> {
        use futures_util::StreamExt;
        futures_util::stream::iter((0..count).map(|_| self.signup()))
            .buffer_unordered(8)
            .collect()
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json("/auth/login", None, &json!({"email": email, "password": password})).await
    }

    /// Logs `user` in again, for fresh tokens after the clock has jumped past their expiry.
    pub async fn login_again(&self, user: &TestUser) -> TestUser {
        let body = expect_json(self.login(&user.email, &user.password).await, 200).await;
        TestUser::from_token_response(&body, &user.password)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/refresh", None, &json!({"refresh_token": refresh_token})).await
    }

    pub async fn logout(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/logout", None, &json!({"refresh_token": refresh_token})).await
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.get_authed("/me", access_token).await
    }

    pub async fn patch_me(&self, access_token: &str, body: &Value) -> Response {
        self.patch_json("/me", access_token, body).await
    }

    // ---- auctions ----

    pub async fn create_auction_request(&self, token: &str, body: &Value) -> Response {
        self.post_json("/auctions", Some(token), body).await
    }

    /// Creates an auction that must be accepted; returns the auction JSON.
    pub async fn create_auction(&self, seller: &TestUser, body: Value) -> Value {
        let response = self.create_auction_request(&seller.access_token, &body).await;
        expect_json(response, 201).await
    }

    /// GET `/auctions/{id}`, which must answer 200.
    pub async fn auction(&self, id: &str) -> Value {
        self.get_json(&format!("/auctions/{id}")).await
    }

    /// GET `/auctions` with the given query parameters.
    pub async fn search(&self, params: &[(&str, &str)]) -> Response {
        self.get(&format!("/auctions{}", query_string(params))).await
    }

    /// GET `/auctions` that must answer 200; returns the page.
    pub async fn search_page(&self, params: &[(&str, &str)]) -> Value {
        expect_json(self.search(params).await, 200).await
    }

    /// Walks every page of a list endpoint and returns all items in the order seen.
    pub async fn walk_pages(&self, path: &str, params: &[(&str, &str)]) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut query: Vec<(&str, &str)> = params.to_vec();
            if let Some(cursor) = cursor.as_deref() {
                query.push(("cursor", cursor));
            }
            let page = self.get_json(&format!("{path}{}", query_string(&query))).await;
            items.extend(page["items"].as_array().expect("items is an array").clone());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => {
                    assert!(page["next_cursor"].is_null(), "bad next_cursor: {page}");
                    return items;
                }
            }
        }
        panic!("{path} never ran out of pages");
    }

    // ---- bids ----

    pub async fn bid(&self, bidder: &TestUser, auction_id: &str, amount: i64) -> Response {
        self.post_json(
            &format!("/auctions/{auction_id}/bids"),
            Some(&bidder.access_token),
            &json!({ "amount": amount }),
        )
        .await
    }

    pub async fn bid_with_key(
        &self,
        bidder: &TestUser,
        auction_id: &str,
        amount: i64,
        key: &str,
    ) -> Response {
        let request = self
            .client
            .post(self.url(&format!("/auctions/{auction_id}/bids")))
            .bearer_auth(&bidder.access_token)
            .header("idempotency-key", key)
            .json(&json!({ "amount": amount }));
        self.send(request).await
    }

    /// Places a bid that must be accepted; returns the 201 body.
    pub async fn place_bid(&self, bidder: &TestUser, auction_id: &str, amount: i64) -> Value {
        expect_json(self.bid(bidder, auction_id, amount).await, 201).await
    }

    /// Every bid of an auction, newest first, across all pages.
    pub async fn bid_history(&self, auction_id: &str) -> Vec<Value> {
        self.walk_pages(&format!("/auctions/{auction_id}/bids"), &[("limit", "100")]).await
    }

    // ---- images ----

    /// Uploads `bytes` as a raw body labelled `content_type`.
    pub async fn upload_image(&self, token: &str, bytes: Vec<u8>, content_type: &str) -> Response {
        let request = self
            .client
            .post(self.url("/images"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes);
        self.send(request).await
    }

    /// Uploads `bytes` as the multipart field `file`.
    pub async fn upload_multipart(
        &self,
        token: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Response {
        let boundary = format!("surge-{}", uuid::Uuid::new_v4().simple());
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .client
            .post(self.url("/images"))
            .bearer_auth(token)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        self.send(request).await
    }

    /// Uploads a PNG that must be accepted; returns its id.
    pub async fn upload_png(&self, user: &TestUser) -> String {
        let response = self.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;
        string(&expect_json(response, 201).await["id"])
    }

    // ---- live events ----

    /// Opens `/auctions/{id}/events` (plus `query`, e.g. `?after_seq=3`), optionally with a
    /// `Last-Event-ID` header. Returns as soon as the response head has arrived.
    pub async fn open_events(
        &self,
        auction_id: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Response {
        self.open_stream(&format!("/auctions/{auction_id}/events{query}"), None, last_event_id)
            .await
    }

    /// Opens any event stream at `path` (signed in with `token`, when given), optionally with
    /// a `Last-Event-ID` header. Returns as soon as the response head has arrived.
    pub async fn open_stream(
        &self,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Response {
        let mut request = self.client.get(self.url(path)).header("accept", "text/event-stream");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        tokio::time::timeout(REQUEST_TIMEOUT, request.send())
            .await
            .expect("the event stream did not answer in time")
            .expect("request to Surge failed")
    }

    /// Opens the event stream at `path`; it must answer 200 `text/event-stream`.
    pub async fn stream(
        &self,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> EventStream {
        EventStream::new(self.open_stream(path, token, last_event_id).await)
    }

    /// Opens the event stream of an auction; it must answer 200 `text/event-stream`.
    pub async fn events(
        &self,
        auction_id: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        EventStream::new(self.open_events(auction_id, query, last_event_id).await)
    }
}

// ---- responses ----

/// The value of a response header, or "" when it is missing.
pub fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Requires `status` and a JSON body; returns the body.
pub async fn expect_json(response: Response, status: u16) -> Value {
    let (actual, content_type, text) = read(response).await;
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "expected a JSON body, got content-type {content_type:?}: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Returns the status and the JSON body (or `Value::Null` when there is none).
pub async fn status_and_json(response: Response) -> (u16, Value) {
    let (status, _, text) = read(response).await;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
    };
    (status, body)
}

async fn read(response: Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let text = response.text().await.expect("could not read the body");
    (status, content_type, text)
}

/// Requires the error shape `{"error": {"code", "message"}}` with `status` and `code`;
/// returns the `error` object.
pub async fn expect_error(response: Response, status: u16, code: &str) -> Value {
    let error = expect_error_status(response, status).await;
    assert_eq!(error["code"], code, "unexpected error code: {error}");
    error
}

/// Like [`expect_error`] for any code.
pub async fn expect_error_status(response: Response, status: u16) -> Value {
    let body = expect_json(response, status).await;
    let error = body["error"].clone();
    assert!(
        error["code"].as_str().is_some_and(|code| !code.is_empty()),
        "error without a code: {body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|message| !message.is_empty()),
        "error without a message: {body}"
    );
    error
}

/// Requires a 422 whose `fields` name `field`.
pub async fn expect_field_error(response: Response, field: &str) -> Value {
    let error = expect_error(response, 422, "validation_failed").await;
    assert!(
        error["fields"][field].as_str().is_some_and(|message| !message.is_empty()),
        "expected fields.{field} in {error}"
    );
    error
}

/// Requires 429 `rate_limited` with an integer `Retry-After`; returns its seconds.
pub async fn expect_rate_limited(response: Response) -> u64 {
    let retry_after = header(&response, "retry-after");
    let seconds = retry_after
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("Retry-After is not integer seconds: {retry_after:?}"));
    expect_error(response, 429, "rate_limited").await;
    seconds
}

// ---- values ----

/// A JSON string, which must be there.
pub fn string(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("expected a string, got {value}")).to_owned()
}

/// A JSON integer, which must be there.
pub fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("expected an integer, got {value}"))
}

/// An RFC 3339 UTC time as Surge accepts it.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time from the API.
pub fn time(value: &Value) -> DateTime<Utc> {
    let text = string(value);
    DateTime::parse_from_rfc3339(&text)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}): {text}"))
        .with_timezone(&Utc)
}

/// Requires two times to be the same instant, give or take rounding to the second.
pub fn assert_same_instant(actual: DateTime<Utc>, expected: DateTime<Utc>) {
    let difference = (actual - expected).num_milliseconds().abs();
    assert!(difference < 1_000, "expected {expected}, got {actual} ({difference} ms apart)");
}

pub fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

pub fn seconds(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// `base` with the keys of `patch` set (a `null` in `patch` removes the key).
pub fn merged(mut base: Value, patch: Value) -> Value {
    let object = base.as_object_mut().expect("base is an object");
    for (key, value) in patch.as_object().expect("patch is an object") {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    base
}

/// A valid auction: live now, ends in an hour, starting price 1000, increment 100.
pub fn auction_body(now: DateTime<Utc>) -> Value {
    json!({
        "title": "Leica M6 with a 35mm Summicron",
        "description": "Film camera in working order, light meter checked.",
        "starting_price": 1000,
        "min_increment": 100,
        "ends_at": rfc3339(now + chrono::Duration::hours(1)),
    })
}

/// `?a=1&b=2`, percent-encoded, or "" without parameters.
pub fn query_string(params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let mut url = reqwest::Url::parse("http://surge.invalid/").expect("a valid URL");
    url.query_pairs_mut().extend_pairs(params);
    format!("?{}", url.query().unwrap_or_default())
}

/// The ids of a list of items.
pub fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|item| string(&item["id"])).collect()
}

// ---- images ----

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A 1×1 GIF.
pub const GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The start of a JFIF JPEG (SOI, APP0) and its end marker.
pub const JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xd9,
];

/// A 1×1 lossless WebP.
pub const WEBP: &[u8] = &[
    0x52, 0x49, 0x46, 0x46, 0x1a, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x4c,
    0x0d, 0x00, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe,
    0x07, 0x00,
];

// ---- server-sent events ----

/// One server-sent event; a heartbeat is an event with only comment lines.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
    pub comments: Vec<String>,
}

impl SseEvent {
    /// True for a block that carries only `:` comment lines.
    pub fn is_comment(&self) -> bool {
        self.event.is_none() && self.id.is_none() && self.data.is_empty()
    }

    /// The `data:` payload parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }

    /// The `id:` field as a sequence number.
    pub fn seq(&self) -> i64 {
        self.id
            .as_deref()
            .unwrap_or_else(|| panic!("event without an id: {self:?}"))
            .parse()
            .unwrap_or_else(|_| panic!("event id is not a number: {self:?}"))
    }
}

/// A `text/event-stream` response read event by event.
pub struct EventStream {
    response: Response,
    buffer: Vec<u8>,
}

impl EventStream {
    /// Wraps a response that must be 200 `text/event-stream`.
    pub fn new(response: Response) -> EventStream {
        assert_eq!(response.status().as_u16(), 200, "the event stream was refused");
        let content_type = header(&response, "content-type");
        assert!(
            content_type.starts_with("text/event-stream"),
            "unexpected content-type {content_type:?}"
        );
        EventStream { response, buffer: Vec::new() }
    }

    /// The next event (heartbeats included), or `None` once the server has ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.take_buffered() {
                return Some(event);
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => {
                    self.buffer.extend(chunk.iter().copied().filter(|&byte| byte != b'\r'))
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event named `name`, skipping heartbeats and other events.
    pub async fn next_named(&mut self, name: &str) -> SseEvent {
        let wait = async {
            loop {
                match self.next().await {
                    Some(event) if event.event.as_deref() == Some(name) => return event,
                    Some(_) => continue,
                    None => panic!("the event stream ended before a {name:?} event"),
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {name:?} event arrived in time"))
    }

    /// Requires the server to end the stream (after heartbeats at most) within `EVENT_TIMEOUT`.
    pub async fn expect_end(&mut self) {
        let wait = async {
            while let Some(event) = self.next().await {
                assert!(event.is_comment(), "expected the stream to end, got {event:?}");
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, wait).await.expect("the server did not end the stream");
    }

    fn take_buffered(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.windows(2).position(|pair| pair == b"\n\n")?;
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let block = String::from_utf8(block).expect("event stream is not UTF-8");
            if let Some(event) = parse_event(&block) {
                return Some(event);
            }
        }
    }
}

fn parse_event(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent::default();
    let mut data: Vec<&str> = Vec::new();
    let mut any = false;
    for line in block.lines().filter(|line| !line.is_empty()) {
        any = true;
        if let Some(comment) = line.strip_prefix(':') {
            event.comments.push(comment.trim().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.event = Some(value.to_owned()),
            "id" => event.id = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    event.data = data.join("\n");
    any.then_some(event)
}
