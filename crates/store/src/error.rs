//! The repository error: what callers can act on, with the driver error kept as the source.

/// An error from a repository. Callers match on the first three; `Other` is a bug or an outage
/// and becomes a 500 (or 503) without details.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; the value names what was duplicated.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database did not answer in time (pool exhausted, locked for too long, unreachable).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(error)
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let message = db.message();
                let what = if message.contains("users.email") {
                    "email"
                } else if message.contains("users.phone") {
                    "phone"
                } else if message.contains("bids.auction_id") {
                    "bid_seq"
                } else if message.contains("idempotency_keys") {
                    "idempotency_key"
                } else {
                    "unique"
                };
                StoreError::Conflict(what)
            }
            // SQLITE_BUSY after the busy timeout: the write lock stayed taken too long.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("5") => {
                StoreError::Unavailable(error)
            }
            _ => StoreError::Other(error),
        }
    }
}
