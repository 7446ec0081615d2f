//! Response bodies shared by every domain's handlers.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A rendered JSON body, cached once and sent to every reader without copying it.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Bytes);

impl Serialize for JsonBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(std::str::from_utf8(&self.0).unwrap_or("{}"))
    }
}

impl<'de> Deserialize<'de> for JsonBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| JsonBody(Bytes::from(text)))
    }
}

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        (content_type, self.0).into_response()
    }
}
