//! SQLite implementation of the account repositories.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool};
use uuid::Uuid;

use super::{
    Credentials, ExternalIdentity, NewRefreshToken, NewUser, ProfilePatch, RefreshTokenStore,
    Rotation, User, UserStore,
};
use crate::sql::{TOKEN_COLUMNS, TokenRow, USER_COLUMNS, UserRow};
use crate::time::{from_micros, to_micros};
use crate::{StoreError, StoreResult};

#[derive(Clone)]
pub struct SqliteUsers {
    pool: SqlitePool,
}

impl SqliteUsers {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserStore for SqliteUsers {
    async fn roles(&self, id: Uuid) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar("select role from user_roles where user_id = ? order by role")
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let user: Option<Uuid> = sqlx::query_scalar("select id from users where email = ?")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        let user = user.ok_or(StoreError::NotFound)?;
        if granted {
            sqlx::query(
                "insert into user_roles (user_id, role, granted_at) values (?, ?, ?)
                 on conflict do nothing",
            )
            .bind(user)
            .bind(role)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("delete from user_roles where user_id = ? and role = ?")
                .bind(user)
                .bind(role)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create(&self, user: NewUser) -> StoreResult<User> {
        let now = to_micros(user.created_at);
        sqlx::query(
            "insert into users (id, email, password_hash, nickname, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.nickname)
        .bind(now)
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
            created_at: from_micros(now),
        })
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row: Option<UserRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where id = ?"
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
            "insert into users (id, phone, nickname, created_at, updated_at) values (?, ?, ?, ?, ?)
             on conflict (phone) do nothing",
        )
        .bind(id)
        .bind(phone)
        .bind(nickname)
        .bind(to_micros(now))
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        let row: UserRow<Sqlite> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where phone = ?"
        )))
        .bind(phone)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into_user())
    }

    async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<Credentials>> {
        let row: Option<UserRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where email = ?"
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
        // The write lock first: two first sign-ins of one identity take turns.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let linked: Option<UserRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users
             where id = (select user_id from user_identities where provider = ? and subject = ?)"
        )))
        .bind(&identity.provider)
        .bind(&identity.subject)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = linked {
            tx.commit().await?;
            return Ok(row.into_user());
        }
        let by_email: Option<UserRow<Sqlite>> = match &identity.verified_email {
            Some(email) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "select {USER_COLUMNS} from users where email = ?"
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
                     values (?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(&identity.verified_email)
                .bind(nickname)
                .bind(to_micros(now))
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        sqlx::query(
            "insert into user_identities (provider, subject, user_id, created_at) values (?, ?, ?, ?)",
        )
        .bind(&identity.provider)
        .bind(&identity.subject)
        .bind(user_id)
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await?;
        let row: UserRow<Sqlite> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where id = ?"
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
        let result = sqlx::query(
            "update users set
                nickname = case when ?1 then ?2 else nickname end,
                birthday = case when ?3 then ?4 else birthday end,
                about    = case when ?5 then ?6 else about end,
                updated_at = ?7
             where id = ?8",
        )
        .bind(patch.nickname.is_some())
        .bind(patch.nickname)
        .bind(patch.birthday.is_some())
        .bind(patch.birthday.flatten().map(|d| d.format("%Y-%m-%d").to_string()))
        .bind(patch.about.is_some())
        .bind(patch.about.flatten())
        .bind(to_micros(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.get(id).await
    }
}

#[derive(Clone)]
pub struct SqliteRefreshTokens {
    pool: SqlitePool,
}

impl SqliteRefreshTokens {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

async fn insert_token<'e, E>(executor: E, token: &NewRefreshToken) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "insert into refresh_tokens (id, family_id, user_id, token_hash, expires_at, created_at)
         values (?, ?, ?, ?, ?, ?)",
    )
    .bind(token.id)
    .bind(token.family_id)
    .bind(token.user_id)
    .bind(&token.token_hash)
    .bind(to_micros(token.expires_at))
    .bind(to_micros(token.created_at))
    .execute(executor)
    .await?;
    Ok(())
}

#[async_trait]
impl RefreshTokenStore for SqliteRefreshTokens {
    async fn insert(&self, token: NewRefreshToken) -> StoreResult<()> {
        insert_token(&self.pool, &token).await
    }

    async fn rotate(
        &self,
        presented_hash: &[u8],
        mut next: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Rotation> {
        let now_micros = to_micros(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<TokenRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLUMNS} from refresh_tokens where token_hash = ?"
        )))
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        if row.revoked_at.is_some() || row.expires_at <= now_micros {
            return Ok(Rotation::Invalid);
        }
        if row.rotated_at.is_some() {
            sqlx::query(
                "update refresh_tokens set revoked_at = ? where family_id = ? and revoked_at is null",
            )
            .bind(now_micros)
            .bind(row.family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Rotation::ReuseDetected { family_id: row.family_id });
        }
        sqlx::query("update refresh_tokens set rotated_at = ? where id = ?")
            .bind(now_micros)
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
            sqlx::query_as("select family_id from refresh_tokens where token_hash = ?")
                .bind(presented_hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some((family_id,)) = family else { return Ok(None) };
        sqlx::query(
            "update refresh_tokens set revoked_at = ? where family_id = ? and revoked_at is null",
        )
        .bind(to_micros(now))
        .bind(family_id)
        .execute(&self.pool)
        .await?;
        Ok(Some(family_id))
    }

    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<(Uuid, DateTime<Utc>)>> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "select family_id, max(revoked_at) from refresh_tokens
             where revoked_at >= ? group by family_id",
        )
        .bind(to_micros(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(family, at)| (family, from_micros(at))).collect())
    }
}
