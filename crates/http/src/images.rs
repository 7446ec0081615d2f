//! Image uploads: the type is decided by the bytes, never by what the client claims.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;
use surge_core::images::{MAX_IMAGE_BYTES, sniff};
use surge_core::ratelimit::{Decision, retry_after_secs};
use surge_store::images::ImageRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, Json, Path};
use crate::state::AppState;

/// Room for multipart boundaries and headers around the largest image.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/images",
            post(upload).layer(DefaultBodyLimit::max(MAX_IMAGE_BYTES + MULTIPART_OVERHEAD)),
        )
        .route("/api/v1/images/{id}", get(download))
}

pub fn image_url(id: Uuid) -> String {
    format!("/api/v1/images/{id}")
}

fn object_path(id: Uuid) -> ObjectPath {
    ObjectPath::from(format!("images/{id}"))
}

/// The upload form: one field, `file`, with the image's bytes (what the document describes;
/// the handler reads the form by hand, to stop at the size limit).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ImageUpload {
    /// PNG, JPEG, WebP or GIF, by its bytes; at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedImage {
    pub id: Uuid,
    pub url: String,
    pub content_type: String,
    pub bytes: i64,
    pub created_at: DateTime<Utc>,
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge {
        message: format!("images may be at most {} MiB", MAX_IMAGE_BYTES >> 20),
    }
}

/// The file bytes: the multipart field `file`, or the whole body.
async fn read_file(state: &AppState, request: Request) -> ApiResult<Bytes> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let body: Body = request.into_body();
        let bytes =
            axum::body::to_bytes(body, MAX_IMAGE_BYTES + 1).await.map_err(|_| too_large())?;
        return if bytes.len() > MAX_IMAGE_BYTES { Err(too_large()) } else { Ok(bytes) };
    }
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request("invalid_multipart", e.body_text())
        }
    };
    // The form has one field, `file`; anything else is refused, not silently dropped.
    let unexpected = |name: Option<&str>| {
        let name = name.unwrap_or("(unnamed)");
        ApiError::field(name, "unexpected field: the form has only `file`")
    };
    let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? else {
        return Err(ApiError::field("file", "a multipart field named file is required"));
    };
    if field.name() != Some("file") {
        return Err(unexpected(field.name()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > MAX_IMAGE_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    drop(field);
    if let Some(extra) = multipart.next_field().await.map_err(multipart_error)? {
        return Err(unexpected(extra.name()));
    }
    Ok(Bytes::from(bytes))
}

/// Upload an image (PNG, JPEG, WebP or GIF; at most 5 MiB; 2 accepted uploads per hour).
#[utoipa::path(post, path = "/api/v1/images", tag = "images", security(("bearer" = [])),
    request_body(content = ImageUpload, content_type = "multipart/form-data", description = "a field named `file`, or the raw image bytes with their content type"),
    responses((status = 201, body = UploadedImage), (status = 401, description = "unauthorized"), (status = 413, description = "over 5 MiB"), (status = 415, description = "not PNG/JPEG/WebP/GIF by its bytes"), (status = 429, description = "upload limit reached")))]
pub async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    request: Request,
) -> ApiResult<Response> {
    let bytes = read_file(&state, request).await?;
    let content_type = sniff(&bytes).ok_or_else(|| ApiError::UnsupportedMediaType {
        message: "only PNG, JPEG, WebP and GIF images are accepted".into(),
    })?;
    // Only files that passed every check count against the limit, and only uploads that were
    // stored: a failed write gives its event back, and leaves no object behind.
    let (quota, key) = (state.settings.uploads, format!("upload:{}", user.id));
    if let Decision::Denied { retry_after_ms } = state.limiter.acquire(quota, &key).await? {
        return Err(ApiError::RateLimited { retry_after_secs: retry_after_secs(retry_after_ms) });
    }
    let id = Uuid::now_v7();
    let size = bytes.len() as i64;
    let created_at = state.clock.now();
    let record = ImageRecord {
        id,
        owner_id: user.id,
        content_type: content_type.to_owned(),
        bytes: size,
        created_at,
    };
    if let Err(error) = store_image(&state, record, bytes).await {
        let _ = state.limiter.release(quota, &key).await;
        return Err(error);
    }
    let body = UploadedImage {
        id,
        url: image_url(id),
        content_type: content_type.to_owned(),
        bytes: size,
        created_at,
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, image_url(id))], Json(body)).into_response())
}

/// Writes the object, then its row; removes the object again if the row cannot be written.
async fn store_image(state: &AppState, record: ImageRecord, bytes: Bytes) -> ApiResult<()> {
    let path = object_path(record.id);
    state
        .objects
        .put(&path, PutPayload::from_bytes(bytes))
        .await
        .map_err(|e| ApiError::Unavailable(format!("object store write failed: {e}")))?;
    if let Err(error) = state.images.create(record).await {
        if let Err(cleanup) = state.objects.delete(&path).await {
            tracing::warn!(error = %cleanup, object = %path, "could not remove an orphan upload");
        }
        return Err(error.into());
    }
    Ok(())
}

/// The image bytes.
#[utoipa::path(get, path = "/api/v1/images/{id}", tag = "images", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the image, with its content type"), (status = 404)))]
pub async fn download(State(state): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Response> {
    let image = state.images.get(id).await?.ok_or(ApiError::NotFound)?;
    let object = state.objects.get(&object_path(id)).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => ApiError::NotFound,
        other => ApiError::Unavailable(format!("object store read failed: {other}")),
    })?;
    let bytes = object
        .bytes()
        .await
        .map_err(|e| ApiError::Unavailable(format!("object store read failed: {e}")))?;
    let content_type = HeaderValue::from_str(&image.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            // Bytes uploaded by anyone: never a document that can run anything, even if a
            // polyglot file is opened directly.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
            // Image ids are never reused, so the bytes behind a URL never change.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        bytes,
    )
        .into_response())
}
