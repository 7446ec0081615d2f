//! Extractors that turn every rejection into the API's error shape: axum's own rejections are
//! plain text, which clients of a JSON API should never have to parse.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use uuid::Uuid;

use crate::accounts::authenticator::Authenticator;
use crate::error::ApiError;

/// JSON body in, JSON body out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::bad_request(
                "invalid_content_type",
                "expected a JSON body with content-type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { message: "the request body is too large".into() }
            } else {
                ApiError::bad_request("invalid_json", rejection.body_text())
            }
        })?;
        parse_json_object(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Every request body of the API is a JSON object. serde would happily read a struct from an
/// array (`[1000]` as `{"amount": 1000}`), so anything but an object is refused up front.
/// Syntax errors are a 400 `invalid_json`; well-formed JSON with a wrong or missing field is a
/// 422 naming that field.
pub fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::bad_request("invalid_json", "the body must be a JSON object"));
    }
    let parsed = deserialize(bytes);
    // JSON Schema's `integer` includes `1000.0`; serde's integers do not. Only when a body was
    // refused for its data is it read again with such numbers written as integers.
    if let Err(ApiError::Validation(_)) = &parsed
        && let Some(value) = with_integral_numbers(bytes)
        && let Ok(value) = T::deserialize(value)
    {
        return Ok(value);
    }
    parsed
}

fn deserialize<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => {
                let (missing, message) = explain(&inner);
                let field = match (path.as_str(), missing) {
                    (".", Some(missing)) => missing,
                    (".", None) => "body".to_owned(),
                    (parent, Some(missing)) => format!("{parent}.{missing}"),
                    (_, None) => path.clone(),
                };
                ApiError::field(&field, message)
            }
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("invalid_json", format!("malformed JSON: {inner}"))
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// The body with every integral number in `i64` range written as an integer (`5.0` → `5`);
/// `None` when it holds none (then nothing would change).
fn with_integral_numbers(bytes: &[u8]) -> Option<serde_json::Value> {
    fn rewrite(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(number) => match number.as_f64() {
                Some(float)
                    if !number.is_i64()
                        && !number.is_u64()
                        && float.fract() == 0.0
                        && float.abs() < 9.2e18 =>
                {
                    *value = serde_json::Value::from(float as i64);
                    true
                }
                _ => false,
            },
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, v| rewrite(v) | c),
            serde_json::Value::Object(members) => {
                members.values_mut().fold(false, |c, v| rewrite(v) | c)
            }
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    rewrite(&mut value).then_some(value)
}

/// A data error in words a client can act on: the missing member's name (serde reports it on
/// the enclosing object), and the message without serde's "at line 1 column 2".
fn explain(error: &serde_json::Error) -> (Option<String>, String) {
    let text = error.to_string();
    let text = text.rfind(" at line ").map_or(text.as_str(), |at| &text[..at]);
    if let Some(rest) = text.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return (Some(name.to_owned()), "is required".to_owned());
    }
    if let Some((got, expected)) =
        text.strip_prefix("invalid type: ").and_then(|rest| rest.split_once(", expected "))
    {
        return (None, format!("must be {expected} (got {got})"));
    }
    (None, text.to_owned())
}

/// Path parameters; a malformed one (say, an id that is not a UUID) is a 400.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match <axum::extract::Path<T> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
        {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path_parameter", rejection.body_text())
}

/// Query parameters; bad ones are a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match <axum::extract::Query<T> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
        {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    let detail = rejection.body_text();
    let tail = detail.trim_start_matches("Failed to deserialize query string: ");
    if let Some(rest) = tail.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("query");
        return ApiError::field(name, "is required");
    }
    let field = match tail.split_once(": ") {
        Some((name, _)) if !name.contains(' ') => name,
        _ => "query",
    };
    ApiError::field(field, tail.to_owned())
}

/// The caller's address: the client behind trusted proxies when [`crate::serve`] served the
/// request, else the peer the listener saw (`None` when the server runs without connection
/// info, as in-process router tests do).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<ClientIp>() {
            return Ok(*client);
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientIp(peer))
    }
}

/// The authenticated caller, from `Authorization: Bearer …` or the `surge_session` cookie.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub roles: Vec<String>,
    /// The account's nickname (from a cache that may trail a rename by up to a minute).
    pub nickname: Arc<str>,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

pub(crate) const SESSION_COOKIE: &str = "surge_session";

fn bearer_or_cookie(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    session_cookie(&parts.headers)
}

/// The `surge_session` cookie's value, if the request carries one.
pub(crate) fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the request's cookie `name`, if it carries one.
pub(crate) fn cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_or_cookie(parts).ok_or_else(ApiError::unauthorized)?;
        Arc::<Authenticator>::from_ref(state).authenticate(token).await
    }
}

impl<S> OptionalFromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if bearer_or_cookie(parts).is_none() {
            return Ok(None);
        }
        <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state).await.map(Some)
    }
}

/// The optional `Idempotency-Key` header (1–64 visible ASCII characters).
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value.to_str().ok().filter(|key| surge_core::idempotency::is_valid_key(key));
        match key {
            Some(key) => Ok(IdempotencyKey(Some(key.to_owned()))),
            None => {
                Err(ApiError::field("idempotency_key", "must be 1 to 64 visible ASCII characters"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Bid {
        #[expect(dead_code, reason = "only parsed")]
        amount: i64,
    }

    fn status_and_field(body: &str) -> (StatusCode, Option<String>) {
        match parse_json_object::<Bid>(body.as_bytes()) {
            Ok(_) => (StatusCode::OK, None),
            Err(ApiError::Validation(fields)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, fields.iter().next().map(|(k, _)| k.to_owned()))
            }
            Err(other) => (other.status(), None),
        }
    }

    #[test]
    fn only_objects_are_bodies() {
        assert_eq!(status_and_field("[1000]").0, StatusCode::BAD_REQUEST);
        assert_eq!(status_and_field("[1, 2").0, StatusCode::BAD_REQUEST);
        assert_eq!(status_and_field("1000").0, StatusCode::BAD_REQUEST);
        assert_eq!(status_and_field(" {\"amount\": 5} ").0, StatusCode::OK);
    }

    #[test]
    fn syntax_errors_are_400_and_type_errors_name_the_field() {
        assert_eq!(status_and_field("{\"amount\": ").0, StatusCode::BAD_REQUEST);
        assert_eq!(status_and_field("{\"amount\": 5} x").0, StatusCode::BAD_REQUEST);
        assert_eq!(
            status_and_field("{\"amount\": \"ten\"}"),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("amount".to_owned()))
        );
        assert_eq!(
            status_and_field("{}"),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("amount".to_owned()))
        );
    }

    /// The 422 names the member and says what is wrong in words, not serde's positions.
    #[test]
    fn field_messages_are_for_people() {
        let message = |body: &str| match parse_json_object::<Bid>(body.as_bytes()) {
            Err(ApiError::Validation(fields)) => fields.iter().next().map(|(_, m)| m.to_string()),
            _ => None,
        };
        assert_eq!(message("{}").as_deref(), Some("is required"));
        let wrong = message("{\"amount\": \"ten\"}").unwrap();
        assert!(wrong.starts_with("must be i64"), "{wrong}");
        assert!(!wrong.contains("line"), "{wrong}");
    }
}
