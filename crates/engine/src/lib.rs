//! Surge's engine: the ports every contended or cross-replica concern goes through, and their
//! implementations.
//!
//! Handlers depend only on the traits here, so the embedded (one process, SQLite) and the
//! distributed (PostgreSQL + Redis) deployments slot in without touching them.
//!
//! # Layout
//! - [`clock`]: the one source of "now", replaceable in tests.
//! - [`feed`]: live events per entity, for subscribers.
//! - [`cache`]: the two-tier (process, then Redis) single-flight cache for hot reads.
//! - [`auctions`]: the contended-command port for bids and closing.
//! - [`cinema`]: the contended-command port for seat reservations.
//! - [`deals`]: the contended-command port for orders (stock and points together) and top-ups.
//! - [`jobs`]: durable jobs (stored, leased, retried with backoff, dead-lettered) for every app.
//! - [`outbound`]: the HTTP client for calling out (upstreams, webhooks), TLS included.
//! - [`ratelimit`]: named GCRA limits.
//! - [`ratings`]: LeetCode problem lookups: the upstream client, the caches and the fetch job.
//! - [`social`]: read counts in batches, and the top-liked and hot rankings.
//! - [`sms`]: SMS delivery: providers, their error-rate switch, the send limit and job.
//! - [`embedded`]: the in-process implementations (group-commit writer, broadcast fan-out,
//!   in-memory limiter).
//! - [`redis`]: the distributed implementations on Redis (+ PostgreSQL through the persisters).
//! - [`workers`]: singleton background jobs, registered in one list (the auction closer, …).

pub mod auctions;
pub mod cache;
pub mod cinema;
pub mod clock;
pub mod deals;
pub mod embedded;
pub mod error;
pub mod feed;
pub mod jobs;
pub mod outbound;
pub mod ratelimit;
pub mod ratings;
pub mod redis;
pub mod sms;
pub mod social;
pub mod workers;

pub use error::EngineError;
