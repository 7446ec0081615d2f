//! SQLite implementation of the problem repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool};
use surge_core::ratings::Problem;

use super::{
    ProblemCursor, ProblemFilter, ProblemRow, ProblemStore, missing_until_of, problem_by_slug,
    problems_page, tag_slugs, tags_json,
};
use crate::StoreResult;
use crate::time::{from_micros, to_micros};

#[derive(Clone)]
pub struct SqliteProblems {
    pool: SqlitePool,
}

impl SqliteProblems {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ProblemStore for SqliteProblems {
    async fn get(&self, slug: &str) -> StoreResult<Option<Problem>> {
        let row = problem_by_slug::<Sqlite>(slug)
            .build_query_as::<ProblemRow<Sqlite>>()
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(ProblemRow::into_problem))
    }

    async fn missing_until(&self, slug: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let until: Option<i64> = missing_until_of::<Sqlite>(slug)
            .build_query_scalar()
            .fetch_optional(&self.pool)
            .await?;
        Ok(until.map(from_micros))
    }

    async fn save(&self, problem: &Problem) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into problems (slug, question_id, title, difficulty, ac_rate, rating, tags,
                                   fetched_at)
             values (?, ?, ?, ?, ?, ?, ?, ?)
             on conflict (slug) do update set question_id = excluded.question_id,
                 title = excluded.title, difficulty = excluded.difficulty,
                 ac_rate = excluded.ac_rate, rating = excluded.rating, tags = excluded.tags,
                 fetched_at = excluded.fetched_at",
        )
        .bind(&problem.slug)
        .bind(&problem.question_id)
        .bind(&problem.title)
        .bind(&problem.difficulty)
        .bind(problem.ac_rate)
        .bind(problem.rating)
        .bind(tags_json(problem))
        .bind(to_micros(problem.fetched_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query("delete from problem_tags where slug = ?")
            .bind(&problem.slug)
            .execute(&mut *tx)
            .await?;
        for tag in tag_slugs(problem) {
            sqlx::query("insert into problem_tags (tag, rating, slug) values (?, ?, ?)")
                .bind(tag)
                .bind(problem.rating)
                .bind(&problem.slug)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("delete from missing_problems where slug = ?")
            .bind(&problem.slug)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remember_missing(&self, slug: &str, until: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into missing_problems (slug, until) values (?, ?)
             on conflict (slug) do update set until = excluded.until",
        )
        .bind(slug)
        .bind(to_micros(until))
        .execute(&mut *tx)
        .await?;
        sqlx::query("delete from problems where slug = ?").bind(slug).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn page(
        &self,
        filter: &ProblemFilter,
        after: Option<&ProblemCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Problem>> {
        let rows = problems_page::<Sqlite>(filter, after, limit)
            .build_query_as::<ProblemRow<Sqlite>>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(ProblemRow::into_problem).collect())
    }
}
