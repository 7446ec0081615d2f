//! SQLite implementation of the article repository. Marks take the write lock first (`BEGIN
//! IMMEDIATE`), so a like and its counter change together, in turn.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool};
use surge_core::social::ArticleStatus;
use uuid::Uuid;

use super::{
    ArticleRecord, ArticleRow, ArticleStore, Mark, NewArticle, RankedArticle, RankedRow,
    article_by_id, articles_by_author, articles_published_since, marks_of_user, top_liked_articles,
};
use crate::StoreResult;
use crate::time::to_micros;

#[derive(Clone)]
pub struct SqliteArticles {
    pool: SqlitePool,
}

impl SqliteArticles {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ArticleStore for SqliteArticles {
    async fn create(&self, article: NewArticle) -> StoreResult<()> {
        let now = to_micros(article.created_at);
        sqlx::query(
            "insert into articles (id, author_id, title, content, status, created_at, updated_at)
             values (?, ?, ?, ?, 'draft', ?, ?)",
        )
        .bind(article.id)
        .bind(article.author_id)
        .bind(&article.title)
        .bind(&article.content)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<ArticleRecord>> {
        let row = article_by_id::<Sqlite>(id)
            .build_query_as::<ArticleRow<Sqlite>>()
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(ArticleRow::into_record))
    }

    async fn edit(
        &self,
        id: Uuid,
        author: Uuid,
        title: &str,
        content: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "update articles set title = ?, content = ?, updated_at = ?
             where id = ? and author_id = ?",
        )
        .bind(title)
        .bind(content)
        .bind(to_micros(now))
        .bind(id)
        .bind(author)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn set_status(
        &self,
        id: Uuid,
        author: Uuid,
        status: ArticleStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let published = (status == ArticleStatus::Published).then(|| to_micros(now));
        let changed = sqlx::query(
            "update articles set status = ?, published_at = coalesce(published_at, ?),
                 updated_at = ?
             where id = ? and author_id = ?",
        )
        .bind(status.as_str())
        .bind(published)
        .bind(to_micros(now))
        .bind(id)
        .bind(author)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn by_author(
        &self,
        author: Uuid,
        all: bool,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ArticleRecord>> {
        let rows = articles_by_author::<Sqlite>(author, all, after, limit)
            .build_query_as::<ArticleRow<Sqlite>>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(ArticleRow::into_record).collect())
    }

    async fn mark(
        &self,
        mark: Mark,
        article: Uuid,
        user: Uuid,
        on: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let (table, counter) = mark.names();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let changed = if on {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "insert into {table} (article_id, user_id, created_at) values (?, ?, ?)
                 on conflict do nothing"
            )))
            .bind(article)
            .bind(user)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "delete from {table} where article_id = ? and user_id = ?"
            )))
            .bind(article)
            .bind(user)
            .execute(&mut *tx)
            .await?
        }
        .rows_affected();
        if changed == 1 {
            let step = if on { 1 } else { -1 };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "update articles set {counter} = {counter} + ? where id = ?"
            )))
            .bind(step)
            .bind(article)
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select {counter} from articles where id = ?"
        )))
        .bind(article)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(count)
    }

    async fn marks_of(&self, article: Uuid, user: Uuid) -> StoreResult<(bool, bool)> {
        Ok(marks_of_user::<Sqlite>(article, user).build_query_as().fetch_one(&self.pool).await?)
    }

    /// The embedded server is the only writer of its counts: no batch tokens needed.
    async fn add_reads(
        &self,
        reads: &[(Uuid, i64)],
        _batch: Option<Uuid>,
        _now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (id, count) in reads {
            sqlx::query("update articles set read_count = read_count + ? where id = ?")
                .bind(count)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn top_liked(&self, limit: u32) -> StoreResult<Vec<RankedArticle>> {
        let rows = top_liked_articles::<Sqlite>(limit)
            .build_query_as::<RankedRow<Sqlite>>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(RankedRow::into_ranked).collect())
    }

    async fn published_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<RankedArticle>> {
        let rows = articles_published_since::<Sqlite>(since)
            .build_query_as::<RankedRow<Sqlite>>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(RankedRow::into_ranked).collect())
    }
}
