//! The persister of one shard: applies the shard stream's events to PostgreSQL, in order, while
//! its replica holds the shard's lease.
//!
//! On start it first re-delivers the entries a previous holder read but never acknowledged
//! (XAUTOCLAIM), then reads new ones (XREADGROUP). Each batch is applied in one PostgreSQL
//! transaction fenced by the lease's epoch and idempotent by event id, and only then
//! acknowledged (XACK): a crash between the two re-applies a batch, which changes nothing.
//! A transient database failure is retried with backoff and leaves the entries waiting in the
//! stream; an entry the database refuses for what it is goes to the dead-letter table.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::{Script, Value};

use surge_core::events::AppEvent;
use surge_store::events::ApplyError;
use surge_store::events::postgres::PgEventLedger;
use tokio::time::Instant;

use super::connection::RedisConnection;
use super::lease::Lease;
use super::scripts;
use super::shards::Shards;
use super::stream::{self, RawEntry};
use super::time::ServerTime;
use super::{deadline, unavailable};
use crate::EngineError;
use crate::clock::Clock;

static ACKNOWLEDGE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/acknowledge.lua")));

/// The consumer group every replica's persisters share.
pub const GROUP: &str = "persisters";
/// How long a read waits for new entries.
const BLOCK_MS: u64 = 500;
/// How long a read that found some entries waits for more before applying them.
const LINGER: Duration = Duration::from_millis(50);
/// Backoff between retries of a transient failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the holder takes over entries left pending elsewhere (a consumer paused with a
/// read outstanding can still be handed entries after the takeover), and how long such an
/// entry must have been idle first.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);
const RECLAIM_IDLE_MS: u64 = 1_000;
/// How often the stream lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// What a persister needs besides its lease.
#[derive(Clone)]
pub struct PersisterSettings {
    /// Most entries applied in one transaction.
    pub batch: usize,
    /// How long applied entries stay in the stream, so every replica's fan-out has read them
    /// before they are trimmed.
    pub retention: Duration,
}

pub struct Persister {
    pub shards: Shards,
    /// A connection of its own: blocking reads must not hold up the shared one.
    pub reader: RedisConnection,
    pub ledger: PgEventLedger,
    pub shard: u16,
    /// This replica's name in the consumer group.
    pub consumer: String,
    pub settings: PersisterSettings,
    /// The server's clock: stream ids are its times.
    pub time: Arc<ServerTime>,
}

impl Persister {
    /// Runs until the lease is lost (expired, taken over, released, or fenced by a newer
    /// holder).
    pub async fn run(self, lease: &Lease) {
        let lost = lease.lost();
        tokio::select! {
            () = self.persist(lease) => {}
            _ = lost.cancelled() => {}
        }
    }

    async fn persist(&self, lease: &Lease) {
        let mut backoff = FIRST_BACKOFF;
        // Until the group exists and the previous holder's pending entries are re-applied.
        let mut claimed = false;
        let mut lag_at = Instant::now();
        let mut reclaimed_at = Instant::now();
        loop {
            if !lease.is_valid() {
                return;
            }
            let step = async {
                if !claimed {
                    self.create_group().await?;
                    self.claim_pending(lease, 0).await?;
                    claimed = true;
                    reclaimed_at = Instant::now();
                } else if reclaimed_at.elapsed() >= RECLAIM_EVERY {
                    self.claim_pending(lease, RECLAIM_IDLE_MS).await?;
                    reclaimed_at = Instant::now();
                }
                let entries = self.read_new().await?;
                if !entries.is_empty() {
                    self.handle(lease, entries).await?;
                }
                if lag_at.elapsed() >= LAG_EVERY {
                    self.report_lag().await;
                    lag_at = Instant::now();
                }
                Ok::<_, Failure>(())
            };
            match step.await {
                Ok(()) => backoff = FIRST_BACKOFF,
                Err(Failure::LeaseLost) => return,
                Err(Failure::Redis(error)) => {
                    // Entries may have been delivered to this consumer without the reply
                    // reaching it: claim every pending entry again before reading new ones.
                    claimed = false;
                    tracing::warn!(shard = self.shard, error = %error, "persister: Redis failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn stream(&self) -> String {
        self.shards.keys.events(self.shard)
    }

    async fn create_group(&self) -> Result<(), Failure> {
        let mut conn = self.shards.conn.clone();
        let created: Result<(), EngineError> = deadline(async {
            match ::redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.stream())
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async::<()>(&mut conn)
                .await
            {
                Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
                other => other.map_err(unavailable),
            }
        })
        .await;
        created.map_err(Failure::Redis)
    }

    /// Takes over and applies every entry read (by anyone) but never acknowledged, idle for at
    /// least `min_idle_ms`.
    async fn claim_pending(&self, lease: &Lease, min_idle_ms: u64) -> Result<(), Failure> {
        let mut cursor = "0-0".to_owned();
        loop {
            let mut conn = self.shards.conn.clone();
            let (next, entries, _deleted): (String, Vec<RawEntry>, Vec<String>) = deadline(async {
                ::redis::cmd("XAUTOCLAIM")
                    .arg(self.stream())
                    .arg(GROUP)
                    .arg(&self.consumer)
                    .arg(min_idle_ms)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(self.settings.batch)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await
            .map_err(Failure::Redis)?;
            if !entries.is_empty() {
                tracing::info!(
                    shard = self.shard,
                    entries = entries.len(),
                    "re-applying entries left pending by a previous holder"
                );
                self.handle(lease, entries).await?;
            }
            if next == "0-0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// New entries: waits for some, then lingers briefly for more when the batch is not full,
    /// so a storm is applied in fewer, larger transactions.
    async fn read_new(&self) -> Result<Vec<RawEntry>, Failure> {
        let mut entries = self.read_group(self.settings.batch, Some(BLOCK_MS)).await?;
        if !entries.is_empty() && entries.len() < self.settings.batch {
            tokio::time::sleep(LINGER).await;
            // A failure here must not lose the entries already read: apply those first.
            if let Ok(more) = self.read_group(self.settings.batch - entries.len(), None).await {
                entries.extend(more);
            }
        }
        Ok(entries)
    }

    async fn read_group(
        &self,
        count: usize,
        block_ms: Option<u64>,
    ) -> Result<Vec<RawEntry>, Failure> {
        let mut conn = self.reader.clone();
        let reply: Option<Vec<(String, Vec<RawEntry>)>> = deadline(async {
            ::redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(count)
                .arg(block_ms.map(|_| "BLOCK"))
                .arg(block_ms)
                .arg("STREAMS")
                .arg(self.stream())
                .arg(">")
                .query_async(&mut conn)
                .await
                .map_err(unavailable)
        })
        .await
        .map_err(Failure::Redis)?;
        Ok(reply.into_iter().flatten().flat_map(|(_, entries)| entries).collect())
    }

    /// Applies, dead-letters what cannot be applied, acknowledges, and moves the persisted
    /// position forward.
    async fn handle(&self, lease: &Lease, entries: Vec<RawEntry>) -> Result<(), Failure> {
        let started = Instant::now();
        // The events to apply, and the entry each came from (for the dead letter).
        let mut events: Vec<AppEvent> = Vec::with_capacity(entries.len());
        let mut sources: Vec<&RawEntry> = Vec::with_capacity(entries.len());
        let mut poison: Vec<(&RawEntry, String)> = Vec::new();
        for entry in &entries {
            match stream::decode(&entry.1) {
                Ok(event) => {
                    events.push(event);
                    sources.push(entry);
                }
                Err(error) => poison.push((entry, error)),
            }
        }
        match self.apply(lease, &events).await {
            Ok(()) => {}
            Err(ApplyError::Permanent(error)) => {
                tracing::warn!(shard = self.shard, error = %error, "a batch was refused; applying its events one by one");
                for (source, event) in sources.into_iter().zip(&events) {
                    if let Err(ApplyError::Permanent(error)) =
                        self.apply(lease, std::slice::from_ref(event)).await
                    {
                        poison.push((source, error));
                    }
                }
            }
            Err(_) => return Err(Failure::LeaseLost),
        }
        for (entry, error) in &poison {
            self.dead_letter(lease, entry, error).await?;
        }
        let ids: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
        self.acknowledge(&ids).await.map_err(Failure::Redis)?;
        metrics::histogram!("surge_persist_apply_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("surge_persisted_events_total").increment(entries.len() as u64);
        Ok(())
    }

    /// Applies `events`, retrying transient failures for as long as the lease holds. Returns
    /// `Err(Permanent)` when the data is refused, `Err(Fenced)` when the lease is gone.
    async fn apply(&self, lease: &Lease, events: &[AppEvent]) -> Result<(), ApplyError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            if !lease.is_valid() {
                return Err(ApplyError::Fenced { newer: lease.epoch() });
            }
            match self.ledger.apply(self.shard, lease.epoch(), events, self.time.now()).await {
                Ok(()) => return Ok(()),
                Err(ApplyError::Transient(error)) => {
                    tracing::warn!(shard = self.shard, error = %error, "PostgreSQL refused a batch for now; it waits in the stream");
                    metrics::counter!("surge_persist_retries_total").increment(1);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(fenced @ ApplyError::Fenced { .. }) => {
                    tracing::warn!(shard = self.shard, epoch = lease.epoch(), error = %fenced, "persister fenced out");
                    return Err(fenced);
                }
                Err(permanent) => return Err(permanent),
            }
        }
    }

    async fn dead_letter(
        &self,
        lease: &Lease,
        entry: &RawEntry,
        error: &str,
    ) -> Result<(), Failure> {
        let fields: serde_json::Map<String, serde_json::Value> = entry
            .1
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), serde_json::Value::String(pair[1].clone())))
            .collect();
        let mut backoff = FIRST_BACKOFF;
        loop {
            if !lease.is_valid() {
                return Err(Failure::LeaseLost);
            }
            let recorded = self
                .ledger
                .dead_letter(self.shard, &entry.0, &fields.clone().into(), error, self.time.now())
                .await;
            match recorded {
                Ok(()) => break,
                Err(failure) => {
                    tracing::warn!(shard = self.shard, error = %failure, "could not record a dead letter; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tracing::error!(shard = self.shard, entry = %entry.0, error, "event moved to the dead-letter table");
        metrics::counter!("surge_dead_letters_total").increment(1);
        Ok(())
    }

    /// XACK, then the persisted position, then trimming what is applied and older than the
    /// retention, in one script (`acknowledge.lua`).
    async fn acknowledge(&self, ids: &[&str]) -> Result<(), EngineError> {
        if ids.is_empty() {
            return Ok(());
        }
        let retained_ms =
            self.time.now().timestamp_millis() - self.settings.retention.as_millis() as i64;
        let mut invocation = ACKNOWLEDGE.key(self.stream());
        invocation
            .key(self.shards.keys.persisted(self.shard))
            .arg(GROUP)
            .arg(format!("{}-0", retained_ms.max(0)))
            .arg(ids);
        scripts::call(&self.shards.conn, &invocation, |_| Ok(())).await
    }

    /// Publishes the shard's unapplied entries.
    async fn report_lag(&self) {
        let lag = stream_lag(&self.shards.conn, &self.stream()).await;
        let entries = match lag {
            Ok(StreamLag::Entries(entries)) => entries,
            Ok(StreamLag::NoStream) => 0,
            Ok(StreamLag::Unknown) | Err(_) => return,
        };
        metrics::gauge!("surge_stream_lag", "shard" => self.shard.to_string()).set(entries as f64);
    }
}

/// What PostgreSQL still lacks of one shard stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamLag {
    /// No stream: nothing was ever written to this shard.
    NoStream,
    /// Redis cannot tell: no persisters group yet, or a lag it reports as unknown.
    Unknown,
    /// Entries not yet read plus read but not yet acknowledged.
    Entries(u64),
}

/// Reads the persisters' lag on `stream` (`lag` + `pending` of their group).
pub async fn stream_lag(conn: &RedisConnection, stream: &str) -> Result<StreamLag, EngineError> {
    let mut conn = conn.clone();
    let groups: Result<Vec<HashMap<String, Value>>, _> = deadline(async {
        Ok(::redis::cmd("XINFO").arg("GROUPS").arg(stream).query_async(&mut conn).await)
    })
    .await?;
    let groups = match groups {
        Ok(groups) => groups,
        Err(error) if error.to_string().contains("no such key") => return Ok(StreamLag::NoStream),
        Err(error) => return Err(unavailable(error)),
    };
    Ok(match persisters_lag(&groups) {
        Some(entries) => StreamLag::Entries(entries),
        None => StreamLag::Unknown,
    })
}

/// `lag + pending` of the persisters' group in an `XINFO GROUPS` reply, if Redis can tell.
fn persisters_lag(groups: &[HashMap<String, Value>]) -> Option<u64> {
    let group = groups.iter().find(
        |group| matches!(group.get("name"), Some(Value::BulkString(name)) if name == GROUP.as_bytes()),
    )?;
    let count = |field: &str| match group.get(field) {
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    Some(count("lag")? + count("pending")?)
}

enum Failure {
    LeaseLost,
    Redis(EngineError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, lag: Value, pending: i64) -> HashMap<String, Value> {
        HashMap::from([
            ("name".to_owned(), Value::BulkString(name.as_bytes().to_vec())),
            ("lag".to_owned(), lag),
            ("pending".to_owned(), Value::Int(pending)),
        ])
    }

    #[test]
    fn lag_counts_unread_and_unacknowledged_entries_of_the_persisters() {
        let groups = [group("other", Value::Int(99), 99), group(GROUP, Value::Int(7), 3)];
        assert_eq!(persisters_lag(&groups), Some(10));
    }

    #[test]
    fn an_unknown_lag_or_a_missing_group_is_not_zero() {
        assert_eq!(persisters_lag(&[group(GROUP, Value::Nil, 0)]), None);
        assert_eq!(persisters_lag(&[group("other", Value::Int(0), 0)]), None);
        assert_eq!(persisters_lag(&[]), None);
    }
}
