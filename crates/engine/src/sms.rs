//! SMS delivery for the login codes: providers tried in order (`log`, or an http(s) webhook),
//! each behind an error-rate switch that skips it for a while when most of its recent sends
//! failed; a global send limit that defers instead of dropping; and, when every provider fails,
//! retries as a durable job (`sms.send`) with jittered exponential backoff that survives a
//! restart. A message's `id` is fixed when the code is issued, so every provider and every
//! retry sends the same one and a provider can drop duplicates.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::EngineError;
use crate::clock::Clock;
use crate::jobs::{JobFailure, JobHandler, JobKind, Jobs};
use crate::ratelimit::{Decision, Quota, RateLimiter};

pub const SEND_JOB: &str = "sms.send";
/// The rate-limit key every replica's sends share.
const RATE_KEY: &str = "sms-send";

/// One message: what a provider receives (`id`, `to`, `code`, `text`), and when the code in it
/// stops working (a message for a dead code is not worth sending).
///
/// The job's payload holds the code in clear until the message is delivered (the stored code
/// is only a hash): a job row is worth nothing once the code has expired, ten minutes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    pub id: Uuid,
    pub to: String,
    pub code: String,
    pub text: String,
    pub expires_at: DateTime<Utc>,
}

/// A way to deliver a message.
#[async_trait]
pub trait SmsProvider: Send + Sync {
    /// Names the provider in logs and metrics (`log`, or the webhook's host and port).
    fn name(&self) -> &str;
    async fn send(&self, message: &SmsMessage) -> Result<(), String>;
}

/// Writes the message to the server log: the default, so a demo needs no provider.
pub struct LogProvider;

#[async_trait]
impl SmsProvider for LogProvider {
    fn name(&self) -> &str {
        "log"
    }

    async fn send(&self, message: &SmsMessage) -> Result<(), String> {
        tracing::info!(sms.id = %message.id, sms.to = %message.to, sms.text = %message.text, "SMS (log provider)");
        Ok(())
    }
}

/// POSTs `{"id", "to", "code", "text"}` as JSON to a URL; any 2xx is delivered.
pub struct WebhookProvider {
    name: String,
    url: String,
    client: reqwest::Client,
}

impl WebhookProvider {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!("`{url}` is not an http(s) URL"));
        }
        let client = crate::outbound::client(timeout)?;
        let name = format!(
            "{}:{}",
            parsed.host_str().unwrap_or_default(),
            parsed.port_or_known_default().unwrap_or_default()
        );
        Ok(Self { name, url: url.to_owned(), client })
    }
}

#[async_trait]
impl SmsProvider for WebhookProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &SmsMessage) -> Result<(), String> {
        let body = serde_json::json!({
            "id": message.id, "to": message.to, "code": message.code, "text": message.text,
        });
        let response =
            self.client.post(&self.url).json(&body).send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", response.status().as_u16()))
        }
    }
}

/// Builds the providers of `sms.providers` (comma-separated `log` or http(s) URLs).
pub fn providers(list: &str, timeout: Duration) -> Result<Vec<Arc<dyn SmsProvider>>, String> {
    let mut providers: Vec<Arc<dyn SmsProvider>> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        if entry == "log" {
            providers.push(Arc::new(LogProvider));
        } else {
            providers.push(Arc::new(WebhookProvider::new(entry, timeout)?));
        }
    }
    if providers.is_empty() {
        return Err("sms.providers names no provider (use `log`, or webhook URLs)".into());
    }
    Ok(providers)
}

/// The error-rate switch of one provider: over the sends of the last [`SWITCH_WINDOW`], once
/// there are at least [`SWITCH_MIN_SENDS`] and more than half failed, the provider is skipped
/// for [`SWITCH_OPEN`]; then it is tried again (and skipped again at once if it fails).
pub struct Switch {
    state: Mutex<SwitchState>,
}

#[derive(Default)]
struct SwitchState {
    recent: VecDeque<(DateTime<Utc>, bool)>,
    open_until: Option<DateTime<Utc>>,
    /// After a pause the next send decides alone: a failure skips the provider again.
    on_probation: bool,
}

pub const SWITCH_WINDOW: chrono::Duration = chrono::Duration::seconds(60);
pub const SWITCH_MIN_SENDS: usize = 4;
pub const SWITCH_OPEN: chrono::Duration = chrono::Duration::seconds(30);

impl Default for Switch {
    fn default() -> Self {
        Self { state: Mutex::new(SwitchState::default()) }
    }
}

impl Switch {
    /// True while the provider is being skipped.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.open_until.is_some_and(|until| now < until)
    }

    pub fn record(&self, now: DateTime<Utc>, delivered: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut state.on_probation) && !delivered {
            state.open_until = Some(now + SWITCH_OPEN);
            state.on_probation = true;
            return;
        }
        state.recent.push_back((now, delivered));
        while state.recent.front().is_some_and(|(at, _)| *at <= now - SWITCH_WINDOW) {
            state.recent.pop_front();
        }
        let failed = state.recent.iter().filter(|(_, ok)| !ok).count();
        if state.recent.len() >= SWITCH_MIN_SENDS && failed * 2 > state.recent.len() {
            state.open_until = Some(now + SWITCH_OPEN);
            state.recent.clear();
            state.on_probation = true;
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SmsSettings {
    /// Sends per `send_period` across every replica; more wait (as deferred jobs).
    pub send_limit: Quota,
    /// The job's first retry after a pass where every provider failed, doubled with jitter.
    pub retry_base: Duration,
    /// Passes over the providers before the message is dead, the first included.
    pub max_attempts: u32,
    /// One provider's timeout.
    pub timeout: Duration,
}

impl SmsSettings {
    pub fn send_job(&self, providers: usize) -> JobKind {
        JobKind {
            name: SEND_JOB,
            max_attempts: self.max_attempts.max(1),
            retry_base: self.retry_base,
            lease: self.timeout * providers.max(1) as u32 + Duration::from_secs(5),
        }
    }
}

/// Queues messages and delivers them (the `sms.send` job's work).
pub struct SmsSender {
    providers: Vec<(Arc<dyn SmsProvider>, Switch)>,
    limiter: Arc<dyn RateLimiter>,
    jobs: Jobs,
    settings: SmsSettings,
    clock: Arc<dyn Clock>,
}

impl SmsSender {
    pub fn new(
        providers: Vec<Arc<dyn SmsProvider>>,
        limiter: Arc<dyn RateLimiter>,
        jobs: Jobs,
        settings: SmsSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let providers = providers.into_iter().map(|p| (p, Switch::default())).collect();
        Self { providers, limiter, jobs, settings, clock }
    }

    pub fn job_kind(&self) -> JobKind {
        self.settings.send_job(self.providers.len())
    }

    /// Queues `message` for delivery (the job starts at once in this process); durable from
    /// here on.
    pub async fn queue(&self, message: &SmsMessage) -> Result<(), EngineError> {
        let payload = serde_json::to_string(message)
            .map_err(|e| EngineError::Internal(format!("cannot encode an SMS: {e}")))?;
        let key = message.id.to_string();
        self.jobs.enqueue(&self.job_kind(), Some(&key), payload, Duration::ZERO).await?;
        Ok(())
    }

    /// One pass over the providers, after a turn of the global send limit.
    pub async fn deliver(&self, message: &SmsMessage) -> Result<(), JobFailure> {
        let now = self.clock.now();
        if now >= message.expires_at {
            tracing::warn!(sms.id = %message.id, "the code expired before any provider took it");
            return Ok(());
        }
        let decision = self
            .limiter
            .acquire(self.settings.send_limit, RATE_KEY)
            .await
            .map_err(|e| JobFailure::Retry(e.to_string()))?;
        if let Decision::Denied { retry_after_ms } = decision {
            return Err(JobFailure::Later(Duration::from_millis(retry_after_ms.max(1) as u64)));
        }
        let mut failures = Vec::new();
        for (provider, switch) in &self.providers {
            let name = provider.name().to_owned();
            if switch.is_open(self.clock.now()) {
                metrics::counter!("surge_sms_skipped_total", "provider" => name.clone())
                    .increment(1);
                failures.push(format!("{name}: skipped (error rate)"));
                continue;
            }
            let outcome = provider.send(message).await;
            switch.record(self.clock.now(), outcome.is_ok());
            match outcome {
                Ok(()) => {
                    metrics::counter!("surge_sms_sent_total", "provider" => name).increment(1);
                    return Ok(());
                }
                Err(error) => {
                    metrics::counter!("surge_sms_failed_total", "provider" => name.clone())
                        .increment(1);
                    tracing::info!(sms.id = %message.id, provider = %name, error, "SMS provider failed");
                    failures.push(format!("{name}: {error}"));
                }
            }
        }
        Err(JobFailure::Retry(format!("every provider failed ({})", failures.join("; "))))
    }
}

/// The `sms.send` job: payload an [`SmsMessage`].
pub struct SendJob(pub Arc<SmsSender>);

#[async_trait]
impl JobHandler for SendJob {
    async fn run(&self, payload: &str) -> Result<(), JobFailure> {
        let message: SmsMessage = serde_json::from_str(payload)
            .map_err(|e| JobFailure::Permanent(format!("unreadable SMS payload: {e}")))?;
        self.0.deliver(&message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_provider_failing_most_of_its_recent_sends_is_skipped_for_a_while() {
        let switch = Switch::default();
        switch.record(at(0), true);
        switch.record(at(1), false);
        switch.record(at(2), false);
        assert!(!switch.is_open(at(2)), "too few sends to judge");
        switch.record(at(3), false);
        assert!(switch.is_open(at(3)));
        assert!(switch.is_open(at(32)));
        assert!(!switch.is_open(at(34)), "tried again after the pause");
        switch.record(at(34), false);
        assert!(switch.is_open(at(35)), "one failure after a pause is enough");
        assert!(!switch.is_open(at(65)));
        switch.record(at(65), true);
        switch.record(at(66), false);
        assert!(!switch.is_open(at(67)), "a success ends the probation");
    }

    #[test]
    fn old_failures_leave_the_window() {
        let switch = Switch::default();
        for second in 0..3 {
            switch.record(at(second), false);
        }
        switch.record(at(100), true);
        switch.record(at(101), false);
        switch.record(at(102), true);
        assert!(!switch.is_open(at(102)));
    }

    #[test]
    fn the_provider_list_accepts_log_and_web_urls_only() {
        let timeout = Duration::from_secs(1);
        let names: Vec<String> =
            providers("log, http://127.0.0.1:9000/sms,https://sms.test/x", timeout)
                .unwrap()
                .iter()
                .map(|p| p.name().to_owned())
                .collect();
        assert_eq!(names, ["log", "127.0.0.1:9000", "sms.test:443"]);
        assert!(providers("", timeout).is_err());
        assert!(providers("ftp://x", timeout).is_err());
        assert!(providers("carrier-pigeon", timeout).is_err());
    }
}
