//! SQLite implementation of the article repository, and the embedded writer's view of it
//! ([`ArticleLedger`]: a batch's likes and collects written together). A mark's counter moves
//! through the mark table's triggers, in the statement that inserts or deletes the mark.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use surge_core::social::{ArticleStatus, visible_to};
use uuid::Uuid;

use super::{
    ArticleRecord, ArticleRow, ArticleStore, Mark, NewArticle, RankedArticle, RankedRow,
    article_by_id, articles_by_author, articles_published_since, marks_of_user, top_liked_articles,
};
use crate::StoreResult;
use crate::ledger::SqliteLedger;
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
        let mut conn = self.pool.acquire().await?;
        set_mark(&mut conn, mark, article, user, on, now).await
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

/// Puts or takes back one mark on `conn`, and the article's count after it. The insert or
/// delete moves the counter through the table's trigger (migration 0015), only when a row
/// really changed.
async fn set_mark(
    conn: &mut SqliteConnection,
    mark: Mark,
    article: Uuid,
    user: Uuid,
    on: bool,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let (table, counter) = mark.names();
    if on {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "insert into {table} (article_id, user_id, created_at) values (?, ?, ?)
             on conflict do nothing"
        )))
        .bind(article)
        .bind(user)
        .bind(to_micros(now))
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "delete from {table} where article_id = ? and user_id = ?"
        )))
        .bind(article)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    }
    let count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select {counter} from articles where id = ?"
    )))
    .bind(article)
    .fetch_one(&mut *conn)
    .await?;
    Ok(count)
}

impl SqliteLedger {
    /// The social statements of the embedded writer, inside its current batch.
    pub fn articles(&mut self) -> ArticleLedger<'_> {
        ArticleLedger { conn: self.connection() }
    }
}

/// One like or collect put (`on`) or taken back, as the embedded writer batches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRequest {
    pub mark: Mark,
    pub article: Uuid,
    pub user: Uuid,
    pub on: bool,
}

/// Users per `in (…)` list or multi-row insert: far below SQLite's bind limit.
const USERS_PER_STATEMENT: usize = 500;

/// Like and collect writes on the embedded writer's connection: they commit with the batch.
pub struct ArticleLedger<'c> {
    conn: &'c mut SqliteConnection,
}

impl ArticleLedger<'_> {
    /// Applies a batch's marks in order, as a few statements per article and kind of mark
    /// rather than one or two per mark: the marks already there are read at once, the batch is
    /// played in memory (so a like then an unlike by one user in one batch is two changes and
    /// a repeat is none), and only the difference is written, the counter moved by the
    /// triggers. Answers the count after each mark, in order; `None` where the article does
    /// not exist or its user may not see it (a draft or withdrawn article of someone else's):
    /// nothing written for those. Checked here, in the batch, a withdrawal and a like cannot
    /// cross.
    pub async fn apply_marks(
        &mut self,
        requests: &[MarkRequest],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Option<i64>>> {
        let mut groups: HashMap<(Uuid, Mark), Vec<usize>> = HashMap::new();
        for (at, request) in requests.iter().enumerate() {
            groups.entry((request.article, request.mark)).or_default().push(at);
        }
        let mut answers = vec![None; requests.len()];
        for ((article, mark), members) in groups {
            let (table, counter) = mark.names();
            let found: Option<(i64, String, Uuid)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select {counter}, status, author_id from articles where id = ?"
            )))
            .bind(article)
            .fetch_optional(&mut *self.conn)
            .await?;
            let Some((mut count, status, author)) = found else { continue };
            // Only the three statuses pass the table's check.
            let status = ArticleStatus::parse(&status).unwrap_or(ArticleStatus::Draft);
            // Those who may not see the article get no answer, and write nothing.
            let members: Vec<usize> = members
                .into_iter()
                .filter(|&at| visible_to(status, author, Some(requests[at].user)))
                .collect();
            let users: Vec<Uuid> = members
                .iter()
                .map(|&at| requests[at].user)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let before = self.marked(table, article, &users).await?;
            let mut present = before.clone();
            for &at in &members {
                let request = &requests[at];
                let changed = if request.on {
                    present.insert(request.user)
                } else {
                    present.remove(&request.user)
                };
                if changed {
                    count += if request.on { 1 } else { -1 };
                }
                answers[at] = Some(count);
            }
            let added: Vec<Uuid> = present.difference(&before).copied().collect();
            let removed: Vec<Uuid> = before.difference(&present).copied().collect();
            for chunk in added.chunks(USERS_PER_STATEMENT) {
                let mut insert = QueryBuilder::<Sqlite>::new(format!(
                    "insert into {table} (article_id, user_id, created_at) "
                ));
                insert.push_values(chunk, |mut row, user| {
                    row.push_bind(article).push_bind(*user).push_bind(to_micros(now));
                });
                insert.build().execute(&mut *self.conn).await?;
            }
            for chunk in removed.chunks(USERS_PER_STATEMENT) {
                let mut delete =
                    QueryBuilder::<Sqlite>::new(format!("delete from {table} where article_id = "));
                delete.push_bind(article).push(" and user_id in (");
                let mut users = delete.separated(", ");
                for user in chunk {
                    users.push_bind(*user);
                }
                delete.push(")");
                delete.build().execute(&mut *self.conn).await?;
            }
        }
        Ok(answers)
    }

    /// Which of `users` have a mark in `table` on the article.
    async fn marked(
        &mut self,
        table: &str,
        article: Uuid,
        users: &[Uuid],
    ) -> StoreResult<HashSet<Uuid>> {
        let mut marked = HashSet::new();
        for chunk in users.chunks(USERS_PER_STATEMENT) {
            let mut select = QueryBuilder::<Sqlite>::new(format!(
                "select user_id from {table} where article_id = "
            ));
            select.push_bind(article).push(" and user_id in (");
            let mut listed = select.separated(", ");
            for user in chunk {
                listed.push_bind(*user);
            }
            select.push(")");
            let rows: Vec<Uuid> = select.build_query_scalar().fetch_all(&mut *self.conn).await?;
            marked.extend(rows);
        }
        Ok(marked)
    }
}
