//! SQLite implementation of the image metadata repository.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use super::{ImageRecord, ImageStore};
use crate::StoreResult;
use crate::time::{from_micros, to_micros};

#[derive(Clone)]
pub struct SqliteImages {
    pool: SqlitePool,
}

impl SqliteImages {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ImageStore for SqliteImages {
    async fn create(&self, image: ImageRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into images (id, owner_id, content_type, bytes, created_at) values (?, ?, ?, ?, ?)",
        )
        .bind(image.id)
        .bind(image.owner_id)
        .bind(&image.content_type)
        .bind(image.bytes)
        .bind(to_micros(image.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<ImageRecord>> {
        let row: Option<(Uuid, Uuid, String, i64, i64)> = sqlx::query_as(
            "select id, owner_id, content_type, bytes, created_at from images where id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, owner_id, content_type, bytes, created_at)| ImageRecord {
            id,
            owner_id,
            content_type,
            bytes,
            created_at: from_micros(created_at),
        }))
    }

    async fn owned_by(&self, owner_id: Uuid, ids: &[Uuid]) -> StoreResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("select id from images where owner_id = ");
        builder.push_bind(owner_id).push(" and id in (");
        let mut separated = builder.separated(", ");
        for id in ids {
            separated.push_bind(*id);
        }
        builder.push(")");
        Ok(builder.build_query_scalar().fetch_all(&self.pool).await?)
    }
}
