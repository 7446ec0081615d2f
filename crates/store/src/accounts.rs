//! Users and refresh-token families.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::StoreResult;

pub mod postgres;
pub mod sqlite;

/// A user's public profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub nickname: String,
    pub birthday: Option<NaiveDate>,
    pub about: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A user plus the stored password hash, for login only.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub nickname: String,
    pub created_at: DateTime<Utc>,
}

/// A PATCH of the profile: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub nickname: Option<String>,
    pub birthday: Option<Option<NaiveDate>>,
    pub about: Option<Option<String>>,
}

/// A refresh token to store; only its hash is kept.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub token_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current; it is now spent and `next` (same family) replaces it.
    Rotated { user_id: Uuid, family_id: Uuid },
    /// Unknown, expired or revoked.
    Invalid,
    /// The token had already been rotated: the family is now revoked.
    ReuseDetected { family_id: Uuid },
}

/// Who a provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The configured provider's name.
    pub provider: String,
    /// The provider's stable id of the user (`sub`).
    pub subject: String,
    /// The email, only when the provider says it is verified (normalised).
    pub verified_email: Option<String>,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict("email")` when the email is taken.
    async fn create(&self, user: NewUser) -> StoreResult<User>;
    async fn get(&self, id: Uuid) -> StoreResult<Option<User>>;
    /// The account with this phone, created (as `id`, named `nickname`) if there is none: the
    /// first SMS login makes the account. Two first logins at once make one account.
    async fn find_or_create_by_phone(
        &self,
        phone: &str,
        id: Uuid,
        nickname: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User>;
    async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<Credentials>>;
    /// The account signed in through an OpenID Connect provider: the one linked to `identity`
    /// before; else the account with its verified email, linked now; else a new account (as
    /// `id`, named `nickname`, with the verified email if any), linked. Two first sign-ins at
    /// once make one account.
    async fn find_or_create_by_identity(
        &self,
        identity: &ExternalIdentity,
        id: Uuid,
        nickname: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User>;
    async fn update_profile(
        &self,
        id: Uuid,
        patch: ProfilePatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;
    /// The roles granted to a user (`admin`), sorted.
    async fn roles(&self, id: Uuid) -> StoreResult<Vec<String>>;
    /// Grants (`granted`) or revokes `role` for the account with `email` (already normalised).
    /// `Err(NotFound)` when no account has that email.
    async fn set_role(
        &self,
        email: &str,
        role: &str,
        granted: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Stores the first token of a new family (a login or sign-up).
    async fn insert(&self, token: NewRefreshToken) -> StoreResult<()>;
    /// Atomically spends the token with `presented_hash` and stores `next` in its family. The
    /// `next.family_id` and `next.user_id` are taken from the spent token.
    async fn rotate(
        &self,
        presented_hash: &[u8],
        next: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Rotation>;
    /// Revokes the token's whole family (logout) and names it; unknown tokens are ignored.
    async fn revoke_family_of(
        &self,
        presented_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;
    /// The families revoked at or after `since`, with when: every replica ends those sessions'
    /// access tokens too.
    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<(Uuid, DateTime<Utc>)>>;
}
