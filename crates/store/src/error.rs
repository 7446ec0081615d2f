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

impl StoreError {
    /// Unavailable for a reason outside the database driver (a cache or engine it depends on).
    pub fn unavailable(reason: impl Into<String>) -> Self {
        StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(reason.into())))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(error)
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(conflict_on(db.constraint(), db.message()))
            }
            // SQLITE_BUSY after the busy timeout: the write lock stayed taken too long.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("5") => {
                StoreError::Unavailable(error)
            }
            // PostgreSQL refusing work for now: too many connections, shutting down, starting up.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("53300" | "57P01" | "57P02" | "57P03")) =>
            {
                StoreError::Unavailable(error)
            }
            _ => StoreError::Other(error),
        }
    }
}

/// Names what a unique violation was about. PostgreSQL reports the constraint by name
/// (`users_email_key`, `bids_pkey`); SQLite only in its message (`UNIQUE constraint failed:
/// users.email`).
fn conflict_on(constraint: Option<&str>, message: &str) -> &'static str {
    match constraint {
        Some("users_email_key") => "email",
        Some("users_phone_key") => "phone",
        Some("bids_pkey") => "bid_seq",
        Some("idempotency_keys_pkey") => "idempotency_key",
        Some(_) => "unique",
        None if message.contains("users.email") => "email",
        None if message.contains("users.phone") => "phone",
        None if message.contains("bids.auction_id") => "bid_seq",
        None if message.contains("idempotency_keys") => "idempotency_key",
        None => "unique",
    }
}

#[cfg(test)]
mod tests {
    use super::conflict_on;

    #[test]
    fn unique_violations_are_named_alike_on_both_backends() {
        let sqlite = |message| conflict_on(None, message);
        assert_eq!(sqlite("UNIQUE constraint failed: users.email"), "email");
        assert_eq!(sqlite("UNIQUE constraint failed: users.phone"), "phone");
        assert_eq!(sqlite("UNIQUE constraint failed: bids.auction_id, bids.seq"), "bid_seq");
        assert_eq!(
            sqlite("UNIQUE constraint failed: idempotency_keys.user_id, idempotency_keys.key"),
            "idempotency_key"
        );
        let postgres = |constraint| conflict_on(Some(constraint), "duplicate key value");
        assert_eq!(postgres("users_email_key"), "email");
        assert_eq!(postgres("users_phone_key"), "phone");
        assert_eq!(postgres("bids_pkey"), "bid_seq");
        assert_eq!(postgres("idempotency_keys_pkey"), "idempotency_key");
        assert_eq!(postgres("refresh_tokens_token_hash_key"), "unique");
    }
}
