//! argon2id password hashing, off the async threads (a hash takes tens of milliseconds).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::ApiError;

/// A PHC string (`$argon2id$v=19$…`) for `password`, with a random salt.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password hashing task failed: {e}")))?
}

/// True when `password` matches the stored PHC string. `None` (no password set) never matches,
/// but still costs one hash so response time does not reveal which accounts exist.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let argon2 = Argon2::default();
        match stored.as_deref().map(PasswordHash::new) {
            Some(Ok(parsed)) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            _ => {
                let _ = argon2.hash_password(password.as_bytes());
                false
            }
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password verification task failed: {e}")))
}
