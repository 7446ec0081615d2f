//! Social: articles, likes and collects (one per user and article, the article's counter moved
//! in the same transaction, only when the row really changed), read counts applied in batches,
//! and the rankings' queries. Reads are shared by both backends; writes are per backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use surge_core::accounts::UserRef;
use surge_core::social::ArticleStatus;
use uuid::Uuid;

use crate::StoreResult;
use crate::sql::{Arg, DbTime, Dialect, PushArg};

pub mod postgres;
pub mod sqlite;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArticle {
    pub id: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleRecord {
    pub id: Uuid,
    pub author: UserRef,
    pub title: String,
    pub content: String,
    pub status: ArticleStatus,
    pub read_count: i64,
    pub like_count: i64,
    pub collect_count: i64,
    /// When it was first published.
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A published article in a ranking.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RankedArticle {
    pub id: Uuid,
    pub title: String,
    pub like_count: i64,
    pub published_at: DateTime<Utc>,
}

/// What a user may put on an article once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    Like,
    Collect,
}

impl Mark {
    /// The table of marks and the article's counter of them.
    pub(crate) fn names(self) -> (&'static str, &'static str) {
        match self {
            Mark::Like => ("article_likes", "like_count"),
            Mark::Collect => ("article_collects", "collect_count"),
        }
    }
}

#[async_trait]
pub trait ArticleStore: Send + Sync {
    async fn create(&self, article: NewArticle) -> StoreResult<()>;
    async fn get(&self, id: Uuid) -> StoreResult<Option<ArticleRecord>>;
    /// New title and content, if `author` wrote it; false otherwise (or when there is none).
    async fn edit(
        &self,
        id: Uuid,
        author: Uuid,
        title: &str,
        content: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// A new status, if `author` wrote it; publishing the first time sets `published_at`.
    async fn set_status(
        &self,
        id: Uuid,
        author: Uuid,
        status: ArticleStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// `author`'s articles, newest first, after `after`; only published ones unless `all`.
    async fn by_author(
        &self,
        author: Uuid,
        all: bool,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ArticleRecord>>;
    /// Puts (`on`) or takes back `user`'s mark on the article; the article's count after it.
    /// Idempotent: a second like changes nothing.
    async fn mark(
        &self,
        mark: Mark,
        article: Uuid,
        user: Uuid,
        on: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// Whether `user` liked and collected the article.
    async fn marks_of(&self, article: Uuid, user: Uuid) -> StoreResult<(bool, bool)>;
    /// Adds counted reads; with a `batch` token a batch is applied once however often it is
    /// offered (a flush retried after a crash).
    async fn add_reads(
        &self,
        reads: &[(Uuid, i64)],
        batch: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The most liked published articles (then by id), at most `limit`.
    async fn top_liked(&self, limit: u32) -> StoreResult<Vec<RankedArticle>>;
    /// Published articles first published at or after `since`.
    async fn published_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<RankedArticle>>;
}

const ARTICLE_COLUMNS: &str = "a.id, a.author_id, u.nickname as author_nickname, a.title,
     a.content, a.status, a.read_count, a.like_count, a.collect_count, a.published_at,
     a.created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ArticleRow<DB: Dialect> {
    id: Uuid,
    author_id: Uuid,
    author_nickname: String,
    title: String,
    content: String,
    status: String,
    read_count: i64,
    like_count: i64,
    collect_count: i64,
    published_at: Option<DB::Time>,
    created_at: DB::Time,
}

impl<DB: Dialect> ArticleRow<DB> {
    pub(crate) fn into_record(self) -> ArticleRecord {
        ArticleRecord {
            id: self.id,
            author: UserRef { id: self.author_id, nickname: self.author_nickname },
            title: self.title,
            content: self.content,
            // Only the three statuses pass the table's check.
            status: ArticleStatus::parse(&self.status).unwrap_or(ArticleStatus::Draft),
            read_count: self.read_count,
            like_count: self.like_count,
            collect_count: self.collect_count,
            published_at: self.published_at.map(DbTime::utc),
            created_at: self.created_at.utc(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RankedRow<DB: Dialect> {
    id: Uuid,
    title: String,
    like_count: i64,
    published_at: DB::Time,
}

impl<DB: Dialect> RankedRow<DB> {
    pub(crate) fn into_ranked(self) -> RankedArticle {
        RankedArticle {
            id: self.id,
            title: self.title,
            like_count: self.like_count,
            published_at: self.published_at.utc(),
        }
    }
}

pub(crate) fn article_by_id<DB: Dialect>(id: Uuid) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(format!(
        "select {ARTICLE_COLUMNS} from articles a join users u on u.id = a.author_id where a.id = "
    ));
    builder.push_arg(Arg::Id(id));
    builder
}

pub(crate) fn articles_by_author<DB: Dialect>(
    author: Uuid,
    all: bool,
    after: Option<Uuid>,
    limit: u32,
) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(format!(
        "select {ARTICLE_COLUMNS} from articles a join users u on u.id = a.author_id
         where a.author_id = "
    ));
    builder.push_arg(Arg::Id(author));
    if !all {
        builder.push(" and a.status = 'published'");
    }
    if let Some(after) = after {
        builder.push(" and a.id < ").push_arg(Arg::Id(after));
    }
    builder.push(" order by a.id desc limit ").push_arg(Arg::Int(limit.into()));
    builder
}

pub(crate) fn top_liked_articles<DB: Dialect>(limit: u32) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(
        "select id, title, like_count, published_at from articles where status = 'published'
         order by like_count desc, id asc limit ",
    );
    builder.push_arg(Arg::Int(limit.into()));
    builder
}

pub(crate) fn articles_published_since<DB: Dialect>(since: DateTime<Utc>) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(
        "select id, title, like_count, published_at from articles
         where status = 'published' and published_at >= ",
    );
    builder.push_arg(Arg::Time(since));
    builder
}

pub(crate) fn marks_of_user<DB: Dialect>(article: Uuid, user: Uuid) -> QueryBuilder<DB> {
    let mut builder =
        QueryBuilder::new("select exists (select 1 from article_likes where article_id = ");
    builder.push_arg(Arg::Id(article)).push(" and user_id = ").push_arg(Arg::Id(user));
    builder.push("), exists (select 1 from article_collects where article_id = ");
    builder.push_arg(Arg::Id(article)).push(" and user_id = ").push_arg(Arg::Id(user));
    builder.push(")");
    builder
}
