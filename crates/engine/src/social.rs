//! Social's engine pieces: read counts that cost no database write per read (counted in
//! memory or Redis, moved into the database in batches every second), and the rankings (the
//! top-liked list cached for half a second in every process; the hot list computed by one
//! process every `social.hot_interval_secs` and served from the cache everywhere).
//!
//! What a crash loses: embedded, the reads counted since the last flush (at most the last
//! second) — a graceful stop flushes them. Distributed, nothing: the counts wait in Redis (AOF)
//! and a flush cut short is offered again, its batch token applied once by PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use surge_core::social::{HOT_WINDOW_DAYS, RANKING_MAX, hot_score};
use surge_store::social::{ArticleStore, RankedArticle};
use uuid::Uuid;

use crate::EngineError;
use crate::cache::TwoTierCache;
use crate::clock::Clock;
use crate::redis::scripts;
use crate::redis::{KeySpace, RedisConnection};
use crate::workers::BackgroundJob;

/// How often counted reads are moved into the database.
pub const READ_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a top-liked list is served before it is read again.
pub const TOP_LIKED_TTL: Duration = Duration::from_millis(500);

/// Where reads are counted until they are flushed.
#[async_trait]
pub trait ReadCounter: Send + Sync {
    /// Counts one read; answers the reads of the article not yet in the database (this one
    /// included).
    async fn count(&self, article: Uuid) -> Result<i64, EngineError>;
    /// Moves the counted reads into the database.
    async fn flush(&self) -> Result<(), EngineError>;
}

/// The embedded backend's counts: a map in memory.
pub struct InProcessReads {
    pending: Mutex<HashMap<Uuid, i64>>,
    store: Arc<dyn ArticleStore>,
    clock: Arc<dyn Clock>,
}

impl InProcessReads {
    pub fn new(store: Arc<dyn ArticleStore>, clock: Arc<dyn Clock>) -> Self {
        Self { pending: Mutex::new(HashMap::new()), store, clock }
    }
}

#[async_trait]
impl ReadCounter for InProcessReads {
    async fn count(&self, article: Uuid) -> Result<i64, EngineError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let reads = pending.entry(article).or_default();
        *reads += 1;
        Ok(*reads)
    }

    async fn flush(&self) -> Result<(), EngineError> {
        let batch: Vec<(Uuid, i64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.store.add_reads(&batch, None, self.clock.now()).await {
            // Kept for the next flush.
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (id, reads) in batch {
                *pending.entry(id).or_default() += reads;
            }
            return Err(error.into());
        }
        Ok(())
    }
}

static COUNT_READ: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("redis/lua/count_read.lua")));
static TAKE_READS: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("redis/lua/take_reads.lua")));

/// The distributed backend's counts: a Redis hash every replica increments; one replica (under
/// a lease) flushes.
pub struct RedisReads {
    conn: RedisConnection,
    keys: KeySpace,
    store: Arc<dyn ArticleStore>,
    clock: Arc<dyn Clock>,
}

impl RedisReads {
    pub fn new(
        conn: RedisConnection,
        keys: KeySpace,
        store: Arc<dyn ArticleStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { conn, keys, store, clock }
    }
}

#[async_trait]
impl ReadCounter for RedisReads {
    async fn count(&self, article: Uuid) -> Result<i64, EngineError> {
        let (pending, flushing) = self.keys.reads();
        let mut invocation = COUNT_READ.key(pending);
        invocation.key(flushing).arg(article.to_string());
        scripts::call(&self.conn, &invocation, |reply| {
            reply.int(1).ok_or_else(|| reply.malformed("count_read"))
        })
        .await
    }

    async fn flush(&self) -> Result<(), EngineError> {
        let (pending, flushing) = self.keys.reads();
        let mut invocation = TAKE_READS.key(pending);
        invocation.key(&flushing).arg(Uuid::now_v7().to_string());
        let taken = scripts::call(&self.conn, &invocation, |reply| {
            if reply.word() == Some("empty") {
                return Ok(None);
            }
            let malformed = || reply.malformed("take_reads");
            let token =
                reply.text(1).and_then(|t| Uuid::parse_str(t).ok()).ok_or_else(malformed)?;
            let mut reads = Vec::new();
            let mut at = 2;
            while at < reply.0.len() {
                let id =
                    reply.text(at).and_then(|t| Uuid::parse_str(t).ok()).ok_or_else(malformed)?;
                reads.push((id, reply.int(at + 1).ok_or_else(malformed)?));
                at += 2;
            }
            Ok(Some((token, reads)))
        })
        .await?;
        let Some((token, reads)) = taken else { return Ok(()) };
        self.store.add_reads(&reads, Some(token), self.clock.now()).await?;
        let mut command = ::redis::cmd("DEL");
        command.arg(&flushing);
        let mut conn = self.conn.clone();
        command
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(())
    }
}

/// Flushes `reads` every second (embedded: in the one process; distributed: on one replica,
/// under the job's lease).
pub fn read_flusher(reads: Arc<dyn ReadCounter>) -> BackgroundJob {
    BackgroundJob::every("read-flusher", READ_FLUSH_INTERVAL, move || {
        let reads = reads.clone();
        async move {
            if let Err(error) = reads.flush().await {
                tracing::warn!(error = %error, "cannot flush the read counts; retrying");
            }
        }
    })
}

/// A published article in the hot list, with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotArticle {
    pub article: RankedArticle,
    pub score: f64,
}

/// The rankings: top-liked (read through a short-lived cache) and hot (computed by the hot job).
pub struct Rankings {
    store: Arc<dyn ArticleStore>,
    clock: Arc<dyn Clock>,
    top: TwoTierCache<Vec<RankedArticle>>,
    hot: TwoTierCache<Vec<HotArticle>>,
}

const HOT_KEY: &str = "list";

impl Rankings {
    /// `hot_interval`: how often the hot list is recomputed (its cache lives twice that).
    pub fn new(
        store: Arc<dyn ArticleStore>,
        clock: Arc<dyn Clock>,
        hot_interval: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            top: TwoTierCache::new("top-liked", 16, TOP_LIKED_TTL),
            hot: TwoTierCache::new("hot", 16, hot_interval * 2),
        }
    }

    /// The hot list in Redis, shared by every replica.
    pub fn with_redis(mut self, conn: RedisConnection, keys: KeySpace) -> Self {
        self.hot = self.hot.with_redis(conn, keys);
        self
    }

    /// The `n` most liked published articles.
    pub async fn top_liked(&self, n: u32) -> Result<Vec<RankedArticle>, EngineError> {
        let store = &self.store;
        let list = self
            .top
            .get_or_load(HOT_KEY, || async {
                Ok::<_, EngineError>(Some(store.top_liked(RANKING_MAX).await?))
            })
            .await?
            .unwrap_or_default();
        Ok(list.iter().take(n as usize).cloned().collect())
    }

    /// The `n` hottest articles of the last week, as the hot job last computed them (computed
    /// here when there is no list yet).
    pub async fn hot(&self, n: u32) -> Result<Vec<HotArticle>, EngineError> {
        let list = self
            .hot
            .get_or_load(HOT_KEY, || async { self.compute_hot().await.map(Some) })
            .await?
            .unwrap_or_default();
        Ok(list.iter().take(n as usize).cloned().collect())
    }

    /// Recomputes the hot list and stores it for every process.
    pub async fn refresh_hot(&self) -> Result<(), EngineError> {
        let list = self.compute_hot().await?;
        self.hot.put(HOT_KEY, list).await;
        Ok(())
    }

    async fn compute_hot(&self) -> Result<Vec<HotArticle>, EngineError> {
        let now = self.clock.now();
        let since = now - chrono::Duration::days(HOT_WINDOW_DAYS);
        let mut scored: Vec<HotArticle> = self
            .store
            .published_since(since)
            .await?
            .into_iter()
            .map(|article| {
                let age_hours = (now - article.published_at).num_milliseconds() as f64 / 3.6e6;
                HotArticle { score: hot_score(article.like_count, age_hours), article }
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.article.id.cmp(&b.article.id)));
        scored.truncate(RANKING_MAX as usize);
        Ok(scored)
    }
}

/// Recomputes the hot list every `interval` (one process, under the job's lease).
pub fn hot_ranker(rankings: Arc<Rankings>, interval: Duration) -> BackgroundJob {
    BackgroundJob::every("hot-ranker", interval, move || {
        let rankings = rankings.clone();
        async move {
            if let Err(error) = rankings.refresh_hot().await {
                tracing::warn!(error = %error, "cannot recompute the hot articles; retrying");
            }
        }
    })
}
