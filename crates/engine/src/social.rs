//! Social's engine pieces: likes and collects ([`MarkCommands`]: through the embedded writer's
//! batches, or one database transaction each), articles kept in memory where this process sees
//! every change ([`ArticleCache`]), read counts that cost no database write per read (counted in
//! memory or Redis, moved into the database in batches every second), and the rankings (the
//! top-liked list cached for half a second in every process; the hot list computed by one
//! process every `social.hot_interval_secs` and served from the cache everywhere).
//!
//! What a crash loses: embedded, the reads counted since the last flush (at most the last
//! second) — a graceful stop flushes them. Distributed, nothing: the counts wait in Redis (AOF)
//! and a flush cut short is offered again, its batch token applied once by PostgreSQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use surge_core::social::{ArticleStatus, visible_to};
use surge_core::social::{HOT_WINDOW_DAYS, RANKING_MAX, hot_score};
use surge_store::StoreResult;
use surge_store::social::{ArticleRecord, ArticleStore, Mark, NewArticle, RankedArticle};
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

/// Puts or takes back likes and collects.
#[async_trait]
pub trait MarkCommands: Send + Sync {
    /// Puts (`on`) or takes back `user`'s mark on the article; the article's count after it.
    /// [`EngineError::NotFound`] when there is no such article or `user` may not see it.
    async fn set(
        &self,
        mark: Mark,
        article: Uuid,
        user: Uuid,
        on: bool,
    ) -> Result<i64, EngineError>;
}

/// Marks as one database transaction each (PostgreSQL, shared by every replica).
pub struct StoreMarks {
    store: Arc<dyn ArticleStore>,
    clock: Arc<dyn Clock>,
}

impl StoreMarks {
    pub fn new(store: Arc<dyn ArticleStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl MarkCommands for StoreMarks {
    async fn set(
        &self,
        mark: Mark,
        article: Uuid,
        user: Uuid,
        on: bool,
    ) -> Result<i64, EngineError> {
        let found = self.store.get(article).await?.ok_or(EngineError::NotFound)?;
        if !visible_to(found.status, found.author.id, Some(user)) {
            return Err(EngineError::NotFound);
        }
        Ok(self.store.mark(mark, article, user, on, self.clock.now()).await?)
    }
}

/// The most article text kept in memory (titles and contents, in bytes).
const ARTICLE_CACHE_BYTES: u64 = 64 << 20;

/// Articles by id, kept in memory by a process that sees every change to them (the embedded
/// server). A change to the text or status forgets its article once committed; a committed
/// like or collect sets the new count in place (the writer, in commit order). A load that
/// raced a change is not kept, so a withdrawn article or an old count is never served from here.
pub struct ArticleCache {
    entries: moka::sync::Cache<Uuid, Arc<ArticleRecord>>,
    /// Counts changes; a load that saw it move may hold the state before the change.
    changes: AtomicU64,
}

impl Default for ArticleCache {
    fn default() -> Self {
        let entries = moka::sync::Cache::builder()
            .weigher(|_, article: &Arc<ArticleRecord>| {
                (article.title.len() + article.content.len() + 256).try_into().unwrap_or(u32::MAX)
            })
            .max_capacity(ARTICLE_CACHE_BYTES)
            .build();
        Self { entries, changes: AtomicU64::new(0) }
    }
}

impl ArticleCache {
    /// The article from memory, else from `store` (kept unless a change raced the load).
    pub async fn get(
        &self,
        store: &dyn ArticleStore,
        id: Uuid,
    ) -> StoreResult<Option<ArticleRecord>> {
        if let Some(hit) = self.entries.get(&id) {
            return Ok(Some(ArticleRecord::clone(&hit)));
        }
        let before = self.changes.load(Ordering::SeqCst);
        let Some(article) = store.get(id).await? else { return Ok(None) };
        self.entries.insert(id, Arc::new(article.clone()));
        // A change that committed after the load began either moved the counter before this
        // check (so the entry goes now) or removes or rewrites the entry itself after this
        // insert.
        if self.changes.load(Ordering::SeqCst) != before {
            self.entries.invalidate(&id);
        }
        Ok(Some(article))
    }

    /// Forgets the article after a committed change.
    pub fn forget(&self, id: Uuid) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(&id);
    }

    /// Sets a cached article's count of `mark` after a committed like or collect (the counts
    /// arrive in commit order, from the writer).
    pub fn set_count(&self, id: Uuid, mark: Mark, count: i64) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        let Some(cached) = self.entries.get(&id) else { return };
        let mut article = ArticleRecord::clone(&cached);
        match mark {
            Mark::Like => article.like_count = count,
            Mark::Collect => article.collect_count = count,
        }
        self.entries.insert(id, Arc::new(article));
    }
}

/// An [`ArticleStore`] that reads articles through an [`ArticleCache`] and forgets them on
/// every change it makes (the embedded server, where every other change is a mark through the
/// writer, which sets the cached counts).
pub struct CachedArticles {
    store: Arc<dyn ArticleStore>,
    cache: Arc<ArticleCache>,
}

impl CachedArticles {
    pub fn new(store: Arc<dyn ArticleStore>, cache: Arc<ArticleCache>) -> Self {
        Self { store, cache }
    }
}

#[async_trait]
impl ArticleStore for CachedArticles {
    async fn create(&self, article: NewArticle) -> StoreResult<()> {
        self.store.create(article).await
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<ArticleRecord>> {
        self.cache.get(self.store.as_ref(), id).await
    }

    async fn edit(
        &self,
        id: Uuid,
        author: Uuid,
        title: &str,
        content: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = self.store.edit(id, author, title, content, now).await;
        self.cache.forget(id);
        changed
    }

    async fn set_status(
        &self,
        id: Uuid,
        author: Uuid,
        status: ArticleStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = self.store.set_status(id, author, status, now).await;
        self.cache.forget(id);
        changed
    }

    async fn by_author(
        &self,
        author: Uuid,
        all: bool,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ArticleRecord>> {
        self.store.by_author(author, all, after, limit).await
    }

    async fn mark(
        &self,
        mark: Mark,
        article: Uuid,
        user: Uuid,
        on: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let count = self.store.mark(mark, article, user, on, now).await;
        self.cache.forget(article);
        count
    }

    async fn marks_of(&self, article: Uuid, user: Uuid) -> StoreResult<(bool, bool)> {
        self.store.marks_of(article, user).await
    }

    async fn add_reads(
        &self,
        reads: &[(Uuid, i64)],
        batch: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        // Cached articles keep their stored read count: readers add the pending reads, so a
        // flush moves reads from one side to the other and the entry goes.
        let added = self.store.add_reads(reads, batch, now).await;
        for (id, _) in reads {
            self.cache.forget(*id);
        }
        added
    }

    async fn top_liked(&self, limit: u32) -> StoreResult<Vec<RankedArticle>> {
        self.store.top_liked(limit).await
    }

    async fn published_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<RankedArticle>> {
        self.store.published_since(since).await
    }
}

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
        let list = self.top_liked_list().await?;
        Ok(list.iter().take(n as usize).cloned().collect())
    }

    /// The cached top-liked list (the 100 most liked): the same `Arc` until the cache reloads
    /// it, so a caller may keep what it derives from one list (a rendered answer) until then.
    pub async fn top_liked_list(&self) -> Result<Arc<Vec<RankedArticle>>, EngineError> {
        let store = &self.store;
        let list = self
            .top
            .get_or_load(HOT_KEY, || async {
                Ok::<_, EngineError>(Some(store.top_liked(RANKING_MAX).await?))
            })
            .await?;
        Ok(list.unwrap_or_default())
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
