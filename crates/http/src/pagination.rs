//! `?limit=&cursor=` pages: `{"items": [...], "next_cursor": "…" | null}`.
//!
//! Cursors are opaque to clients (base64url of a small JSON document) and encode the keyset
//! position, never an offset: rows inserted while a client walks the pages cannot shift it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use surge_core::validation::FieldErrors;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `limit` (1–100, default 20). A field error, so callers can report it with their own.
pub fn limit(requested: Option<i64>) -> Result<u32, FieldErrors> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(_) => Err(FieldErrors::single("limit", format!("must be between 1 and {MAX_LIMIT}"))),
    }
}

pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor this endpoint issued"))
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says another page exists.
pub fn page<R, T>(
    mut rows: Vec<R>,
    limit: u32,
    cursor_of: impl Fn(&R) -> String,
    view: impl Fn(R) -> T,
) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(&cursor_of) } else { None };
    Page { items: rows.into_iter().map(view).collect(), next_cursor }
}

/// Common list parameters.
#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_1_to_100_are_refused() {
        assert_eq!(limit(None).unwrap(), 20);
        assert_eq!(limit(Some(100)).unwrap(), 100);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor(&(42_i64, "x"));
        assert_eq!(decode_cursor::<(i64, String)>(&cursor).unwrap(), (42, "x".to_owned()));
        assert!(decode_cursor::<(i64, String)>("%%%").is_err());
    }

    #[test]
    fn a_full_page_has_a_cursor_and_a_short_one_does_not() {
        let full = page(vec![1, 2, 3], 2, |n| n.to_string(), |n| n);
        assert_eq!(full.items, vec![1, 2]);
        assert_eq!(full.next_cursor.as_deref(), Some("2"));
        let last = page(vec![1, 2], 2, |n| n.to_string(), |n| n);
        assert!(last.next_cursor.is_none());
    }
}
