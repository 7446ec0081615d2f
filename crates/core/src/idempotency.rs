//! `Idempotency-Key`: a user's promise that two requests with the same key are the same request.
//!
//! The key belongs to the user across every endpoint of every app: a repeat within
//! [`WINDOW_HOURS`] with the same request gets the first outcome and has no further effect; a
//! repeat with a different request is refused (422 `idempotency_key_reused`).

use chrono::Duration;

/// How long a key is remembered.
pub const WINDOW_HOURS: i64 = 24;

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 64;

/// A key is 1 to [`MAX_KEY_LEN`] visible ASCII characters.
pub fn is_valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The window as a duration.
pub fn window() -> Duration {
    Duration::hours(WINDOW_HOURS)
}

/// An `Idempotency-Key` and a digest of the request it came with, so a reuse with a different
/// request can be told apart from a retry. The digest names the endpoint and the entity, so
/// the same digest always addresses the same entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_64_visible_ascii_characters() {
        assert!(is_valid_key("k"));
        assert!(is_valid_key(&"k".repeat(64)));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key(&"k".repeat(65)));
        assert!(!is_valid_key("with space"));
        assert!(!is_valid_key("né"));
    }
}
