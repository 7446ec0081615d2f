//! Rebuilding a missing hot state (an auction's, a screening's, …) from PostgreSQL, without ever
//! going behind what was acknowledged.
//!
//! A hot key can be missing because Redis restarted without its AOF, or because it expired.
//! It is recreated only from a persisted copy that holds every event of the entity: the copy is
//! read *after* the shard's persisted position, and `load_hot_state.lua` refuses while the
//! shard stream still holds events of the entity past that position. Then the rebuild waits for
//! the persister, bounded, and gives up with 503: a command is never decided on stale data.

use std::sync::LazyLock;

use ::redis::{Script, ToRedisArgs};
use uuid::Uuid;

use super::scripts;
use super::shards::Shards;
use crate::EngineError;

static LOAD_HOT_STATE: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/load_hot_state.lua")));

/// How often a rebuild waits for the shard's persister before giving up with 503.
const REBUILD_ATTEMPTS: u32 = 40;
const REBUILD_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The outcome of one [`load_hot_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadResult {
    Created,
    /// Hot state was already there and was left as it is.
    Exists,
    /// The stream holds events of the entity that the persisted copy may lack: nothing was
    /// created; retry once the shard's persister has caught up.
    Stale,
}

/// One entity's hot hash, as an app loads it from its persisted copy.
pub struct HotState<'a, I> {
    /// The hash's key.
    pub key: String,
    /// The stream field that names the entity in its events (`auction_id`, `screening_id`).
    pub id_field: &'a str,
    pub entity: Uuid,
    /// How long the hash lives, in milliseconds (0: for ever).
    pub ttl_ms: i64,
    /// The whole hot state, field by field.
    pub fields: I,
}

/// Recreates a missing hot key: `load(persisted)` reads the entity's persisted copy and loads
/// it with [`load_hot_state`]; retried while the copy may be stale.
pub(crate) async fn rebuild_hot_state<F, Fut>(
    shards: &Shards,
    entity: Uuid,
    what: &str,
    mut load: F,
) -> Result<(), EngineError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<LoadResult, EngineError>>,
{
    let shard = shards.shard_of(entity);
    for _ in 0..REBUILD_ATTEMPTS {
        let persisted = shards.persisted_position(shard).await?;
        match load(persisted).await? {
            LoadResult::Created => {
                tracing::info!(entity = %entity, what, "rebuilt hot state from PostgreSQL");
                metrics::counter!("surge_hot_state_rebuilds_total").increment(1);
                return Ok(());
            }
            LoadResult::Exists => return Ok(()),
            LoadResult::Stale => tokio::time::sleep(REBUILD_PAUSE).await,
        }
    }
    Err(EngineError::Unavailable(format!(
        "the {what}'s recent events are still being persisted; retry shortly"
    )))
}

/// Runs `load_hot_state.lua`: creates the hash from `state.fields`, unless it exists or the
/// entity's shard stream holds events of it after `persisted`.
pub(crate) async fn load_hot_state<F, V, I>(
    shards: &Shards,
    state: HotState<'_, I>,
    persisted: &str,
) -> Result<LoadResult, EngineError>
where
    F: ToRedisArgs,
    V: ToRedisArgs,
    I: IntoIterator<Item = (F, V)>,
{
    let mut invocation = LOAD_HOT_STATE.key(state.key);
    invocation
        .key(shards.keys.events(shards.shard_of(state.entity)))
        .arg(state.id_field)
        .arg(state.entity.to_string())
        .arg(persisted)
        .arg(state.ttl_ms);
    for (field, value) in state.fields {
        invocation.arg(field).arg(value);
    }
    scripts::call(&shards.conn, &invocation, |reply| match reply.word() {
        Some("created") => Ok(LoadResult::Created),
        Some("exists") => Ok(LoadResult::Exists),
        Some("stale") => Ok(LoadResult::Stale),
        _ => Err(reply.malformed("load_hot_state")),
    })
    .await
}
