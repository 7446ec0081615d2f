//! What each replica runs in the background of the distributed deployment, and how replicas
//! share the shards.
//!
//! Every replica tails every shard stream (fan-out to its own subscribers). Persisting is
//! shared: a replica announces itself in a registry of live replicas, aims to hold
//! `ceil(shards / live replicas)` shard leases, takes free ones when below that, and gives
//! some back when above, so a newcomer gets its share and a dead replica's shards are taken
//! over once their leases expire. Each singleton background job ([`BackgroundJob`]: the auction
//! closer, …) runs on whichever replica holds the lease of its name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use surge_store::events::postgres::PgEventLedger;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::connection::RedisConnection;
use super::lease::Lease;
use super::persister::{Persister, PersisterSettings};
use super::shards::Shards;
use super::tailer::{LiveFeeds, run_tailer, stream_end};
use super::time::ServerTime;
use super::{deadline, unavailable};
use crate::EngineError;
use crate::clock::Clock;
use crate::workers::BackgroundJob;

/// How the replica's background work is tuned.
#[derive(Clone)]
pub struct ReplicaSettings {
    /// A lease's time to live; a dead holder's shards move within about twice this.
    pub lease_ttl: Duration,
    pub persister: PersisterSettings,
}

/// The replica's background tasks. [`ReplicaTasks::stop`] gives its leases back.
pub struct ReplicaTasks {
    stop: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

/// Everything the background work needs.
#[derive(Clone)]
pub struct Replica {
    pub shards: Shards,
    /// Node URLs, to open the dedicated connections blocking reads need.
    pub urls: Vec<String>,
    pub ledger: PgEventLedger,
    /// This replica's name among the others (consumer name, lease holder).
    pub id: String,
    pub settings: ReplicaSettings,
    pub feeds: LiveFeeds,
    /// Singleton jobs, each run under the lease of its name.
    pub jobs: Vec<BackgroundJob>,
    /// The server's clock, kept calibrated by this replica's background work.
    pub time: Arc<ServerTime>,
}

impl Replica {
    /// Starts tailing every shard from its current end (read before this returns, so no
    /// event acknowledged afterwards is missed) and starts taking leases.
    pub async fn start(self) -> Result<ReplicaTasks, EngineError> {
        let shards = self.shards.keys.shards();
        let mut ends = Vec::with_capacity(usize::from(shards));
        for shard in 0..shards {
            ends.push(stream_end(&self.shards.conn, &self.shards.keys.events(shard)).await?);
        }
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        for (shard, from) in (0..shards).zip(ends) {
            let replica = self.clone();
            let stop = stop.clone();
            handles.push(tokio::spawn(async move {
                let Some(reader) = replica.dedicated_connection(&stop).await else { return };
                run_tailer(replica.shards, reader, shard, from, replica.feeds, stop).await;
            }));
        }
        handles.push(tokio::spawn(
            self.time.clone().keep_calibrated(self.shards.clone(), stop.clone()),
        ));
        handles.push(tokio::spawn(self.coordinate(stop.clone())));
        Ok(ReplicaTasks { stop, handles })
    }

    /// A connection of its own, retried until it opens or `stop` fires.
    async fn dedicated_connection(&self, stop: &CancellationToken) -> Option<RedisConnection> {
        loop {
            match RedisConnection::connect(&self.urls).await {
                Ok(conn) => return Some(conn),
                Err(error) => {
                    tracing::warn!(error = %error, "cannot open a Redis connection; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// Announces this replica and counts the live ones.
    async fn heartbeat(&self) -> Result<usize, EngineError> {
        // The server's clock, so replicas with drifting clocks agree on who is silent.
        let now = self.time.now().timestamp_millis();
        // A live replica beats three times per TTL; one silent for a whole TTL is gone, so
        // its shards are shared out as soon as their leases expire.
        let expired = now - self.settings.lease_ttl.as_millis() as i64;
        let mut pipe = ::redis::pipe();
        pipe.cmd("ZADD").arg(self.shards.keys.replicas()).arg(now).arg(&self.id).ignore();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(self.shards.keys.replicas())
            .arg("-inf")
            .arg(expired)
            .ignore();
        pipe.cmd("ZCARD").arg(self.shards.keys.replicas());
        let mut conn = self.shards.conn.clone();
        let (live,): (usize,) =
            deadline(async { pipe.query_async(&mut conn).await.map_err(unavailable) }).await?;
        Ok(live.max(1))
    }

    async fn leave(&self) {
        let mut conn = self.shards.conn.clone();
        let _ = deadline(async {
            ::redis::cmd("ZREM")
                .arg(self.shards.keys.replicas())
                .arg(&self.id)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)
        })
        .await;
    }

    /// Takes, keeps and gives back shard leases, and runs each singleton job whose lease it
    /// holds.
    async fn coordinate(self, stop: CancellationToken) {
        let mut held: BTreeMap<u16, Held> = BTreeMap::new();
        let mut singletons: BTreeMap<&'static str, Held> = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.settings.lease_ttl / 3);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            held.retain(|_, task| !task.handle.is_finished());
            singletons.retain(|_, task| !task.handle.is_finished());
            let live = match self.heartbeat().await {
                Ok(live) => live,
                Err(error) => {
                    tracing::warn!(error = %error, "replica heartbeat failed");
                    continue;
                }
            };
            let shards = usize::from(self.shards.keys.shards());
            let target = shards.div_ceil(live);
            while held.len() > target {
                if let Some((shard, task)) = held.pop_last() {
                    tracing::info!(shard, "handing a shard over to another replica");
                    task.finish().await;
                }
            }
            for shard in 0..self.shards.keys.shards() {
                if held.len() >= target || stop.is_cancelled() {
                    break;
                }
                if held.contains_key(&shard) {
                    continue;
                }
                match self.take_shard(shard, &stop).await {
                    Ok(Some(task)) => {
                        held.insert(shard, task);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(shard, error = %error, "could not try a shard lease");
                        break;
                    }
                }
            }
            for job in &self.jobs {
                if !singletons.contains_key(job.name)
                    && let Some(task) = self.take_singleton(job).await
                {
                    singletons.insert(job.name, task);
                }
            }
            metrics::gauge!("surge_shards_held").set(held.len() as f64);
            // The table is the truth (a counter restarts with the process): keep it visible.
            if let Ok(count) = self.ledger.dead_letter_count().await {
                metrics::gauge!("surge_dead_letters").set(count as f64);
            }
        }
        for (_, task) in held {
            task.finish().await;
        }
        for (_, task) in singletons {
            task.finish().await;
        }
        self.leave().await;
    }

    async fn take_shard(
        &self,
        shard: u16,
        stop: &CancellationToken,
    ) -> Result<Option<Held>, EngineError> {
        let keys = self.shards.keys.shard_lease(shard);
        let ttl = self.settings.lease_ttl;
        let Some(lease) = Lease::acquire(&self.shards.conn, keys, &self.id, ttl).await? else {
            return Ok(None);
        };
        tracing::info!(shard, epoch = lease.epoch(), "took a shard lease; persisting it");
        let release = CancellationToken::new();
        let replica = self.clone();
        let (task_release, stop) = (release.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            if let Some(reader) = replica.dedicated_connection(&stop).await {
                let persister = Persister {
                    shards: replica.shards.clone(),
                    reader,
                    ledger: replica.ledger.clone(),
                    shard,
                    consumer: replica.id.clone(),
                    settings: replica.settings.persister.clone(),
                    time: replica.time.clone(),
                };
                tokio::select! {
                    _ = persister.run(&lease) => {
                        tracing::warn!(shard, "shard lease lost; persister stopped");
                    }
                    _ = task_release.cancelled() => {}
                }
            }
            lease.release().await;
        });
        Ok(Some(Held { release, handle }))
    }

    /// Runs `job` while this replica holds its lease, if it can take it.
    async fn take_singleton(&self, job: &BackgroundJob) -> Option<Held> {
        let ttl = self.settings.lease_ttl;
        let keys = self.shards.keys.singleton_lease(job.name);
        let lease = match Lease::acquire(&self.shards.conn, keys, &self.id, ttl).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(job = job.name, error = %error, "could not try a job's lease");
                return None;
            }
        };
        tracing::info!(job = job.name, epoch = lease.epoch(), "took a job's lease");
        let release = CancellationToken::new();
        let task_release = release.clone();
        let (name, running) = (job.name, (job.run)());
        let handle = tokio::spawn(async move {
            let lost = lease.lost();
            tokio::select! {
                _ = running => {}
                _ = lost.cancelled() => tracing::warn!(job = name, "job lease lost; job stopped"),
                _ = task_release.cancelled() => {}
            }
            lease.release().await;
        });
        Some(Held { release, handle })
    }
}

/// A task that holds a lease.
struct Held {
    release: CancellationToken,
    handle: JoinHandle<()>,
}

impl Held {
    /// Stops the work and gives the lease back.
    async fn finish(self) {
        self.release.cancel();
        let _ = self.handle.await;
    }
}

impl ReplicaTasks {
    /// Stops tailing and persisting and gives every lease back, so other replicas take over at
    /// once instead of after the TTL.
    pub async fn stop(mut self, timeout: Duration) {
        self.stop.cancel();
        let handles = std::mem::take(&mut self.handles);
        let all = async {
            for handle in handles {
                let _ = handle.await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("background work did not stop in time");
        }
    }
}

impl Drop for ReplicaTasks {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
