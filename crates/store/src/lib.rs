//! Surge's SQL repositories and migrations.
//!
//! One module per domain, each with the same shape: the repository traits and records in
//! `<domain>.rs`, one implementation per backend beside it (`<domain>/sqlite.rs`,
//! `<domain>/postgres.rs`). Handlers hold the traits as `Arc<dyn …>` and never see sqlx types;
//! repositories never see HTTP types.
//!
//! # Layout
//! - [`db`]: opening the SQLite database (WAL, `synchronous`, busy timeout) or connecting to
//!   PostgreSQL, and migrating either.
//! - [`accounts`]: users and refresh-token families.
//! - [`auctions`]: auction reads, search, bid history, and the auction statements of the
//!   embedded engine's writer.
//! - [`cinema`]: theaters, movies, screenings, "now showing", seat maps and reservations.
//! - [`ledger`]: the embedded engine's batch transaction and the `Idempotency-Key` records
//!   every app shares.
//! - [`images`]: uploaded-image metadata.
//! - [`jobs`]: the durable job queue every app shares (leases, retries, dead jobs).
//! - [`social`]: articles, likes and collects, read counts, the rankings' queries.
//! - [`sms`]: SMS login codes (hashed, one live code per phone).
//! - [`ratings`]: LeetCode problems as last fetched, and the slugs known not to exist.
//! - [`events`]: applying the distributed engine's shard-stream events to PostgreSQL.
//! - `sql`: the read queries and row decoding both backends share; only the dialect differs.
//! - [`error`]: the one error type every repository returns.

pub mod accounts;
pub mod auctions;
pub mod cinema;
pub mod db;
pub mod deals;
pub mod error;
pub mod events;
pub mod images;
pub mod jobs;
pub mod ledger;
pub mod ratings;
pub mod sms;
pub mod social;
mod sql;
pub mod time;

pub use error::{StoreError, StoreResult};
