//! `Idempotency-Key`: a user's promise that two requests with the same key are the same request.
//!
//! The key belongs to the user across every endpoint of every app: a repeat within
//! [`WINDOW_HOURS`] with the same request gets the first outcome and has no further effect; a
//! repeat with a different request is refused (422 `idempotency_key_reused`).

use chrono::Duration;

/// How long a key is remembered.
pub const WINDOW_HOURS: i64 = 24;

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
