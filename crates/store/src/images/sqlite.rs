//! SQLite implementation of the image metadata repository.

use async_trait::async_trait;
use sqlx::{Sqlite, SqlitePool};
use uuid::Uuid;

use super::{ImageRecord, ImageStore};
use crate::StoreResult;
use crate::sql::{self, IMAGE_COLUMNS, ImageRow};
use crate::time::to_micros;

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
        let row: Option<ImageRow<Sqlite>> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {IMAGE_COLUMNS} from images where id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ImageRow::into_record))
    }

    async fn owned_by(&self, owner_id: Uuid, ids: &[Uuid]) -> StoreResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sql::images_owned_by::<Sqlite>(owner_id, ids)
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await?)
    }
}
