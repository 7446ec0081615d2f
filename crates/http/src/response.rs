//! Response bodies shared by every domain's handlers.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A rendered JSON body, cached once and sent to every reader without copying it, with its
/// entity tag (a digest of the bytes, made once when the body is made): a client that has
/// these bytes already gets 304 and no body. The tag is weak (`W/"…"`): the same JSON may go
/// out gzip- or br-compressed.
#[derive(Debug, Clone)]
pub struct JsonBody {
    bytes: Bytes,
    etag: HeaderValue,
}

impl JsonBody {
    pub fn new(bytes: Bytes) -> Self {
        let digest = Sha256::digest(&bytes);
        let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("W/\"{tag}\""))
            .unwrap_or(HeaderValue::from_static("W/\"0\""));
        Self { bytes, etag }
    }

    /// The bytes, or 304 Not Modified when `If-None-Match` already names them; `max_age`
    /// (seconds) is how long a client may reuse the answer without asking.
    pub fn respond(self, request: &HeaderMap, max_age: u64) -> Response {
        let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or(HeaderValue::from_static("no-cache"));
        let known = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| {
                let tag = tag.trim();
                let ours = self.etag.to_str().unwrap_or_default().trim_start_matches("W/");
                tag == "*" || tag.trim_start_matches("W/") == ours
            });
        let validators =
            [(header::ETAG, self.etag.clone()), (header::CACHE_CONTROL, cache_control)];
        if known {
            return (StatusCode::NOT_MODIFIED, validators).into_response();
        }
        (validators, self).into_response()
    }
}

impl Serialize for JsonBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(std::str::from_utf8(&self.bytes).unwrap_or("{}"))
    }
}

impl<'de> Deserialize<'de> for JsonBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| JsonBody::new(Bytes::from(text)))
    }
}

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        (content_type, self.bytes).into_response()
    }
}

/// 201 with `body` as JSON and `Location: location` (the new resource's path).
pub fn created(location: String, body: impl Serialize) -> Response {
    let mut response = (StatusCode::CREATED, crate::extract::Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_with_the_same_bytes_gets_304() {
        let body = JsonBody::new(Bytes::from_static(b"{\"items\":[]}"));
        let etag = body.etag.clone();
        let fresh = body.clone().respond(&HeaderMap::new(), 10);
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::ETAG], etag);
        assert_eq!(fresh.headers()[header::CACHE_CONTROL], "public, max-age=10");
        let mut asked = HeaderMap::new();
        let strong = etag.to_str().unwrap().trim_start_matches("W/").to_owned();
        let listed = format!("\"x\", {strong}");
        asked.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&listed).unwrap());
        assert_eq!(body.clone().respond(&asked, 10).status(), StatusCode::NOT_MODIFIED);
        asked.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(body.respond(&asked, 10).status(), StatusCode::OK);
    }
}
