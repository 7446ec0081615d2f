//! What every app shows of a user, and the nickname cache they share.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

/// A short-lived cache of nicknames by user id (cloning shares it).
pub type Nicknames = moka::sync::Cache<Uuid, Arc<str>>;

/// The nickname cache every app shares: short-lived, so a renamed user is seen within a minute
/// everywhere (and at once on the replica that renamed them).
pub fn nickname_cache() -> Nicknames {
    moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build()
}
