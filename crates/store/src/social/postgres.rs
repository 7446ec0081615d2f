//! PostgreSQL implementation of the article repository. A mark and its counter change in one
//! transaction; the counter's row lock makes concurrent marks of one article take turns.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};
use surge_core::social::ArticleStatus;
use uuid::Uuid;

use super::{
    ArticleRecord, ArticleRow, ArticleStore, Mark, NewArticle, RankedArticle, RankedRow,
    article_by_id, articles_by_author, articles_published_since, marks_of_user, top_liked_articles,
};
use crate::StoreResult;

#[derive(Clone)]
pub struct PgArticles {
    pool: PgPool,
}

impl PgArticles {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ArticleStore for PgArticles {
    async fn create(&self, article: NewArticle) -> StoreResult<()> {
        let now = article.created_at;
        sqlx::query(
            "insert into articles (id, author_id, title, content, status, created_at, updated_at)
             values ($1, $2, $3, $4, 'draft', $5, $6)",
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
        let row = article_by_id::<Postgres>(id)
            .build_query_as::<ArticleRow<Postgres>>()
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
            "update articles set title = $1, content = $2, updated_at = $3
             where id = $4 and author_id = $5",
        )
        .bind(title)
        .bind(content)
        .bind(now)
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
        let published = (status == ArticleStatus::Published).then_some(now);
        let changed = sqlx::query(
            "update articles set status = $1, published_at = coalesce(published_at, $2),
                 updated_at = $3
             where id = $4 and author_id = $5",
        )
        .bind(status.as_str())
        .bind(published)
        .bind(now)
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
        let rows = articles_by_author::<Postgres>(author, all, after, limit)
            .build_query_as::<ArticleRow<Postgres>>()
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
        let mut tx = self.pool.begin().await?;
        let changed = if on {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "insert into {table} (article_id, user_id, created_at) values ($1, $2, $3)
                 on conflict do nothing"
            )))
            .bind(article)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "delete from {table} where article_id = $1 and user_id = $2"
            )))
            .bind(article)
            .bind(user)
            .execute(&mut *tx)
            .await?
        }
        .rows_affected();
        if changed == 1 {
            let step: i64 = if on { 1 } else { -1 };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "update articles set {counter} = {counter} + $1 where id = $2"
            )))
            .bind(step)
            .bind(article)
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select {counter} from articles where id = $1"
        )))
        .bind(article)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(count)
    }

    async fn marks_of(&self, article: Uuid, user: Uuid) -> StoreResult<(bool, bool)> {
        Ok(marks_of_user::<Postgres>(article, user).build_query_as().fetch_one(&self.pool).await?)
    }

    async fn add_reads(
        &self,
        reads: &[(Uuid, i64)],
        batch: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(token) = batch {
            let fresh = sqlx::query(
                "insert into read_flushes (token, applied_at) values ($1, $2) on conflict do nothing",
            )
            .bind(token)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                return Ok(());
            }
        }
        let (ids, counts): (Vec<Uuid>, Vec<i64>) = reads.iter().copied().unzip();
        sqlx::query(
            "update articles set read_count = read_count + r.n
             from unnest($1::uuid[], $2::bigint[]) as r(id, n) where articles.id = r.id",
        )
        .bind(&ids)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn top_liked(&self, limit: u32) -> StoreResult<Vec<RankedArticle>> {
        let rows = top_liked_articles::<Postgres>(limit)
            .build_query_as::<RankedRow<Postgres>>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(RankedRow::into_ranked).collect())
    }

    async fn published_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<RankedArticle>> {
        let rows = articles_published_since::<Postgres>(since)
            .build_query_as::<RankedRow<Postgres>>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(RankedRow::into_ranked).collect())
    }
}
