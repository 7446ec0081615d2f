//! Social: articles (draft → published ⇄ private), who may see them, likes and collects, reads
//! counted without a database write each, and the top-liked and hot rankings.
//!
//! Visibility is one rule (`surge_core::social::visible_to`) applied on every path: a draft or
//! withdrawn article is 404 to everyone but its author — reading, liking, collecting, and its
//! author's list alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use surge_core::accounts::UserRef;
use surge_core::social::{ArticleStatus, RANKING_MAX, validate_article, visible_to};
use surge_engine::clock::Clock;
use surge_engine::social::{MarkCommands, Rankings, ReadCounter};
use surge_store::social::{ArticleRecord, ArticleStore, Mark, NewArticle, RankedArticle};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts::authenticator::Authenticator;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, Json, Path, Query};
use crate::pagination::{self, Page, PageParams};
use crate::response::created;

/// The social routes, for any state that holds a [`SocialState`].
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    SocialState: FromRef<S>,
    Arc<Authenticator>: FromRef<S>,
{
    // An article of 100,000 characters is up to 600 kB of JSON (escaped), beyond the default.
    let articles = DefaultBodyLimit::max(ARTICLE_BODY_MAX);
    Router::new()
        .route("/api/v1/articles", post(create).layer(articles))
        .route("/api/v1/articles/top-liked", get(top_liked))
        .route("/api/v1/articles/hot", get(hot))
        .route("/api/v1/articles/{id}", get(read).put(edit).layer(articles))
        .route("/api/v1/articles/{id}/publish", post(publish))
        .route("/api/v1/articles/{id}/withdraw", post(withdraw))
        .route("/api/v1/articles/{id}/like", put(like).delete(unlike))
        .route("/api/v1/articles/{id}/collect", put(collect).delete(uncollect))
        .route("/api/v1/users/{id}/articles", get(by_author))
}

/// The largest article request body: 100,000 characters of content, each escaped to six bytes
/// at worst, and a title.
pub const ARTICLE_BODY_MAX: usize = 1 << 20;

/// What the social handlers reach. Cloning is cheap.
#[derive(Clone)]
pub struct SocialState(Arc<SocialServices>, Arc<RenderedTop>);

impl SocialState {
    pub fn new(services: SocialServices) -> Self {
        Self(Arc::new(services), Arc::default())
    }

    pub fn store(&self) -> &Arc<dyn ArticleStore> {
        &self.0.store
    }

    /// Recomputes the hot list now (after seeding, say), rather than at the next interval.
    pub async fn refresh_rankings(&self) {
        if let Err(error) = self.0.rankings.refresh_hot().await {
            tracing::warn!(error = %error, "cannot compute the hot articles");
        }
    }

    /// Moves the counted reads into the database (at shutdown).
    pub async fn flush_reads(&self) {
        if let Err(error) = self.0.reads.flush().await {
            tracing::warn!(error = %error, "cannot flush the read counts at shutdown");
        }
    }
}

pub struct SocialServices {
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn ArticleStore>,
    pub marks: Arc<dyn MarkCommands>,
    pub reads: Arc<dyn ReadCounter>,
    pub rankings: Arc<Rankings>,
}

/// An article as its reader sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Article {
    pub id: Uuid,
    #[schema(value_type = crate::auctions::Person)]
    pub author: UserRef,
    pub title: String,
    pub content: String,
    /// `draft`, `published` or `private`.
    pub status: String,
    pub read_count: i64,
    pub like_count: i64,
    pub collect_count: i64,
    /// Whether the caller liked / collected it (false without a token).
    pub liked: bool,
    pub collected: bool,
    pub published_at: Option<DateTime<Utc>>,
}

impl Article {
    fn of(record: ArticleRecord, marks: (bool, bool)) -> Self {
        Self {
            id: record.id,
            author: record.author,
            title: record.title,
            content: record.content,
            status: record.status.as_str().to_owned(),
            read_count: record.read_count,
            like_count: record.like_count,
            collect_count: record.collect_count,
            liked: marks.0,
            collected: marks.1,
            published_at: record.published_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ArticleRequest {
    /// 1–200 characters (trimmed).
    pub title: String,
    /// At most 100,000 characters.
    #[serde(default)]
    pub content: String,
}

/// The article `id` if `viewer` may see it; 404 otherwise (whether or not it exists).
async fn visible(state: &SocialState, id: Uuid, viewer: Option<Uuid>) -> ApiResult<ArticleRecord> {
    let article = state.0.store.get(id).await?.ok_or(ApiError::NotFound)?;
    if visible_to(article.status, article.author.id, viewer) {
        Ok(article)
    } else {
        Err(ApiError::NotFound)
    }
}

async fn marks(state: &SocialState, id: Uuid, viewer: Option<Uuid>) -> ApiResult<(bool, bool)> {
    match viewer {
        Some(user) => Ok(state.0.store.marks_of(id, user).await?),
        None => Ok((false, false)),
    }
}

/// Write an article: it starts as a draft, seen by its author alone.
#[utoipa::path(post, path = "/api/v1/articles", tag = "social", security(("bearer" = [])),
    request_body = ArticleRequest,
    responses((status = 201, body = Article, headers(("Location" = String))), (status = 422)))]
pub async fn create(
    State(state): State<SocialState>,
    user: AuthUser,
    Json(request): Json<ArticleRequest>,
) -> ApiResult<Response> {
    let valid = validate_article(&request.title, &request.content)?;
    let id = Uuid::now_v7();
    let article = NewArticle {
        id,
        author_id: user.id,
        title: valid.title,
        content: valid.content,
        created_at: state.0.clock.now(),
    };
    state.0.store.create(article).await?;
    let record = state.0.store.get(id).await?.ok_or(ApiError::NotFound)?;
    Ok(created(format!("/api/v1/articles/{id}"), Article::of(record, (false, false))))
}

/// Read an article (published, or your own); every read is counted.
#[utoipa::path(get, path = "/api/v1/articles/{id}", tag = "social", params(("id" = Uuid, Path)),
    responses((status = 200, body = Article), (status = 404, description = "no such article, or a draft or withdrawn one of someone else")))]
pub async fn read(
    State(state): State<SocialState>,
    user: Option<AuthUser>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Article>> {
    let viewer = user.map(|u| u.id);
    let mut record = visible(&state, id, viewer).await?;
    record.read_count += state.0.reads.count(id).await?;
    let marks = marks(&state, id, viewer).await?;
    Ok(Json(Article::of(record, marks)))
}

/// Change your article's title and content (the rules of a new one).
#[utoipa::path(put, path = "/api/v1/articles/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ArticleRequest,
    responses((status = 200, body = Article), (status = 404, description = "not an article of yours"), (status = 422)))]
pub async fn edit(
    State(state): State<SocialState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(request): Json<ArticleRequest>,
) -> ApiResult<Json<Article>> {
    let valid = validate_article(&request.title, &request.content)?;
    let now = state.0.clock.now();
    if !state.0.store.edit(id, user.id, &valid.title, &valid.content, now).await? {
        return Err(ApiError::NotFound);
    }
    own_article(&state, id, user.id).await
}

async fn own_article(state: &SocialState, id: Uuid, author: Uuid) -> ApiResult<Json<Article>> {
    let record = visible(state, id, Some(author)).await?;
    let marks = marks(state, id, Some(author)).await?;
    Ok(Json(Article::of(record, marks)))
}

async fn set_status(
    state: &SocialState,
    user: &AuthUser,
    id: Uuid,
    status: ArticleStatus,
) -> ApiResult<Json<Article>> {
    if !state.0.store.set_status(id, user.id, status, state.0.clock.now()).await? {
        return Err(ApiError::NotFound);
    }
    own_article(state, id, user.id).await
}

/// Publish your article: everyone can read, like and collect it.
#[utoipa::path(post, path = "/api/v1/articles/{id}/publish", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Article), (status = 404, description = "not an article of yours")))]
pub async fn publish(
    State(state): State<SocialState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Article>> {
    set_status(&state, &user, id, ArticleStatus::Published).await
}

/// Withdraw your article: private, seen by you alone again (its likes are kept).
#[utoipa::path(post, path = "/api/v1/articles/{id}/withdraw", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Article), (status = 404, description = "not an article of yours")))]
pub async fn withdraw(
    State(state): State<SocialState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Article>> {
    set_status(&state, &user, id, ArticleStatus::Private).await
}

/// After a like or unlike.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liked {
    pub liked: bool,
    pub like_count: i64,
}

/// After a collect or uncollect.
#[derive(Debug, Serialize, ToSchema)]
pub struct Collected {
    pub collected: bool,
    pub collect_count: i64,
}

async fn set_mark(
    state: &SocialState,
    user: &AuthUser,
    id: Uuid,
    mark: Mark,
    on: bool,
) -> ApiResult<i64> {
    // The marks check that the caller may see the article (404 otherwise).
    Ok(state.0.marks.set(mark, id, user.id, on).await?)
}

/// Like an article (again: no change).
#[utoipa::path(put, path = "/api/v1/articles/{id}/like", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Liked), (status = 404)))]
pub async fn like(
    State(state): State<SocialState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Liked>> {
    let like_count = set_mark(&state, &user, id, Mark::Like, true).await?;
    Ok(Json(Liked { liked: true, like_count }))
}

/// Take your like back (none: no change).
#[utoipa::path(delete, path = "/api/v1/articles/{id}/like", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Liked), (status = 404)))]
pub async fn unlike(
    State(state): State<SocialState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Liked>> {
    let like_count = set_mark(&state, &user, id, Mark::Like, false).await?;
    Ok(Json(Liked { liked: false, like_count }))
}

/// Collect an article (again: no change).
#[utoipa::path(put, path = "/api/v1/articles/{id}/collect", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Collected), (status = 404)))]
pub async fn collect(
    State(state): State<SocialState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Collected>> {
    let collect_count = set_mark(&state, &user, id, Mark::Collect, true).await?;
    Ok(Json(Collected { collected: true, collect_count }))
}

/// Take an article out of your collection (not in it: no change).
#[utoipa::path(delete, path = "/api/v1/articles/{id}/collect", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Collected), (status = 404)))]
pub async fn uncollect(
    State(state): State<SocialState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Collected>> {
    let collect_count = set_mark(&state, &user, id, Mark::Collect, false).await?;
    Ok(Json(Collected { collected: false, collect_count }))
}

/// An article in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArticleSummary {
    pub id: Uuid,
    pub title: String,
    pub status: String,
    pub read_count: i64,
    pub like_count: i64,
    pub collect_count: i64,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A user's articles, newest first: all of them for the author, the published ones for others.
#[utoipa::path(get, path = "/api/v1/users/{id}/articles", tag = "social",
    params(("id" = Uuid, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = inline(Page<ArticleSummary>)),
        (status = 422, description = "`limit` outside 1–100, or a `cursor` this list did not issue")))]
pub async fn by_author(
    State(state): State<SocialState>,
    user: Option<AuthUser>,
    Path(author): Path<Uuid>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Page<ArticleSummary>>> {
    let limit = pagination::limit(params.limit)?;
    let after = params.cursor.as_deref().map(pagination::decode_cursor::<Uuid>).transpose()?;
    let all = user.is_some_and(|u| u.id == author);
    let rows = state.0.store.by_author(author, all, after, limit + 1).await?;
    Ok(Json(pagination::page(
        rows,
        limit,
        |article| pagination::encode_cursor(&article.id),
        |article| ArticleSummary {
            id: article.id,
            title: article.title,
            status: article.status.as_str().to_owned(),
            read_count: article.read_count,
            like_count: article.like_count,
            collect_count: article.collect_count,
            published_at: article.published_at,
            created_at: article.created_at,
        },
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RankingParams {
    /// 1–100 (default 10).
    pub n: Option<i64>,
}

fn ranking_size(n: Option<i64>) -> ApiResult<u32> {
    match n {
        None => Ok(10),
        Some(n) if (1..=i64::from(RANKING_MAX)).contains(&n) => Ok(n as u32),
        Some(_) => Err(ApiError::field("n", format!("must be between 1 and {RANKING_MAX}"))),
    }
}

/// A published article in a ranking.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ranked {
    pub id: Uuid,
    pub title: String,
    pub like_count: i64,
    /// The hot score (`(likes − 1) / (age_hours + 2)^1.8`); only in the hot list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ranking {
    pub items: Vec<Ranked>,
}

/// The most liked published articles (then by id); a like shows here within a second on every
/// replica.
#[utoipa::path(get, path = "/api/v1/articles/top-liked", tag = "social", params(RankingParams),
    responses((status = 200, body = Ranking), (status = 422)))]
pub async fn top_liked(
    State(state): State<SocialState>,
    Query(params): Query<RankingParams>,
) -> ApiResult<Response> {
    let n = ranking_size(params.n)?;
    let list = state.0.rankings.top_liked_list().await?;
    let body = state.1.body(&list, n)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The top-liked answers rendered from the current cached list, one per `n` asked: the list
/// changes at most every 500 ms, and everyone between asks the same few `n`.
#[derive(Default)]
pub struct RenderedTop(Mutex<Option<Rendered>>);

/// A top-liked list and its answers by `n`.
type Rendered = (Arc<Vec<RankedArticle>>, HashMap<u32, Bytes>);

impl RenderedTop {
    fn body(&self, list: &Arc<Vec<RankedArticle>>, n: u32) -> ApiResult<Bytes> {
        let mut rendered = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bodies = match &mut *rendered {
            Some((of, bodies)) if Arc::ptr_eq(of, list) => bodies,
            _ => &mut rendered.insert((list.clone(), HashMap::new())).1,
        };
        if let Some(body) = bodies.get(&n) {
            return Ok(body.clone());
        }
        let items = list
            .iter()
            .take(n as usize)
            .map(|a| Ranked {
                id: a.id,
                title: a.title.clone(),
                like_count: a.like_count,
                score: None,
            })
            .collect();
        let body = Bytes::from(
            serde_json::to_vec(&Ranking { items })
                .map_err(|e| ApiError::Internal(format!("ranking not serialisable: {e}")))?,
        );
        bodies.insert(n, body.clone());
        Ok(body)
    }
}

/// The hottest articles of the last week by `(likes − 1) / (age_hours + 2)^1.8`, recomputed
/// every `social.hot_interval_secs` by one replica.
#[utoipa::path(get, path = "/api/v1/articles/hot", tag = "social", params(RankingParams),
    responses((status = 200, body = Ranking), (status = 422)))]
pub async fn hot(
    State(state): State<SocialState>,
    Query(params): Query<RankingParams>,
) -> ApiResult<Json<Ranking>> {
    let n = ranking_size(params.n)?;
    let items = state.0.rankings.hot(n).await?;
    let items = items
        .into_iter()
        .map(|h| Ranked {
            id: h.article.id,
            title: h.article.title,
            like_count: h.article.like_count,
            score: Some(h.score),
        })
        .collect();
    Ok(Json(Ranking { items }))
}
