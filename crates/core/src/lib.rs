//! Surge's pure rules and types.
//!
//! Everything that decides *whether* something may happen lives here, as plain functions over
//! plain data: no I/O, no async runtime, no SQL. The engines (embedded and Redis) and the HTTP
//! layer call these rules; the Redis engine mirrors them in Lua and a property test keeps the two
//! in agreement.
//!
//! # Layout
//! - [`accounts`]: sign-up and profile validation, and [`accounts::UserRef`].
//! - [`auctions`]: auction creation rules and the bid decision (`decide` / `apply`).
//! - [`cinema`]: seat codes and the reservation decision.
//! - [`deals`]: store and deal rules, great-circle distance and the nearby search's boxes.
//! - [`events`]: one event shape per app, and the envelope that addresses it to its entity.
//! - [`idempotency`]: the `Idempotency-Key` every app's keyed commands share.
//! - [`images`]: which uploads are images (by their bytes), and the size cap.
//! - [`jobs`]: when a failed durable job is tried again (backoff with jitter).
//! - [`ratelimit`]: the GCRA arithmetic shared by every rate-limit backend.
//! - [`ratings`]: LeetCode problems, the rating formula, slugs and freshness.
//! - [`sharding`]: which shard an entity belongs to.
//! - [`social`]: articles, who may see them, and the hot score.
//! - [`sms`]: SMS-code login: phone numbers, codes, their lifetime and tries.
//! - [`text`]: case folding for search.
//! - [`validation`]: the field-error map returned as 422 `fields`.

pub mod accounts;
pub mod auctions;
pub mod cinema;
pub mod deals;
pub mod events;
pub mod idempotency;
pub mod images;
pub mod jobs;
pub mod ratelimit;
pub mod ratings;
pub mod sharding;
pub mod sms;
pub mod social;
pub mod text;
pub mod validation;

/// Money is an integer number of minor units. The cap keeps every sum far from `i64` overflow
/// and well inside the range JavaScript clients can represent exactly (2^53).
pub const MAX_MONEY: i64 = 1_000_000_000_000_000;
