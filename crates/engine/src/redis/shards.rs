//! The shard handle every app's Redis code goes through: one connection (a node or a Cluster)
//! and the deployment's key space, with the few reads every app needs.
//!
//! Each entity (an auction, a screening, …) lives in one shard; its keys carry the shard as a
//! hash tag, so one script call touches one Cluster slot, and the shard's stream orders every
//! event of its entities.

use std::collections::HashMap;

use ::redis::{FromRedisValue, ScriptInvocation};
use uuid::Uuid;

use super::connection::RedisConnection;
use super::keys::KeySpace;
use super::{deadline, unavailable};
use crate::EngineError;

/// A deployment's shards on Redis. Cloning is cheap (the connection is shared).
#[derive(Clone)]
pub struct Shards {
    pub conn: RedisConnection,
    pub keys: KeySpace,
}

impl Shards {
    pub fn new(conn: RedisConnection, keys: KeySpace) -> Self {
        Self { conn, keys }
    }

    /// The shard `entity` belongs to.
    pub fn shard_of(&self, entity: Uuid) -> u16 {
        self.keys.shard_of(entity)
    }

    /// Runs a script, bounded by the operation deadline.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, EngineError> {
        super::invoke(&self.conn, invocation).await
    }

    /// A plain string value.
    pub async fn get(&self, key: &str) -> Result<Option<String>, EngineError> {
        let mut conn = self.conn.clone();
        deadline(async {
            ::redis::cmd("GET").arg(key).query_async(&mut conn).await.map_err(unavailable)
        })
        .await
    }

    /// Any other command, bounded by the operation deadline like every call here.
    pub async fn query<T: FromRedisValue>(&self, command: &::redis::Cmd) -> Result<T, EngineError> {
        let mut conn = self.conn.clone();
        deadline(async { command.query_async(&mut conn).await.map_err(unavailable) }).await
    }

    /// A whole hash (empty when the key does not exist).
    pub async fn hash(&self, key: &str) -> Result<HashMap<String, String>, EngineError> {
        let mut conn = self.conn.clone();
        deadline(async {
            ::redis::cmd("HGETALL").arg(key).query_async(&mut conn).await.map_err(unavailable)
        })
        .await
    }

    /// The id of the last entry of `shard`'s stream known to be in PostgreSQL (`0-0` if none).
    pub async fn persisted_position(&self, shard: u16) -> Result<String, EngineError> {
        let position = self.get(&self.keys.persisted(shard)).await?;
        Ok(position.unwrap_or_else(|| "0-0".to_owned()))
    }

    /// A fresh UUIDv7 in `shard`: a new entity named this way (a reservation) shares the slot
    /// of the entity it belongs to, so one script can write both.
    pub fn new_id_in(&self, shard: u16) -> Result<Uuid, EngineError> {
        // Each try lands in a uniformly random shard: `shards` tries on average, and 50 times
        // that fails with a probability of e^-50.
        (0..usize::from(self.keys.shards()) * 50)
            .map(|_| Uuid::now_v7())
            .find(|id| self.keys.shard_of(*id) == shard)
            .ok_or_else(|| EngineError::Internal(format!("no UUIDv7 of shard {shard} found")))
    }
}
