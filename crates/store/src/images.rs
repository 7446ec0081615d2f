//! Uploaded-image metadata. The bytes live in the object store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreResult;

pub mod postgres;
pub mod sqlite;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub content_type: String,
    pub bytes: i64,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait ImageStore: Send + Sync {
    async fn create(&self, image: ImageRecord) -> StoreResult<()>;
    async fn get(&self, id: Uuid) -> StoreResult<Option<ImageRecord>>;
    /// Which of `ids` belong to `owner`.
    async fn owned_by(&self, owner_id: Uuid, ids: &[Uuid]) -> StoreResult<Vec<Uuid>>;
}
