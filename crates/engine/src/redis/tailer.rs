//! Fan-out in the distributed deployment: every replica tails every shard stream and hands the
//! events to its own subscribers, in stream order (which is seq order per auction).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::connection::RedisConnection;
use super::shards::Shards;
use super::stream::{RawEntry, ShardEvent, auction_of};
use super::{deadline, unavailable};
use crate::embedded::Fanout;

/// How long one read waits for new entries.
const BLOCK_MS: u64 = 1_000;
/// How often an idle tailer (no local subscribers) checks for one.
const IDLE_POLL: Duration = Duration::from_millis(25);
/// Most entries per read.
const READ_COUNT: usize = 1_024;

/// Tails `shard`'s stream after entry `from` until `stop` is cancelled. `reader` must be a
/// connection of its own: a blocking read holds it.
pub async fn run_tailer(
    shards: Shards,
    reader: RedisConnection,
    shard: u16,
    from: String,
    fanout: Arc<Fanout>,
    stop: CancellationToken,
) {
    let stream = shards.keys.events(shard);
    let mut last = from;
    let mut backoff = Duration::from_millis(50);
    loop {
        // Nobody here listens: keep the position and read nothing. When someone subscribes,
        // reading resumes from where it paused, so no event after their subscription is missed
        // (earlier ones they drop by seq).
        if !fanout.has_watchers() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(IDLE_POLL) => continue,
            }
        }
        let step = async {
            let from = &last;
            let mut conn = reader.clone();
            let reply: Option<Vec<(String, Vec<RawEntry>)>> = deadline(async {
                ::redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(BLOCK_MS)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(from.as_str())
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await?;
            Ok::<_, crate::EngineError>(
                reply.into_iter().flatten().flat_map(|(_, entries)| entries).collect::<Vec<_>>(),
            )
        };
        let entries = tokio::select! {
            _ = stop.cancelled() => return,
            entries = step => entries,
        };
        match entries {
            Ok(entries) => {
                backoff = Duration::from_millis(50);
                if let Some((id, _)) = entries.last() {
                    last = id.clone();
                }
                publish(&fanout, shard, &entries);
            }
            Err(error) => {
                tracing::warn!(shard, error = %error, "fan-out could not read the stream; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The id of the stream's last entry (`0-0` when empty): where tailing starts.
pub async fn stream_end(
    conn: &RedisConnection,
    stream: &str,
) -> Result<String, crate::EngineError> {
    let mut conn = conn.clone();
    let last: Vec<RawEntry> = deadline(async {
        ::redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    })
    .await?;
    Ok(last.into_iter().next().map(|(id, _)| id).unwrap_or_else(|| "0-0".to_owned()))
}

/// Decodes and publishes, in order, the entries of auctions someone here is watching; the
/// others (most of them, under a storm) are skipped without being decoded.
fn publish(fanout: &Fanout, shard: u16, entries: &[RawEntry]) {
    let watched = |fields: &[String]| auction_of(fields).is_some_and(|id| fanout.is_watched(id));
    let events = entries.iter().filter(|(_, fields)| watched(fields)).filter_map(|(id, fields)| {
        match ShardEvent::decode(fields) {
            Ok(event) => event.to_feed(),
            Err(error) => {
                tracing::warn!(shard, entry = %id, error = %error, "fan-out skipped a malformed entry");
                None
            }
        }
    });
    fanout.publish_each(events);
}
