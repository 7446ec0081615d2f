//! Who is calling: a verified access token whose account still exists.
//!
//! A token proves who it was issued to, not that the account is still there (a data dir reset
//! under a kept signing key, a forged token from a leaked key in a test): every authenticated
//! request also finds the account, through the nickname cache every app already reads, so a
//! token of an account that does not exist is a 401 everywhere, never a 500 from a foreign key.
//! A token of an ended session (logout, refresh-token reuse) is a 401 too.

use std::sync::Arc;

use surge_store::accounts::UserStore;

use super::sessions::RevokedSessions;
use super::tokens::TokenService;
use crate::error::{ApiError, ApiResult};
use crate::extract::AuthUser;
use crate::users::Nicknames;

pub struct Authenticator {
    pub tokens: Arc<TokenService>,
    users: Arc<dyn UserStore>,
    nicknames: Nicknames,
    pub revoked: Arc<RevokedSessions>,
}

impl Authenticator {
    pub fn new(
        tokens: Arc<TokenService>,
        users: Arc<dyn UserStore>,
        nicknames: Nicknames,
        revoked: Arc<RevokedSessions>,
    ) -> Self {
        Self { tokens, users, nicknames, revoked }
    }

    /// The caller of `token`: 401 unless it verifies, its session was not ended and its
    /// account exists.
    pub async fn authenticate(&self, token: &str) -> ApiResult<AuthUser> {
        let claims = self.tokens.verify(token).ok_or_else(ApiError::unauthorized)?;
        if claims.sid.is_some_and(|session| self.revoked.is_revoked(session)) {
            return Err(ApiError::unauthorized());
        }
        let nickname = match self.nicknames.get(&claims.sub) {
            Some(nickname) => nickname,
            None => {
                let user = self.users.get(claims.sub).await?.ok_or_else(ApiError::unauthorized)?;
                let nickname: Arc<str> = user.nickname.as_str().into();
                self.nicknames.insert(claims.sub, nickname.clone());
                nickname
            }
        };
        Ok(AuthUser { id: claims.sub, roles: claims.roles.clone(), nickname })
    }
}
