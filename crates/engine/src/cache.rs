//! The two-tier cache for hot reads: moka in this process, then (distributed) Redis shared by
//! every replica, then the loader. Concurrent misses of one key in a process share one load
//! (single flight), so a burst of readers of a cold key costs one database query.
//!
//! Entries expire after a short time to live; callers use it only for data that is immutable
//! or may trail by that long, and overlay anything that must be exact.
//!
//! [`TwoTierCache::invalidate_all`] drops every entry at once (the "now showing" lists after an
//! admin change) by starting a new generation: entries are filed under the generation they were
//! loaded in. With Redis the generation is a shared counter, which every replica re-reads at
//! most every [`GENERATION_CHECK`], so another replica stops serving old entries within that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::future::Cache;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::redis::{KeySpace, RedisConnection};

/// The shared tier: a Redis key per entry ([`KeySpace::cache`]).
#[derive(Clone)]
struct SharedTier {
    conn: RedisConnection,
    keys: KeySpace,
}

/// How often a replica re-reads the shared generation.
pub const GENERATION_CHECK: Duration = Duration::from_millis(500);
/// `generation_checked_ms` before the shared generation was first read.
const NEVER_CHECKED: u64 = u64::MAX;

pub struct TwoTierCache<V> {
    namespace: &'static str,
    local: Cache<String, Arc<V>>,
    shared: Option<SharedTier>,
    ttl: Duration,
    generation: AtomicU64,
    /// When the shared generation was last read, in ms since `created` ([`NEVER_CHECKED`]
    /// before the first successful read).
    generation_checked_ms: AtomicU64,
    created: Instant,
}

/// Why a load produced nothing to cache.
#[derive(Debug, Clone)]
enum Miss<E> {
    Absent,
    Failed(E),
}

impl<V> TwoTierCache<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A process-local cache of at most `capacity` entries living `ttl`.
    pub fn new(namespace: &'static str, capacity: u64, ttl: Duration) -> Self {
        let local = Cache::builder().max_capacity(capacity).time_to_live(ttl).build();
        Self {
            namespace,
            local,
            shared: None,
            ttl,
            generation: AtomicU64::new(0),
            generation_checked_ms: AtomicU64::new(NEVER_CHECKED),
            created: Instant::now(),
        }
    }

    /// Adds the Redis tier every replica shares.
    pub fn with_redis(mut self, conn: RedisConnection, keys: KeySpace) -> Self {
        self.shared = Some(SharedTier { conn, keys });
        self
    }

    /// The cached value of `key`, else the shared tier's, else `load`'s (stored in both tiers).
    /// `Ok(None)` when the loader finds nothing; absence is not cached.
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<Option<Arc<V>>, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let key = &format!("{}:{key}", self.current_generation().await);
        // A hit needs neither the loader's future nor a second copy of the key.
        if let Some(hit) = self.local.get(key).await {
            return Ok(Some(hit));
        }
        let loaded = self
            .local
            .try_get_with(key.clone(), async {
                if let Some(value) = self.shared_get(key).await {
                    return Ok(Arc::new(value));
                }
                match load().await {
                    Ok(Some(value)) => {
                        self.shared_set(key, &value).await;
                        Ok(Arc::new(value))
                    }
                    Ok(None) => Err(Miss::Absent),
                    Err(error) => Err(Miss::Failed(error)),
                }
            })
            .await;
        match loaded {
            Ok(value) => Ok(Some(value)),
            Err(miss) => match miss.as_ref() {
                Miss::Absent => Ok(None),
                Miss::Failed(error) => Err(error.clone()),
            },
        }
    }

    /// Replaces `key`'s entry in both tiers (a background refresh that has the new value).
    pub async fn put(&self, key: &str, value: V) {
        let key = format!("{}:{key}", self.current_generation().await);
        self.shared_set(&key, &value).await;
        self.local.insert(key, Arc::new(value)).await;
    }

    /// Forgets `key` in both tiers, so its next read loads it again.
    pub async fn invalidate(&self, key: &str) {
        let key = format!("{}:{key}", self.current_generation().await);
        if let Some(shared) = &self.shared {
            let mut conn = shared.conn.clone();
            let mut command = ::redis::cmd("DEL");
            command.arg(self.shared_key(shared, &key));
            let delete = command.query_async::<()>(&mut conn);
            if let Ok(Err(error)) = tokio::time::timeout(Duration::from_millis(500), delete).await {
                tracing::debug!(error = %error, "could not drop a shared cache entry");
            }
        }
        self.local.invalidate(&key).await;
    }

    /// Forgets every entry, in this process at once and on every replica within
    /// [`GENERATION_CHECK`].
    pub async fn invalidate_all(&self) {
        let next = match &self.shared {
            Some(shared) => {
                let mut conn = shared.conn.clone();
                let mut command = ::redis::cmd("INCR");
                command.arg(shared.keys.cache_generation(self.namespace));
                let incr = command.query_async::<u64>(&mut conn);
                match tokio::time::timeout(Duration::from_millis(500), incr).await {
                    Ok(Ok(next)) => next,
                    _ => {
                        tracing::warn!("could not start a new shared cache generation");
                        self.generation.load(Ordering::Acquire) + 1
                    }
                }
            }
            None => self.generation.load(Ordering::Acquire) + 1,
        };
        self.generation.fetch_max(next, Ordering::AcqRel);
        self.local.invalidate_all();
    }

    /// The generation entries are filed under now; with Redis, re-read every
    /// [`GENERATION_CHECK`] (a failed read keeps the one known).
    async fn current_generation(&self) -> u64 {
        let known = self.generation.load(Ordering::Acquire);
        let Some(shared) = &self.shared else { return known };
        let now_ms = self.created.elapsed().as_millis() as u64;
        let checked = self.generation_checked_ms.load(Ordering::Acquire);
        // Until the first read succeeds every caller reads: a new replica must not serve what
        // an earlier generation left in the shared tier.
        let never = checked == NEVER_CHECKED;
        if !never
            && (now_ms.saturating_sub(checked) < GENERATION_CHECK.as_millis() as u64
                || self
                    .generation_checked_ms
                    .compare_exchange(checked, now_ms, Ordering::AcqRel, Ordering::Acquire)
                    .is_err())
        {
            return known;
        }
        let mut conn = shared.conn.clone();
        let mut command = ::redis::cmd("GET");
        command.arg(shared.keys.cache_generation(self.namespace));
        let read = command.query_async::<Option<u64>>(&mut conn);
        let Ok(Ok(stored)) = tokio::time::timeout(Duration::from_millis(500), read).await else {
            return known;
        };
        if never {
            self.generation_checked_ms.store(now_ms, Ordering::Release);
        }
        match stored {
            Some(stored) if stored > known => {
                self.generation.fetch_max(stored, Ordering::AcqRel);
                self.local.invalidate_all();
                stored
            }
            _ => known,
        }
    }

    fn shared_key(&self, shared: &SharedTier, key: &str) -> String {
        shared.keys.cache(self.namespace, key)
    }

    /// A shared-tier hit; a miss, an unreadable entry or an unreachable Redis all fall through
    /// to the loader (the cache must never make a read fail).
    async fn shared_get(&self, key: &str) -> Option<V> {
        let shared = self.shared.as_ref()?;
        let mut conn = shared.conn.clone();
        let mut command = ::redis::cmd("GET");
        command.arg(self.shared_key(shared, key));
        let read = command.query_async::<Option<String>>(&mut conn);
        let text = tokio::time::timeout(Duration::from_millis(500), read).await.ok()?.ok()??;
        serde_json::from_str(&text).ok()
    }

    async fn shared_set(&self, key: &str, value: &V) {
        let Some(shared) = &self.shared else { return };
        let Ok(text) = serde_json::to_string(value) else { return };
        let mut conn = shared.conn.clone();
        let mut command = ::redis::cmd("SET");
        command
            .arg(self.shared_key(shared, key))
            .arg(text)
            .arg("PX")
            .arg(self.ttl.as_millis().max(1) as u64);
        let write = command.query_async::<()>(&mut conn);
        if let Ok(Err(error)) = tokio::time::timeout(Duration::from_millis(500), write).await {
            tracing::debug!(error = %error, "could not fill the shared cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_of_one_key_share_one_load() {
        let cache: Arc<TwoTierCache<String>> =
            Arc::new(TwoTierCache::new("test", 100, Duration::from_secs(60)));
        let loads = Arc::new(AtomicUsize::new(0));
        let mut readers = Vec::new();
        for _ in 0..50 {
            let (cache, loads) = (cache.clone(), loads.clone());
            readers.push(tokio::spawn(async move {
                cache
                    .get_or_load::<(), _, _>("k", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(Some("v".to_owned()))
                    })
                    .await
            }));
        }
        for reader in readers {
            assert_eq!(reader.await.unwrap().unwrap().as_deref().map(String::as_str), Some("v"));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn absence_and_failures_are_not_cached() {
        let cache: TwoTierCache<String> = TwoTierCache::new("test", 100, Duration::from_secs(60));
        let none = cache.get_or_load::<(), _, _>("k", || async { Ok(None) }).await;
        assert!(none.unwrap().is_none());
        let failed = cache.get_or_load("k", || async { Err::<Option<String>, _>("down") }).await;
        assert_eq!(failed.unwrap_err(), "down");
        let loaded = cache.get_or_load::<(), _, _>("k", || async { Ok(Some("v".into())) }).await;
        assert_eq!(loaded.unwrap().as_deref().map(String::as_str), Some("v"));
        cache.invalidate_all().await;
        let reloaded = cache.get_or_load::<(), _, _>("k", || async { Ok(Some("w".into())) }).await;
        assert_eq!(reloaded.unwrap().as_deref().map(String::as_str), Some("w"));
    }

    #[tokio::test]
    async fn invalidating_everything_reloads_every_key() {
        let cache: TwoTierCache<String> = TwoTierCache::new("test", 100, Duration::from_secs(60));
        for key in ["a", "b"] {
            let loaded = cache.get_or_load::<(), _, _>(key, || async { Ok(Some("old".into())) });
            assert_eq!(loaded.await.unwrap().as_deref().map(String::as_str), Some("old"));
        }
        cache.invalidate_all().await;
        for key in ["a", "b"] {
            let loaded = cache.get_or_load::<(), _, _>(key, || async { Ok(Some("new".into())) });
            assert_eq!(loaded.await.unwrap().as_deref().map(String::as_str), Some("new"), "{key}");
        }
    }
}
