//! `Idempotency-Key` on the distributed engine.
//!
//! A key belongs to the user across every app and every shard. Before a keyed command runs,
//! [`claim`] records the request's digest under the user's own key (one slot per user), so the
//! same key with a different request is refused wherever it goes. The entity's script then keeps
//! the command's first outcome in the entity's shard (the request digest names the entity, so a
//! retry always reaches the same shard) and replays it for a retry, atomically with the command.

use std::sync::LazyLock;

use ::redis::Script;
use surge_core::idempotency::{IdempotencyKey, WINDOW_HOURS};
use uuid::Uuid;

use super::scripts;
use super::shards::Shards;
use super::time::reading;
use crate::EngineError;
use crate::clock::AuthorityTime;

/// How long an `Idempotency-Key` is remembered, in milliseconds.
pub(crate) const WINDOW_MS: i64 = WINDOW_HOURS * 3600 * 1000;

static CLAIM: LazyLock<Script> =
    LazyLock::new(|| scripts::load(include_str!("lua/claim_idempotency_key.lua")));

/// Makes `key` this request's for the user, or refuses with
/// [`EngineError::IdempotencyKeyReused`] when another request holds it.
/// The window is measured on the server's clock, like the entity scripts' own.
pub(crate) async fn claim(
    shards: &Shards,
    user_id: Uuid,
    key: &IdempotencyKey,
    time: AuthorityTime,
) -> Result<(), EngineError> {
    let mut invocation = CLAIM.key(shards.keys.user_idempotency(user_id, &key.key));
    invocation.arg(hex(&key.request_hash)).arg(reading(time)).arg(WINDOW_MS);
    scripts::call(&shards.conn, &invocation, |reply| match reply.word() {
        Some("ok") => Ok(()),
        Some("reused") => Err(EngineError::IdempotencyKeyReused),
        _ => Err(reply.malformed("claim_idempotency_key")),
    })
    .await
}

/// The script arguments of a command's keyed record in the entity's shard: the record's key
/// and the request digest, or — for an unkeyed request — a key of the shard's slot the script
/// ignores and an empty digest.
pub(crate) fn shard_record(
    shards: &Shards,
    shard: u16,
    user_id: Uuid,
    key: Option<&IdempotencyKey>,
) -> (String, String) {
    match key {
        Some(key) => (shards.keys.idempotency(shard, user_id, &key.key), hex(&key.request_hash)),
        None => (shards.keys.persisted(shard), String::new()),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}
