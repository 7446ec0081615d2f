//! Engine errors: infrastructure failures, never business rejections (those are values).

use surge_store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The entity the command addresses does not exist.
    #[error("not found")]
    NotFound,
    /// An `Idempotency-Key` was reused with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// A dependency (database, engine task) is down or overloaded; retrying later may work.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    #[error("engine failure: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => EngineError::NotFound,
            StoreError::Unavailable(e) => EngineError::Unavailable(e.to_string()),
            other => {
                EngineError::Internal(format!("{other}: {:?}", std::error::Error::source(&other)))
            }
        }
    }
}
