//! Ratings: LeetCode problems looked up by slug (from the caches, the database or the upstream),
//! in batches, and listed. A slow or failing upstream makes a lookup "pending" (202 with
//! `Retry-After`) while a durable job fetches it; see `surge_engine::ratings`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use surge_core::ratings::{MAX_BATCH, Problem as ProblemRecord, Tag, valid_slug};
use surge_core::validation::FieldErrors;
use surge_engine::ratings::{Lookup, ProblemLookup};
use surge_store::ratings::{ProblemCursor, ProblemFilter};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::pagination::{self, Page};

/// The ratings routes, for any state that holds a [`RatingsState`].
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    RatingsState: FromRef<S>,
{
    Router::new()
        .route("/api/v1/problems", get(list))
        .route("/api/v1/problems/batch", post(batch))
        .route("/api/v1/problems/{slug}", get(get_problem))
}

/// What the ratings handlers reach. Cloning is cheap.
#[derive(Clone)]
pub struct RatingsState(pub Arc<ProblemLookup>);

/// A problem with its rating.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    pub slug: String,
    pub title: String,
    /// `Easy`, `Medium` or `Hard`, as the upstream says.
    pub difficulty: String,
    /// The acceptance rate as a fraction (0.557).
    pub ac_rate: f64,
    /// `round(1300 + 1700 × (1 − clamp(ac_rate, 0.01, 0.99)))`.
    pub rating: i32,
    #[schema(value_type = Vec<TagView>)]
    pub tags: Vec<Tag>,
    pub fetched_at: DateTime<Utc>,
}

/// A topic tag.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagView {
    pub name: String,
    pub slug: String,
}

impl Problem {
    fn from_record(problem: &ProblemRecord) -> Self {
        Self {
            slug: problem.slug.clone(),
            title: problem.title.clone(),
            difficulty: problem.difficulty.clone(),
            ac_rate: problem.ac_rate,
            rating: problem.rating,
            tags: problem.tags.clone(),
            fetched_at: problem.fetched_at,
        }
    }
}

/// The upstream is slow or failing: a job is fetching the problem; ask again after
/// `Retry-After` seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pending {
    /// Always `pending`.
    pub status: String,
}

#[utoipa::path(get, path = "/api/v1/problems/{slug}", tag = "ratings",
    params(("slug" = String, Path, description = "`^[a-z0-9-]{1,100}$`")),
    responses((status = 200, body = Problem),
        (status = 202, body = Pending, headers(("Retry-After" = u64))),
        (status = 404, description = "`problem_not_found`: the upstream says it does not exist (remembered 10 minutes)"),
        (status = 422, description = "not a slug")))]
pub async fn get_problem(
    State(state): State<RatingsState>,
    Path(slug): Path<String>,
) -> ApiResult<Response> {
    if !valid_slug(&slug) {
        return Err(ApiError::field("slug", "must match ^[a-z0-9-]{1,100}$"));
    }
    Ok(match state.0.get(&slug).await? {
        Lookup::Found(problem) => Json(Problem::from_record(&problem)).into_response(),
        Lookup::Missing => return Err(not_found(&slug)),
        Lookup::Pending => pending(&state),
    })
}

fn not_found_message(slug: &str) -> String {
    format!("LeetCode has no problem `{slug}`")
}

fn not_found(slug: &str) -> ApiError {
    ApiError::Conflict {
        status: StatusCode::NOT_FOUND,
        code: "problem_not_found",
        message: not_found_message(slug),
        extra: Default::default(),
    }
}

fn pending(state: &RatingsState) -> Response {
    let retry_after = state.0.settings().retry_after_secs();
    let mut response =
        (StatusCode::ACCEPTED, Json(Pending { status: "pending".into() })).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// At most 50 slugs; each gets its own item, in order.
    pub slugs: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// Per slug: a problem, `{slug, status: "pending"}`, or `{slug, error: {code, message}}`
    /// (`problem_not_found`, `invalid_slug`).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
}

#[utoipa::path(post, path = "/api/v1/problems/batch", tag = "ratings", request_body = BatchRequest,
    responses((status = 200, body = BatchAnswer),
        (status = 422, description = "more than 50 slugs, or `slugs` is not a list")))]
pub async fn batch(
    State(state): State<RatingsState>,
    Json(request): Json<BatchRequest>,
) -> ApiResult<Json<BatchAnswer>> {
    if request.slugs.len() > MAX_BATCH {
        return Err(ApiError::field("slugs", format!("at most {MAX_BATCH} slugs")));
    }
    let lookup = &state.0;
    let lookups = request.slugs.iter().map(|slug| async move {
        let Some(slug) = slug.as_str().filter(|slug| valid_slug(slug)) else {
            return Ok(json!({
                "slug": slug,
                "error": { "code": "invalid_slug", "message": "must match ^[a-z0-9-]{1,100}$" },
            }));
        };
        Ok::<_, ApiError>(match lookup.get(slug).await? {
            Lookup::Found(problem) => json!(Problem::from_record(&problem)),
            Lookup::Missing => json!({
                "slug": slug,
                "error": { "code": "problem_not_found", "message": not_found_message(slug) },
            }),
            Lookup::Pending => json!({ "slug": slug, "status": "pending" }),
        })
    });
    let items = join_all(lookups).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Json(BatchAnswer { items }))
}

/// The highest `min_rating` / `max_rating` accepted (ratings run from 1317 to 2983).
pub const MAX_RATING_FILTER: i64 = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only problems with this topic tag (its slug: `array`, `dynamic-programming`).
    pub tag: Option<String>,
    pub min_rating: Option<i64>,
    pub max_rating: Option<i64>,
    /// `rating` (easiest first, the default) or `-rating` (hardest first).
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/problems", tag = "ratings", params(ListParams),
    responses((status = 200, body = inline(Page<Problem>), description = "known problems (fetched at least once), by rating then slug"),
        (status = 422, description = "a bad `tag`, `min_rating`/`max_rating` outside 0–10,000, `sort`, `limit` or `cursor`")))]
pub async fn list(
    State(state): State<RatingsState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Page<Problem>>> {
    let mut errors = FieldErrors::new();
    let rating = |field: &str, value: Option<i64>, errors: &mut FieldErrors| match value {
        Some(n) if !(0..=MAX_RATING_FILTER).contains(&n) => {
            errors.add(field, format!("must be between 0 and {MAX_RATING_FILTER}"));
            None
        }
        other => other.map(|n| n as i32),
    };
    let min_rating = rating("min_rating", params.min_rating, &mut errors);
    let max_rating = rating("max_rating", params.max_rating, &mut errors);
    let descending = match params.sort.as_deref() {
        None | Some("rating") => false,
        Some("-rating") => true,
        Some(_) => {
            errors.add("sort", "must be `rating` or `-rating`");
            false
        }
    };
    if let Some(tag) = &params.tag
        && !valid_slug(tag)
    {
        errors.add("tag", "must be a tag slug (^[a-z0-9-]{1,100}$)");
    }
    let limit = pagination::limit(params.limit).map_err(|e| errors.merge(e));
    let after: Option<ProblemCursor> = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => match pagination::decode_cursor::<(i32, String)>(cursor) {
            Ok((rating, slug)) => Some(ProblemCursor { rating, slug }),
            Err(_) => {
                errors.add("cursor", "is not a cursor this endpoint issued");
                None
            }
        },
    };
    let Ok(limit) = limit else { return Err(errors.into()) };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let filter = ProblemFilter { tag: params.tag, min_rating, max_rating, descending };
    let rows = state.0.store().page(&filter, after.as_ref(), limit + 1).await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |problem| pagination::encode_cursor(&(problem.rating, &problem.slug)),
        |problem| Problem::from_record(&problem),
    )))
}
