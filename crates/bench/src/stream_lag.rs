//! How far PostgreSQL trails Redis in a distributed deployment, read from the shard streams.
//!
//! With `SURGE_REDIS_URL` set, a bid is answered 201 once Redis holds it: the auction's hot state
//! and an entry in its shard's stream `<prefix>:{s<shard>}:events`. Each shard's persister then
//! applies the stream to PostgreSQL through the consumer group `persisters`. The group's `lag`
//! (entries not yet read) plus `pending` (read, not yet acknowledged) is what PostgreSQL still
//! lacks, so the time until that is zero on every shard after a storm says how long the
//! durable copy trails the answers the clients got.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use redis::{ConnectionAddr, IntoConnectionInfo};
use serde::Serialize;
use surge_engine::redis::persister::{StreamLag, stream_lag};
use surge_engine::redis::{KeySpace, RedisConnection};
/// Pause between readings while waiting for the lag to reach zero.
pub const POLL: Duration = Duration::from_millis(20);
/// Pause between readings during the storm, coarser: there they compete with the bids for Redis.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// How long after the storm the bench waits for the lag to reach zero.
pub const GIVE_UP: Duration = Duration::from_secs(10);
/// Longest a connection attempt or one reading of every shard may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Options that point the bench at the Redis of a distributed deployment.
#[derive(Args, Clone, Debug)]
pub struct StreamLagArgs {
    /// Redis of the deployment behind --url (its SURGE_REDIS_URL; several comma-separated URLs
    /// = Redis Cluster). After the storm the bench measures how long the shard streams take to
    /// drain into PostgreSQL, and re-checks the invariants once they have.
    #[arg(
        long,
        value_name = "URL",
        requires = "key_prefix",
        help_heading = "Distributed deployment"
    )]
    redis_url: Option<String>,
    /// The deployment's key prefix (SURGE_DISTRIBUTED__KEY_PREFIX).
    #[arg(
        long,
        value_name = "PREFIX",
        requires = "redis_url",
        help_heading = "Distributed deployment"
    )]
    key_prefix: Option<String>,
    /// The deployment's shard count (SURGE_DISTRIBUTED__SHARDS).
    #[arg(
        long,
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=4096),
        help_heading = "Distributed deployment"
    )]
    shards: u16,
}

impl StreamLagArgs {
    /// Whether the lag is to be measured.
    pub fn enabled(&self) -> bool {
        self.redis_url.is_some()
    }

    /// Connects the probe, when asked for; done before the storm so a wrong URL fails fast.
    pub async fn connect(&self) -> Result<Option<LagProbe>> {
        let (Some(urls), Some(prefix)) = (&self.redis_url, &self.key_prefix) else {
            return Ok(None);
        };
        LagProbe::connect(urls, prefix, self.shards).await.map(Some)
    }
}

/// Reads the persisters' lag over every shard stream of one deployment.
pub struct LagProbe {
    conn: RedisConnection,
    streams: Vec<String>,
}

impl LagProbe {
    /// Connects to `urls` (one node, or several Cluster nodes), loopback only like the rest of
    /// the bench, and takes a first reading so a wrong prefix fails before the storm.
    async fn connect(urls: &str, prefix: &str, shards: u16) -> Result<Self> {
        let urls: Vec<&str> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        for url in &urls {
            require_loopback(url)?;
        }
        if urls.is_empty() {
            bail!("--redis-url is empty");
        }
        let urls: Vec<String> = urls.iter().map(|url| url.to_string()).collect();
        let conn = RedisConnection::connect(&urls).await.context("connecting to Redis")?;
        let keys = KeySpace::new(prefix, shards);
        let streams = (0..shards).map(|shard| keys.events(shard)).collect();
        let mut probe = Self { conn, streams };
        tokio::time::timeout(REDIS_TIMEOUT, probe.read())
            .await
            .context("reading the shard streams timed out")?
            .context("reading the shard streams")?;
        Ok(probe)
    }

    /// Entries PostgreSQL still lacks over all shards; `None` while some shard's lag cannot be
    /// told (its stream has no `persisters` group yet, or Redis reports the lag as unknown).
    /// Fails when no shard stream exists at all: a running deployment creates them at start,
    /// so the prefix or the URL must be wrong, and "zero" would be a lie.
    pub async fn read(&mut self) -> Result<Option<u64>> {
        let mut total = 0;
        let mut found = 0;
        for stream in &self.streams {
            match stream_lag(&self.conn, stream).await {
                // No stream: no event of this shard was ever written, nothing to persist.
                Ok(StreamLag::NoStream) => continue,
                Ok(StreamLag::Entries(entries)) => total += entries,
                Ok(StreamLag::Unknown) => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("XINFO GROUPS {stream}")),
            }
            found += 1;
        }
        if found == 0 {
            bail!(
                "none of the {} shard streams exists ({} …): wrong --key-prefix, --shards or \
                 --redis-url?",
                self.streams.len(),
                self.streams[0]
            );
        }
        Ok(Some(total))
    }

    /// Reads the lag every [`WATCH_EVERY`] from `from` to `until` (the measured storm) and
    /// returns the highest reading; `None` if no reading succeeded. Failed readings are skipped:
    /// the wait after the storm reports errors.
    pub async fn watch(&mut self, from: Instant, until: Instant) -> Option<u64> {
        tokio::time::sleep_until(from.into()).await;
        let mut max = None;
        while Instant::now() < until {
            if let Ok(Ok(Some(entries))) = tokio::time::timeout(REDIS_TIMEOUT, self.read()).await {
                max = max.max(Some(entries));
            }
            tokio::time::sleep(WATCH_EVERY.min(until.saturating_duration_since(Instant::now())))
                .await;
        }
        max
    }

    /// Polls every [`POLL`] from `since` (the end of the storm) until the lag is zero on every
    /// shard, giving up [`GIVE_UP`] after `since`. A failed reading counts as not zero.
    pub async fn wait_for_zero(&mut self, since: Instant) -> Drain {
        let mut drain = Drain {
            shards: self.streams.len(),
            poll_ms: POLL.as_secs_f64() * 1000.0,
            give_up_ms: GIVE_UP.as_secs_f64() * 1000.0,
            ..Drain::default()
        };
        loop {
            let reading = tokio::time::timeout(REDIS_TIMEOUT, self.read()).await;
            let read_at = Instant::now();
            drain.readings += 1;
            let entries = match reading {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    drain.first_error.get_or_insert_with(|| format!("{e:#}"));
                    None
                }
                Err(_) => {
                    drain.first_error.get_or_insert_with(|| "a reading timed out".to_owned());
                    None
                }
            };
            if drain.readings == 1 {
                drain.at_storm_end = entries;
            }
            drain.last = entries;
            if entries == Some(0) {
                drain.zero_after_ms = Some(read_at.duration_since(since).as_secs_f64() * 1000.0);
                return drain;
            }
            if read_at.duration_since(since) + POLL > GIVE_UP {
                return drain;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Refuses Redis URLs that are not on this machine: the bench only ever measures loopback.
fn require_loopback(url: &str) -> Result<()> {
    let info = url.into_connection_info().with_context(|| format!("bad Redis URL {url}"))?;
    match info.addr() {
        ConnectionAddr::Tcp(host, _) => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback =
                bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                bail!("surge-bench only targets loopback addresses, not Redis at {host}");
            }
            Ok(())
        }
        ConnectionAddr::Unix(_) => Ok(()),
        other => bail!("unsupported Redis address {other:?} (use redis://127.0.0.1:PORT)"),
    }
}

/// What the wait for the lag to reach zero saw; printed and part of `--json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Drain {
    /// Shard streams read.
    pub shards: usize,
    /// Pause between readings.
    pub poll_ms: f64,
    /// How long after the storm the bench would wait.
    pub give_up_ms: f64,
    /// Highest reading during the measured storm (read every 100 ms); `None` if none succeeded.
    pub max_during_storm: Option<u64>,
    /// Unpersisted entries at the first reading, right after the storm; `None` if unknown.
    pub at_storm_end: Option<u64>,
    /// Milliseconds from the end of the storm to the reading that found zero on every shard;
    /// `None` if that did not happen within `give_up_ms`.
    pub zero_after_ms: Option<f64>,
    /// Unpersisted entries at the last reading.
    pub last: Option<u64>,
    /// Readings taken.
    pub readings: u32,
    /// The first failed reading, if any.
    pub first_error: Option<String>,
}

impl Drain {
    /// One line for the markdown report.
    pub fn summary(&self) -> String {
        let count = |n: Option<u64>| n.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        let outcome = match self.zero_after_ms {
            Some(ms) => format!("back to zero within {ms:.0} ms"),
            None => format!(
                "not back to zero after {:.0} s (last reading: {})",
                self.give_up_ms / 1000.0,
                count(self.last)
            ),
        };
        let mut line = format!(
            "stream lag ({} shards): at most {} entries unpersisted during the storm (read every \
             {} ms), {} when it ended, {outcome} (read every {:.0} ms)",
            self.shards,
            count(self.max_during_storm),
            WATCH_EVERY.as_millis(),
            count(self.at_storm_end),
            self.poll_ms
        );
        if let Some(e) = &self.first_error {
            line.push_str(&format!("; a reading failed: {e}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_redis_is_accepted() {
        assert!(require_loopback("redis://127.0.0.1:6379").is_ok());
        assert!(require_loopback("redis://localhost:6379/0").is_ok());
        assert!(require_loopback("redis://10.1.2.3:6379").is_err());
        assert!(require_loopback("redis://cache.example.com:6379").is_err());
    }

    #[test]
    fn the_summary_says_when_the_lag_reached_zero() {
        let drain = Drain {
            shards: 16,
            poll_ms: 20.0,
            give_up_ms: 10_000.0,
            max_during_storm: Some(4321),
            at_storm_end: Some(1234),
            zero_after_ms: Some(85.4),
            last: Some(0),
            readings: 5,
            first_error: None,
        };
        assert_eq!(
            drain.summary(),
            "stream lag (16 shards): at most 4321 entries unpersisted during the storm (read \
             every 100 ms), 1234 when it ended, back to zero within 85 ms (read every 20 ms)"
        );
        let stuck = Drain { zero_after_ms: None, last: Some(12), ..drain };
        let summary = stuck.summary();
        assert!(
            summary.ends_with("not back to zero after 10 s (last reading: 12) (read every 20 ms)")
        );
    }
}
