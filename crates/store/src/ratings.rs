//! LeetCode problems as last fetched, and the slugs the upstream said do not exist. Reads are
//! shared by both backends (only the dialect differs); each backend writes in its own module.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use surge_core::ratings::{Problem, Tag};

use crate::StoreResult;
use crate::sql::{Arg, DbTime, Dialect, PushArg};

pub mod postgres;
pub mod sqlite;

/// Which known problems a page lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProblemFilter {
    /// Only problems with this tag (by the tag's slug).
    pub tag: Option<String>,
    pub min_rating: Option<i32>,
    pub max_rating: Option<i32>,
    /// Hardest first; easiest first otherwise.
    pub descending: bool,
}

/// Where a page starts: after this problem in the page's order (rating, then slug).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemCursor {
    pub rating: i32,
    pub slug: String,
}

#[async_trait]
pub trait ProblemStore: Send + Sync {
    async fn get(&self, slug: &str) -> StoreResult<Option<Problem>>;
    /// Until when the upstream's "no such problem" for `slug` is remembered, if it is.
    async fn missing_until(&self, slug: &str) -> StoreResult<Option<DateTime<Utc>>>;
    /// Stores `problem` (replacing an earlier fetch, and forgetting a "no such problem").
    async fn save(&self, problem: &Problem) -> StoreResult<()>;
    /// Remembers until `until` that `slug` does not exist (and drops it if it was known).
    async fn remember_missing(&self, slug: &str, until: DateTime<Utc>) -> StoreResult<()>;
    /// Known problems matching `filter` in rating order (then slug), after `after`.
    async fn page(
        &self,
        filter: &ProblemFilter,
        after: Option<&ProblemCursor>,
        limit: u32,
    ) -> StoreResult<Vec<Problem>>;
}

const PROBLEM_COLUMNS: &str =
    "p.slug, p.question_id, p.title, p.difficulty, p.ac_rate, p.rating, p.tags, p.fetched_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ProblemRow<DB: Dialect> {
    slug: String,
    question_id: String,
    title: String,
    difficulty: String,
    ac_rate: f64,
    rating: i32,
    tags: String,
    fetched_at: DB::Time,
}

impl<DB: Dialect> ProblemRow<DB> {
    pub(crate) fn into_problem(self) -> Problem {
        Problem {
            slug: self.slug,
            question_id: self.question_id,
            title: self.title,
            difficulty: self.difficulty,
            ac_rate: self.ac_rate,
            rating: self.rating,
            // Written by `tags_json` only; unreadable tags read as none rather than failing.
            tags: serde_json::from_str::<Vec<Tag>>(&self.tags).unwrap_or_default(),
            fetched_at: self.fetched_at.utc(),
        }
    }
}

/// The tags as the `tags` column keeps them.
pub(crate) fn tags_json(problem: &Problem) -> String {
    serde_json::to_string(&problem.tags).unwrap_or_else(|_| "[]".to_owned())
}

/// The distinct tag slugs of `problem`, for its `problem_tags` rows.
pub(crate) fn tag_slugs(problem: &Problem) -> Vec<String> {
    let mut slugs: Vec<String> = problem.tags.iter().map(|tag| tag.slug.clone()).collect();
    slugs.sort();
    slugs.dedup();
    slugs
}

pub(crate) fn problem_by_slug<DB: Dialect>(slug: &str) -> QueryBuilder<DB> {
    let mut builder =
        QueryBuilder::new(format!("select {PROBLEM_COLUMNS} from problems p where p.slug = "));
    builder.push_arg(Arg::Text(slug));
    builder
}

/// A page of problems: through `problem_tags` (keyed by tag, rating, slug) when filtered by
/// tag, else through `problems_by_rating`; either way the order is the index's.
pub(crate) fn problems_page<'a, DB: Dialect>(
    filter: &'a ProblemFilter,
    after: Option<&'a ProblemCursor>,
    limit: u32,
) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new(format!("select {PROBLEM_COLUMNS} "));
    let rating = match &filter.tag {
        Some(tag) => {
            builder.push("from problem_tags t join problems p on p.slug = t.slug where t.tag = ");
            builder.push_arg(Arg::Text(tag));
            "t.rating"
        }
        None => {
            builder.push("from problems p where true");
            "p.rating"
        }
    };
    let slug = if filter.tag.is_some() { "t.slug" } else { "p.slug" };
    if let Some(min) = filter.min_rating {
        builder.push(format_args!(" and {rating} >= ")).push_arg(Arg::Int(min.into()));
    }
    if let Some(max) = filter.max_rating {
        builder.push(format_args!(" and {rating} <= ")).push_arg(Arg::Int(max.into()));
    }
    let (beyond, order) = if filter.descending { ("<", "desc") } else { (">", "asc") };
    if let Some(cursor) = after {
        builder.push(format_args!(" and ({rating}, {slug}) {beyond} ("));
        builder.push_arg(Arg::Int(cursor.rating.into())).push(", ");
        builder.push_arg(Arg::Text(&cursor.slug)).push(")");
    }
    builder.push(format_args!(" order by {rating} {order}, {slug} {order} limit "));
    builder.push_arg(Arg::Int(limit.into()));
    builder
}

pub(crate) fn missing_until_of<DB: Dialect>(slug: &str) -> QueryBuilder<DB> {
    let mut builder = QueryBuilder::new("select until from missing_problems where slug = ");
    builder.push_arg(Arg::Text(slug));
    builder
}
