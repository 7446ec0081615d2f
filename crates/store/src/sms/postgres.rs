//! PostgreSQL implementation of the SMS code store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use super::{Checked, Issued, SmsCodeStore};
use crate::StoreResult;

#[derive(Clone)]
pub struct PgSmsCodes {
    pool: PgPool,
}

impl PgSmsCodes {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SmsCodeStore for PgSmsCodes {
    async fn issue(
        &self,
        phone: &str,
        code_hash: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        resend_after: chrono::Duration,
    ) -> StoreResult<Issued> {
        let stored = sqlx::query(
            "insert into sms_codes (phone, code_hash, sent_at, expires_at, wrong_tries, used_at)
             values ($1, $2, $3, $4, 0, null)
             on conflict (phone) do update set code_hash = excluded.code_hash,
                 sent_at = excluded.sent_at, expires_at = excluded.expires_at,
                 wrong_tries = 0, used_at = null
             where sms_codes.sent_at <= $5
             returning phone",
        )
        .bind(phone)
        .bind(code_hash)
        .bind(now)
        .bind(expires_at)
        .bind(now - resend_after)
        .fetch_optional(&self.pool)
        .await?;
        if stored.is_some() {
            return Ok(Issued::Stored);
        }
        let sent_at: DateTime<Utc> =
            sqlx::query_scalar("select sent_at from sms_codes where phone = $1")
                .bind(phone)
                .fetch_one(&self.pool)
                .await?;
        Ok(Issued::TooSoon { retry_at: sent_at + resend_after })
    }

    async fn check(
        &self,
        phone: &str,
        code_hash: &[u8],
        now: DateTime<Utc>,
        max_wrong: u32,
        resend_after: chrono::Duration,
    ) -> StoreResult<Checked> {
        let max_wrong = max_wrong as i32;
        let used = sqlx::query(
            "update sms_codes set used_at = $3
             where phone = $1 and code_hash = $2 and used_at is null and expires_at > $3
                 and wrong_tries < $4
             returning phone",
        )
        .bind(phone)
        .bind(code_hash)
        .bind(now)
        .bind(max_wrong)
        .fetch_optional(&self.pool)
        .await?;
        if used.is_some() {
            return Ok(Checked::Accepted);
        }
        let wrong: Option<i32> = sqlx::query_scalar(
            "update sms_codes set wrong_tries = wrong_tries + 1
             where phone = $1 and used_at is null and expires_at > $2 and wrong_tries < $3
             returning wrong_tries",
        )
        .bind(phone)
        .bind(now)
        .bind(max_wrong)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(tries) = wrong {
            return Ok(Checked::Wrong { tries: tries as u32 });
        }
        let dead = sqlx::query(
            "select sent_at from sms_codes
             where phone = $1 and used_at is null and expires_at > $2 and wrong_tries >= $3",
        )
        .bind(phone)
        .bind(now)
        .bind(max_wrong)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match dead {
            Some(row) => Checked::Dead {
                retry_at: row.try_get::<DateTime<Utc>, _>("sent_at")? + resend_after,
            },
            None => Checked::NoCode,
        })
    }
}
