//! SMS login's wiring: the providers of `sms.providers`, the sender (with the global send
//! limit and the `sms.send` job) and the code store of the backend.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use surge_engine::clock::Clock;
use surge_engine::jobs::Jobs;
use surge_engine::ratelimit::{Quota, RateLimiter};
use surge_engine::sms::{SmsSender, SmsSettings, providers};

use crate::config::Settings;

pub fn sender(
    settings: &Settings,
    limiter: &Arc<dyn RateLimiter>,
    jobs: &Jobs,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Arc<SmsSender>> {
    let sms = &settings.sms;
    let timeout = Duration::from_millis(sms.timeout_ms.max(1));
    let providers =
        providers(&sms.providers, timeout).map_err(anyhow::Error::msg).context("sms.providers")?;
    let tuning = SmsSettings {
        send_limit: Quota::new(sms.send_limit.max(1), (sms.send_period_secs.max(1) * 1000) as i64),
        retry_base: Duration::from_millis(sms.retry_base_ms.max(1)),
        max_attempts: sms.max_attempts.max(1),
        timeout,
    };
    Ok(Arc::new(SmsSender::new(providers, limiter.clone(), jobs.clone(), tuning, clock.clone())))
}
