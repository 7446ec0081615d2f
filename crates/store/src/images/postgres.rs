//! PostgreSQL implementation of the image metadata repository.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{ImageRecord, ImageStore};
use crate::StoreResult;

#[derive(Clone)]
pub struct PgImages {
    pool: PgPool,
}

impl PgImages {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ImageStore for PgImages {
    async fn create(&self, image: ImageRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into images (id, owner_id, content_type, bytes, created_at)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(image.id)
        .bind(image.owner_id)
        .bind(&image.content_type)
        .bind(image.bytes)
        .bind(image.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<ImageRecord>> {
        let row: Option<(Uuid, Uuid, String, i64, DateTime<Utc>)> = sqlx::query_as(
            "select id, owner_id, content_type, bytes, created_at from images where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, owner_id, content_type, bytes, created_at)| ImageRecord {
            id,
            owner_id,
            content_type,
            bytes,
            created_at,
        }))
    }

    async fn owned_by(&self, owner_id: Uuid, ids: &[Uuid]) -> StoreResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar("select id from images where owner_id = $1 and id = any($2)")
            .bind(owner_id)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?)
    }
}
