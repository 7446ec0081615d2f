//! Leases: at most one holder per singleton job (a shard's persister, the closer), each holder
//! with a fencing epoch that only grows.
//!
//! A lease is a key taken with `SET NX PX` semantics (inside `acquire_lease.lua`, which also
//! INCRs the epoch), renewed by compare-and-`PEXPIRE` at a third of its time to live, and
//! released by compare-and-`DEL`. The holder keeps its own deadline: the lease counts as lost
//! — and [`Lease::lost`] fires — when a renewal is refused, or when no renewal has succeeded
//! for long enough that the key may have expired, whatever Redis says later. Work that writes
//! elsewhere (PostgreSQL) also carries the epoch, so a holder that was paused past its TTL and
//! resumes is refused there too.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use ::redis::Script;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::RedisConnection;
use super::scripts::{self, Reply};
use crate::EngineError;

static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/acquire_lease.lua")));
static RENEW: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/renew_lease.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/release_lease.lua")));

/// Which lease: its key and the epoch counter's key (both in one Cluster slot).
#[derive(Debug, Clone)]
pub struct LeaseKeys {
    pub lease: String,
    pub epoch: String,
}

/// A held lease. Renewed in the background until released or lost.
pub struct Lease {
    epoch: i64,
    value: String,
    keys: LeaseKeys,
    conn: RedisConnection,
    lost: CancellationToken,
    renewer: JoinHandle<()>,
    /// When the lease may expire at the latest, as far as this holder knows.
    valid_until: Arc<Mutex<Instant>>,
}

impl Lease {
    /// Takes the lease for `holder` if it is free. `Ok(None)` when someone holds it.
    pub async fn acquire(
        conn: &RedisConnection,
        keys: LeaseKeys,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, EngineError> {
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut invocation = ACQUIRE.key(&keys.lease);
        invocation.key(&keys.epoch).arg(holder).arg(ttl_ms);
        // Measured before asking: the key cannot outlive `asked + ttl`.
        let asked = Instant::now();
        let epoch = scripts::call(conn, &invocation, |reply| match reply.word() {
            Some("acquired") => reply.int(1).ok_or_else(|| reply.malformed("acquire_lease")),
            Some("held") => Ok(0),
            _ => Err(reply.malformed("acquire_lease")),
        })
        .await?;
        if epoch == 0 {
            return Ok(None);
        }
        let valid_until = Arc::new(Mutex::new(asked + ttl));
        let lost = CancellationToken::new();
        let value = format!("{holder}/{epoch}");
        let renewer = tokio::spawn(renew(
            conn.clone(),
            keys.lease.clone(),
            value.clone(),
            ttl,
            valid_until.clone(),
            lost.clone(),
        ));
        metrics::gauge!("surge_leases_held").increment(1.0);
        Ok(Some(Lease { epoch, value, keys, conn: conn.clone(), lost, renewer, valid_until }))
    }

    /// The fencing epoch: larger than any earlier holder's.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Cancelled once the lease is lost (or released): stop the work it guards.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Whether the lease is still certainly held; check before each write it guards.
    pub fn is_valid(&self) -> bool {
        !self.lost.is_cancelled()
            && Instant::now() < *self.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the lease up so another replica can take it at once.
    pub async fn release(self) {
        self.lost.cancel();
        let mut invocation = RELEASE.key(&self.keys.lease);
        invocation.arg(&self.value);
        let released = scripts::call(&self.conn, &invocation, |_| Ok(())).await;
        if let Err(error) = released {
            tracing::warn!(lease = %self.keys.lease, error = %error, "could not release a lease; it will expire");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.lost.cancel();
        self.renewer.abort();
        metrics::gauge!("surge_leases_held").decrement(1.0);
    }
}

/// Renews at a third of the TTL; gives up (cancels `lost`) when refused or when the lease may
/// have run out.
async fn renew(
    conn: RedisConnection,
    lease: String,
    value: String,
    ttl: Duration,
    valid_until: Arc<Mutex<Instant>>,
    lost: CancellationToken,
) {
    let period = ttl / 3;
    // Stop this long before the lease could expire, so guarded work ends in time.
    let margin = ttl / 10;
    loop {
        let until = *valid_until.lock().unwrap_or_else(|p| p.into_inner());
        let give_up_at = until.checked_sub(margin).unwrap_or(until);
        tokio::select! {
            _ = lost.cancelled() => return,
            _ = tokio::time::sleep_until(give_up_at) => {
                tracing::warn!(lease = %lease, "lease could not be renewed in time; giving it up");
                lost.cancel();
                return;
            }
            _ = tokio::time::sleep(period) => {}
        }
        let mut invocation = RENEW.key(&lease);
        invocation.arg(&value).arg(ttl.as_millis().max(1) as u64);
        let asked = Instant::now();
        let mut connection = conn.clone();
        let answer = tokio::time::timeout(
            period,
            invocation.invoke_async::<::redis::Value>(&mut connection),
        );
        let renewed = |value: &::redis::Value| {
            Reply::of(value).is_ok_and(|reply| reply.word() == Some("renewed"))
        };
        match answer.await {
            Ok(Ok(value)) if renewed(&value) => {
                *valid_until.lock().unwrap_or_else(|p| p.into_inner()) = asked + ttl
            }
            Ok(Ok(_)) => {
                tracing::warn!(lease = %lease, "lease taken over by another holder");
                lost.cancel();
                return;
            }
            Ok(Err(error)) => {
                tracing::warn!(lease = %lease, error = %error, "lease renewal failed")
            }
            Err(_) => tracing::warn!(lease = %lease, "lease renewal timed out"),
        }
    }
}
