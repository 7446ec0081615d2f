//! The distributed backend's one clock: the Redis server's.
//!
//! Every decision about time — a bid window, anti-sniping, closing, idempotency and
//! rate-limit windows, a screening's start — is taken inside a script from the server's
//! `TIME` (see `now_us` in the Lua prelude), never from the replica that received the request:
//! replicas whose clocks drift apart still decide alike. [`ServerTime`] is a replica's
//! estimate of that clock, for what the replica shows (an auction's status) and schedules
//! (closing, stream trimming), so what any replica shows agrees with what the scripts decide.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Script;
use chrono::{DateTime, SubsecRound, Utc};
use tokio_util::sync::CancellationToken;

use super::scripts;
use super::shards::Shards;
use crate::EngineError;
use crate::clock::{AuthorityTime, Clock};

/// How often a replica measures its clock against the server's again: clocks drift by
/// milliseconds a minute at worst, and a stepped clock (NTP, an operator) is caught soon.
const CALIBRATION_PERIOD: Duration = Duration::from_secs(5);

/// Samples per calibration; the one with the shortest round trip is kept.
const SAMPLES: usize = 3;

static SERVER_TIME: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/server_time.lua")));

/// The script argument that tells a script what "now" is (read by `now_us` in the prelude):
/// the offset to add to the server's own time, or `@µs`, a fixed instant.
pub(crate) fn reading(time: AuthorityTime) -> String {
    match time {
        AuthorityTime::Offset(offset) => offset.num_microseconds().unwrap_or(0).to_string(),
        AuthorityTime::Fixed(instant) => format!("@{}", instant.timestamp_micros()),
    }
}

/// The Redis server's clock as this replica sees it: the replica's clock (`base`, with any
/// offset a test gave it) corrected by the difference measured to the server. Its error is at
/// most half a round trip, plus the drift since the last calibration.
pub struct ServerTime {
    base: Arc<dyn Clock>,
    /// Server time minus local time, in microseconds, as last measured.
    offset_micros: AtomicI64,
}

impl ServerTime {
    /// Measures the difference to the server once before anything is decided or shown.
    pub async fn calibrated(
        base: Arc<dyn Clock>,
        shards: &Shards,
    ) -> Result<Arc<Self>, EngineError> {
        let time = Arc::new(Self { base, offset_micros: AtomicI64::new(0) });
        time.calibrate(shards).await?;
        Ok(time)
    }

    /// The server's time minus this replica's, in microseconds, as last measured.
    pub fn offset_micros(&self) -> i64 {
        self.offset_micros.load(Ordering::Relaxed)
    }

    /// Measures the difference to the server (of shard 0: a Cluster's nodes are expected to
    /// keep NTP time among themselves; what must not matter is the replicas' clocks).
    pub async fn calibrate(&self, shards: &Shards) -> Result<(), EngineError> {
        let mut best: Option<(i64, i64)> = None;
        for _ in 0..SAMPLES {
            let asked = Utc::now();
            let invocation = SERVER_TIME.key(shards.keys.persisted(0));
            let server = scripts::call(&shards.conn, &invocation, |reply| {
                match (reply.word(), reply.int(1)) {
                    (Some("time"), Some(micros)) => Ok(micros),
                    _ => Err(reply.malformed("server_time")),
                }
            })
            .await?;
            let answered = Utc::now();
            let round_trip = (answered - asked).num_microseconds().unwrap_or(i64::MAX);
            let midpoint = asked.timestamp_micros() + round_trip / 2;
            if best.is_none_or(|(shortest, _)| round_trip < shortest) {
                best = Some((round_trip, server - midpoint));
            }
        }
        if let Some((_, offset)) = best {
            let previous = self.offset_micros.swap(offset, Ordering::Relaxed);
            if (offset - previous).abs() > 1_000_000 {
                tracing::warn!(
                    offset_ms = offset / 1000,
                    "this replica's clock is more than a second off the Redis server's; \
                     Surge follows the server's, but check NTP on this host"
                );
            }
        }
        Ok(())
    }

    /// Recalibrates every [`CALIBRATION_PERIOD`] until `stop` fires; a failed measurement
    /// keeps the last one.
    pub async fn keep_calibrated(self: Arc<Self>, shards: Shards, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(CALIBRATION_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.calibrate(&shards).await {
                tracing::debug!(error = %error, "cannot read the Redis server's clock; keeping the last offset");
            }
        }
    }
}

impl Clock for ServerTime {
    fn now(&self) -> DateTime<Utc> {
        (self.base.now() + chrono::Duration::microseconds(self.offset_micros())).trunc_subsecs(6)
    }

    /// The scripts read the server's clock themselves; only a test's deliberate offset (or
    /// frozen instant) is passed on.
    fn authority_time(&self) -> AuthorityTime {
        self.base.authority_time()
    }
}
