//! PostgreSQL implementation of the account repositories.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::{
    Credentials, ExternalIdentity, NewRefreshToken, NewUser, ProfilePatch, RefreshTokenStore,
    Rotation, User, UserStore,
};
use crate::sql::{TOKEN_COLUMNS, TokenRow, USER_COLUMNS, UserRow};
use crate::time::truncate_to_micros;
use crate::{StoreError, StoreResult};

#[derive(Clone)]
pub struct PgUsers {
    pool: PgPool,
}

impl PgUsers {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserStore for PgUsers {
    async fn roles(&self, id: Uuid) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar("select role from user_roles where user_id = $1 order by role")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn set_role(
        &self,
        email: &str,
        role: &str,
        granted: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let user: Option<Uuid> =
            sqlx::query_scalar("select id from users where email = $1 for update")
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?;
        let user = user.ok_or(StoreError::NotFound)?;
        if granted {
            sqlx::query(
                "insert into user_roles (user_id, role, granted_at) values ($1, $2, $3)
                 on conflict do nothing",
            )
            .bind(user)
            .bind(role)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("delete from user_roles where user_id = $1 and role = $2")
                .bind(user)
                .bind(role)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create(&self, user: NewUser) -> StoreResult<User> {
        let now = truncate_to_micros(user.created_at);
        sqlx::query(
            "insert into users (id, email, password_hash, nickname, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $5)",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.nickname)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(User {
            id: user.id,
            email: Some(user.email),
            phone: None,
            nickname: user.nickname,
            birthday: None,
            about: None,
            created_at: now,
        })
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row: Option<UserRow<Postgres>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_user))
    }

    async fn find_or_create_by_phone(
        &self,
        phone: &str,
        id: Uuid,
        nickname: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        sqlx::query(
            "insert into users (id, phone, nickname, created_at, updated_at) values ($1, $2, $3, $4, $4)
             on conflict (phone) do nothing",
        )
        .bind(id).bind(phone).bind(nickname).bind(now)
        .execute(&self.pool)
        .await?;
        let row: UserRow<Postgres> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where phone = $1"
        )))
        .bind(phone)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into_user())
    }

    async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<Credentials>> {
        let row: Option<UserRow<Postgres>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where email = $1"
        )))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_credentials))
    }

    async fn find_or_create_by_identity(
        &self,
        identity: &ExternalIdentity,
        id: Uuid,
        nickname: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let mut tx = self.pool.begin().await?;
        // Two first sign-ins of one identity (on any replicas) take turns.
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("identity/{}/{}", identity.provider, identity.subject))
            .execute(&mut *tx)
            .await?;
        let linked: Option<UserRow<Postgres>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users
             where id = (select user_id from user_identities where provider = $1 and subject = $2)"
        )))
        .bind(&identity.provider)
        .bind(&identity.subject)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = linked {
            tx.commit().await?;
            return Ok(row.into_user());
        }
        let by_email: Option<UserRow<Postgres>> = match &identity.verified_email {
            Some(email) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "select {USER_COLUMNS} from users where email = $1"
                )))
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        let user_id = match &by_email {
            Some(row) => row.id,
            None => {
                sqlx::query(
                    "insert into users (id, email, nickname, created_at, updated_at)
                     values ($1, $2, $3, $4, $4)",
                )
                .bind(id)
                .bind(&identity.verified_email)
                .bind(nickname)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        sqlx::query(
            "insert into user_identities (provider, subject, user_id, created_at)
             values ($1, $2, $3, $4)",
        )
        .bind(&identity.provider)
        .bind(&identity.subject)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row: UserRow<Postgres> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where id = $1"
        )))
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.into_user())
    }

    async fn update_profile(
        &self,
        id: Uuid,
        patch: ProfilePatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        // One statement: each column keeps its value unless the patch names it.
        let row: Option<UserRow<Postgres>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "update users set
                nickname = case when $1 then $2 else nickname end,
                birthday = case when $3 then $4 else birthday end,
                about    = case when $5 then $6 else about end,
                updated_at = $7
             where id = $8
             returning {USER_COLUMNS}"
        )))
        .bind(patch.nickname.is_some())
        .bind(patch.nickname)
        .bind(patch.birthday.is_some())
        .bind(patch.birthday.flatten())
        .bind(patch.about.is_some())
        .bind(patch.about.flatten())
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_user))
    }
}

#[derive(Clone)]
pub struct PgRefreshTokens {
    pool: PgPool,
}

impl PgRefreshTokens {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

async fn insert_token<'e, E>(executor: E, token: &NewRefreshToken) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query(
        "insert into refresh_tokens (id, family_id, user_id, token_hash, expires_at, created_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.id)
    .bind(token.family_id)
    .bind(token.user_id)
    .bind(&token.token_hash)
    .bind(token.expires_at)
    .bind(token.created_at)
    .execute(executor)
    .await?;
    Ok(())
}

#[async_trait]
impl RefreshTokenStore for PgRefreshTokens {
    async fn insert(&self, token: NewRefreshToken) -> StoreResult<()> {
        insert_token(&self.pool, &token).await
    }

    async fn rotate(
        &self,
        presented_hash: &[u8],
        mut next: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Rotation> {
        let mut tx = self.pool.begin().await?;
        // The row lock makes two concurrent presentations of one token take turns: the second
        // sees `rotated_at` set by the first and revokes the family.
        let row: Option<TokenRow<Postgres>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLUMNS} from refresh_tokens where token_hash = $1 for update"
        )))
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        if row.revoked_at.is_some() || row.expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        if row.rotated_at.is_some() {
            sqlx::query(
                "update refresh_tokens set revoked_at = $1
                 where family_id = $2 and revoked_at is null",
            )
            .bind(now)
            .bind(row.family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Rotation::ReuseDetected { family_id: row.family_id });
        }
        sqlx::query("update refresh_tokens set rotated_at = $1 where id = $2")
            .bind(now)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        next.family_id = row.family_id;
        next.user_id = row.user_id;
        insert_token(&mut *tx, &next).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated { user_id: row.user_id, family_id: row.family_id })
    }

    async fn revoke_family_of(
        &self,
        presented_hash: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let family: Option<(Uuid,)> =
            sqlx::query_as("select family_id from refresh_tokens where token_hash = $1")
                .bind(presented_hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some((family_id,)) = family else { return Ok(None) };
        sqlx::query(
            "update refresh_tokens set revoked_at = $1 where family_id = $2 and revoked_at is null",
        )
        .bind(now)
        .bind(family_id)
        .execute(&self.pool)
        .await?;
        Ok(Some(family_id))
    }

    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<(Uuid, DateTime<Utc>)>> {
        let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
            "select family_id, max(revoked_at) from refresh_tokens
             where revoked_at >= $1 group by family_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
