//! In-process implementations: everything runs inside one `surge serve`, with SQLite as the
//! durable store.

pub mod auctions;
pub mod fanout;
pub mod ratelimit;
mod writer;

pub use auctions::{EmbeddedAuctions, EmbeddedReservations};
pub use fanout::Fanout;
pub use ratelimit::InProcessRateLimiter;
