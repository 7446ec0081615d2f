//! The one error type of the HTTP layer and its JSON shape:
//! `{"error": {"code": "snake_case", "message": "…", …extras}}`.
//!
//! Every failure — a rejected bid, malformed JSON, an unknown route, a database outage — leaves
//! through here, so clients parse one shape. Internal details are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use surge_core::validation::FieldErrors;
use surge_engine::EngineError;
use surge_store::StoreError;

/// Seconds a client should wait before retrying after a 503.
const UNAVAILABLE_RETRY_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a specific code (`invalid_json`, `invalid_content_type`, …).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 or 410 (or another status) with a code and extra fields for the client.
    #[error("{message}")]
    Conflict { status: StatusCode, code: &'static str, message: String, extra: Map<String, Value> },
    #[error("{message}")]
    PayloadTooLarge { message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }

    pub fn unauthorized() -> Self {
        ApiError::Unauthorized {
            code: "unauthorized",
            message: "a valid access token is required".into(),
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(FieldErrors::single(field, message))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            status: StatusCode::CONFLICT,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Adds an extra field to the error object (e.g. `min_amount`).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let ApiError::Conflict { extra, .. } = &mut self {
            extra.insert(key.to_owned(), value.into());
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { status, .. } => *status,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. } => code,
            ApiError::Validation(_) => "validation_failed",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn public_message(&self) -> String {
        match self {
            ApiError::Validation(_) => "some fields are invalid".into(),
            ApiError::NotFound => "no such resource".into(),
            ApiError::RateLimited { retry_after_secs } => {
                format!("too many requests; retry in {retry_after_secs} s")
            }
            ApiError::Unavailable(_) => "a dependency is unavailable; retry shortly".into(),
            ApiError::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(error.detail = %detail, "internal error"),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error.detail = %detail, "dependency unavailable")
            }
            _ => {}
        }
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code()));
        error.insert("message".into(), json!(self.public_message()));
        match &self {
            ApiError::Validation(fields) => {
                let fields: Map<String, Value> =
                    fields.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
                error.insert("fields".into(), Value::Object(fields));
            }
            ApiError::Conflict { extra, .. } => {
                error.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            _ => {}
        }
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        };
        let mut response = (self.status(), Json(json!({ "error": error }))).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, ApiError::Unauthorized { .. }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(what) => {
                ApiError::conflict("conflict", format!("{what} already exists"))
            }
            StoreError::Unavailable(e) => ApiError::Unavailable(e.to_string()),
            StoreError::Other(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => ApiError::NotFound,
            EngineError::IdempotencyKeyReused => ApiError::Conflict {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was already used with a different request".into(),
                extra: Map::new(),
            },
            EngineError::Unavailable(detail) => ApiError::Unavailable(detail),
            EngineError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}
