//! PostgreSQL implementation of the problem repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};
use surge_core::ratings::Problem;

use super::{
    ProblemCursor, ProblemFilter, ProblemRow, ProblemStore, missing_until_of, problem_by_slug,
    problems_page, tag_slugs, tags_json,
};
use crate::StoreResult;

#[derive(Clone)]
pub struct PgProblems {
    pool: PgPool,
}

impl PgProblems {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ProblemStore for PgProblems {
    async fn get(&self, slug: &str) -> StoreResult<Option<Problem>> {
        let row = problem_by_slug::<Postgres>(slug)
            .build_query_as::<ProblemRow<Postgres>>()
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(ProblemRow::into_problem))
    }

    async fn missing_until(&self, slug: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(missing_until_of::<Postgres>(slug)
            .build_query_scalar()
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The problem's row is written first: replicas saving one slug at once queue on it.
    async fn save(&self, problem: &Problem) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into problems (slug, question_id, title, difficulty, ac_rate, rating, tags,
                                   fetched_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)
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
        .bind(problem.fetched_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("delete from problem_tags where slug = $1")
            .bind(&problem.slug)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into problem_tags (tag, rating, slug)
             select tag, $2, $1 from unnest($3::text[]) as tag",
        )
        .bind(&problem.slug)
        .bind(problem.rating)
        .bind(tag_slugs(problem))
        .execute(&mut *tx)
        .await?;
        sqlx::query("delete from missing_problems where slug = $1")
            .bind(&problem.slug)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remember_missing(&self, slug: &str, until: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "with gone as (delete from problems where slug = $1)
             insert into missing_problems (slug, until) values ($1, $2)
             on conflict (slug) do update set until = excluded.until",
        )
        .bind(slug)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn page(
        &self,
        filter: &ProblemFilter,
        after: Option<&ProblemCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Problem>> {
        let rows = problems_page::<Postgres>(filter, after, limit)
            .build_query_as::<ProblemRow<Postgres>>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(ProblemRow::into_problem).collect())
    }
}
