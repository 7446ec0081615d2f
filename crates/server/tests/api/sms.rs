//! SMS-code login on every backend: codes asked for and used, re-asked too soon, killed by
//! wrong tries, used once, expired (the clock moved, never slept); delivery through webhook
//! providers that fail, hang and recover, the error-rate switch, and the global send limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::helpers::{
    EVENT_TIMEOUT, TestApp, expect_error, expect_field_error, expect_json, expect_rate_limited,
    seconds, spawn_app_with,
};

/// How a [`Webhook`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Deliver,
    Fail,
    Hang,
}

#[derive(Default)]
struct Recorded {
    behaviour: Option<Behaviour>,
    /// Every request received, in order.
    received: Vec<Value>,
    /// The messages answered 2xx.
    delivered: Vec<Value>,
}

/// An SMS provider's webhook, started by the test: records what it receives.
pub struct Webhook {
    addr: SocketAddr,
    state: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    pub async fn start(behaviour: Behaviour) -> Webhook {
        let state =
            Arc::new(Mutex::new(Recorded { behaviour: Some(behaviour), ..Default::default() }));
        let app = axum::Router::new().route("/sms", post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Webhook { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = Some(behaviour);
    }

    pub fn received(&self) -> Vec<Value> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn delivered(&self) -> Vec<Value> {
        self.state.lock().unwrap().delivered.clone()
    }

    /// Waits until `count` messages were delivered here.
    pub async fn until_delivered(&self, count: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                started.elapsed() < EVENT_TIMEOUT * 3,
                "{} of {count} delivered",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The code of the last message delivered to `phone`, waiting for it.
    pub async fn code_for(&self, phone: &str, nth: usize) -> String {
        let started = Instant::now();
        loop {
            let mine: Vec<Value> =
                self.delivered().into_iter().filter(|m| m["to"] == phone).collect();
            if mine.len() >= nth {
                return mine[nth - 1]["code"].as_str().unwrap().to_owned();
            }
            assert!(started.elapsed() < EVENT_TIMEOUT * 3, "no SMS for {phone}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(state): State<Arc<Mutex<Recorded>>>, body: axum::body::Bytes) -> StatusCode {
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let behaviour = {
        let mut recorded = state.lock().unwrap();
        recorded.received.push(message.clone());
        recorded.behaviour.unwrap_or(Behaviour::Deliver)
    };
    match behaviour {
        Behaviour::Deliver => {
            state.lock().unwrap().delivered.push(message);
            StatusCode::NO_CONTENT
        }
        Behaviour::Fail => StatusCode::SERVICE_UNAVAILABLE,
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::NO_CONTENT
        }
    }
}

/// A phone number nobody else in the run uses.
pub fn unique_phone() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 10_000_000_000;
    format!("+8210{n:010}")[..14].to_owned()
}

async fn sms_app(providers: &[&Webhook]) -> TestApp {
    let list: Vec<String> = providers.iter().map(|p| p.url()).collect();
    spawn_app_with(move |settings| {
        settings.sms.providers = list.join(",");
        settings.sms.timeout_ms = 300;
        settings.sms.retry_base_ms = 100;
        settings.sms.max_attempts = 50;
        settings.sms.send_limit = 1000;
    })
    .await
}

async fn ask(app: &TestApp, phone: &str) -> reqwest::Response {
    app.post_json("/auth/sms/code", None, &json!({ "phone": phone })).await
}

async fn log_in(app: &TestApp, phone: &str, code: &str) -> reqwest::Response {
    app.post_json("/auth/sms/login", None, &json!({ "phone": phone, "code": code })).await
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test]
async fn a_code_logs_in_and_the_first_login_makes_the_account() {
    let provider = Webhook::start(Behaviour::Deliver).await;
    let app = sms_app(&[&provider]).await;
    let phone = unique_phone();
    let sent = expect_json(ask(&app, &phone).await, 202).await;
    assert_eq!(sent, json!({ "expires_in": 600, "resend_after": 60 }));
    let message = &provider.until_delivered(1).await[0];
    assert_eq!(message["to"], phone.as_str());
    let code = message["code"].as_str().unwrap();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    assert!(message["text"].as_str().unwrap().contains(code));
    assert!(uuid::Uuid::parse_str(message["id"].as_str().unwrap()).is_ok());

    let session = expect_json(log_in(&app, &phone, code).await, 200).await;
    assert_eq!(session["user"]["phone"], phone.as_str());
    let token = session["access_token"].as_str().unwrap();
    let me = expect_json(app.me(token).await, 200).await;
    assert_eq!(me["id"], session["user"]["id"]);

    app.advance(seconds(61));
    expect_json(ask(&app, &phone).await, 202).await;
    let again = provider.code_for(&phone, 2).await;
    let second = expect_json(log_in(&app, &phone, &again).await, 200).await;
    assert_eq!(second["user"]["id"], session["user"]["id"], "the same account");
}

#[tokio::test]
async fn a_second_code_within_a_minute_is_429_with_retry_after() {
    let provider = Webhook::start(Behaviour::Deliver).await;
    let app = sms_app(&[&provider]).await;
    let phone = unique_phone();
    expect_json(ask(&app, &phone).await, 202).await;
    app.advance(seconds(20));
    let wait = expect_rate_limited(ask(&app, &phone).await).await;
    assert!((39..=41).contains(&wait), "Retry-After {wait}");
    app.advance(seconds(41));
    expect_json(ask(&app, &phone).await, 202).await;
    expect_json(ask(&app, &unique_phone()).await, 202).await;
}

#[tokio::test]
async fn three_wrong_tries_kill_the_code() {
    let provider = Webhook::start(Behaviour::Deliver).await;
    let app = sms_app(&[&provider]).await;
    let phone = unique_phone();
    expect_json(ask(&app, &phone).await, 202).await;
    let code = provider.code_for(&phone, 1).await;
    for _ in 0..3 {
        expect_error(log_in(&app, &phone, &other_than(&code)).await, 401, "invalid_code").await;
    }
    let wait = expect_rate_limited(log_in(&app, &phone, &code).await).await;
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    app.advance(seconds(61));
    expect_json(ask(&app, &phone).await, 202).await;
    let fresh = provider.code_for(&phone, 2).await;
    expect_json(log_in(&app, &phone, &fresh).await, 200).await;
}

#[tokio::test]
async fn a_used_code_never_works_again_and_an_expired_one_never_works() {
    let provider = Webhook::start(Behaviour::Deliver).await;
    let app = sms_app(&[&provider]).await;
    let phone = unique_phone();
    expect_json(ask(&app, &phone).await, 202).await;
    let code = provider.code_for(&phone, 1).await;
    expect_json(log_in(&app, &phone, &code).await, 200).await;
    expect_error(log_in(&app, &phone, &code).await, 401, "invalid_code").await;

    app.advance(seconds(61));
    expect_json(ask(&app, &phone).await, 202).await;
    let late = provider.code_for(&phone, 2).await;
    app.advance(seconds(601));
    expect_error(log_in(&app, &phone, &late).await, 401, "invalid_code").await;
    expect_error(log_in(&app, &unique_phone(), "123456").await, 401, "invalid_code").await;
}

#[tokio::test]
async fn bad_phones_and_codes_are_422() {
    let provider = Webhook::start(Behaviour::Deliver).await;
    let app = sms_app(&[&provider]).await;
    for phone in ["01012345678", "+0101234567", "+12", "+1 415 555 0123", "phone"] {
        expect_field_error(ask(&app, phone).await, "phone").await;
    }
    expect_field_error(log_in(&app, "+821012345678", "12345").await, "code").await;
    expect_field_error(log_in(&app, "+821012345678", "abcdef").await, "code").await;
    assert!(provider.received().is_empty());
}

#[tokio::test]
async fn a_failing_or_hanging_provider_falls_through_to_the_next_with_the_same_id() {
    let (first, second) =
        (Webhook::start(Behaviour::Fail).await, Webhook::start(Behaviour::Deliver).await);
    let app = sms_app(&[&first, &second]).await;
    let phone = unique_phone();
    expect_json(ask(&app, &phone).await, 202).await;
    let delivered = second.until_delivered(1).await;
    assert_eq!(first.received()[0]["id"], delivered[0]["id"], "one id on every provider");

    first.set(Behaviour::Hang);
    let started = Instant::now();
    expect_json(ask(&app, &unique_phone()).await, 202).await;
    second.until_delivered(2).await;
    assert!(started.elapsed() < Duration::from_secs(5), "the hanging provider timed out");
}

#[tokio::test]
async fn when_every_provider_fails_the_sms_is_retried_until_one_recovers() {
    let (first, second) =
        (Webhook::start(Behaviour::Fail).await, Webhook::start(Behaviour::Fail).await);
    let app = sms_app(&[&first, &second]).await;
    let phone = unique_phone();
    expect_json(ask(&app, &phone).await, 202).await;
    let started = Instant::now();
    while first.received().len() < 3 {
        assert!(started.elapsed() < EVENT_TIMEOUT * 2, "no retries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.set(Behaviour::Deliver);
    let delivered = second.until_delivered(1).await;
    let ids: std::collections::HashSet<Value> =
        first.received().iter().chain(second.received().iter()).map(|m| m["id"].clone()).collect();
    assert_eq!(ids.len(), 1, "the same id on every provider and every retry");
    let code = delivered[0]["code"].as_str().unwrap().to_owned();
    expect_json(log_in(&app, &phone, &code).await, 200).await;
}

#[tokio::test]
async fn a_provider_failing_most_sends_is_skipped_for_a_while() {
    let (flaky, steady) =
        (Webhook::start(Behaviour::Fail).await, Webhook::start(Behaviour::Deliver).await);
    let app = sms_app(&[&flaky, &steady]).await;
    for n in 1..=8 {
        expect_json(ask(&app, &unique_phone()).await, 202).await;
        steady.until_delivered(n).await;
    }
    assert_eq!(flaky.received().len(), 4, "skipped once four of its sends had failed");
    let metrics = app.send(app.client.get(app.root_url("/metrics"))).await.text().await.unwrap();
    assert!(metrics.contains("surge_sms_skipped_total"), "{metrics}");
    assert!(metrics.contains("surge_sms_sent_total"));
}

#[tokio::test]
async fn the_send_limit_makes_sms_wait_their_turn_instead_of_dropping_them() {
    let provider = Webhook::start(Behaviour::Deliver).await;
    let url = provider.url();
    let app = spawn_app_with(move |settings| {
        settings.sms.providers = url;
        settings.sms.send_limit = 2;
        settings.sms.send_period_secs = 2;
    })
    .await;
    let started = Instant::now();
    let mut phones = HashMap::new();
    for _ in 0..5 {
        let phone = unique_phone();
        expect_json(ask(&app, &phone).await, 202).await;
        phones.insert(phone, ());
    }
    let delivered = provider.until_delivered(5).await;
    assert!(started.elapsed() >= Duration::from_millis(2500), "{:?}", started.elapsed());
    let to: std::collections::HashSet<&str> =
        delivered.iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(to.len(), 5, "none dropped, none twice");
}
