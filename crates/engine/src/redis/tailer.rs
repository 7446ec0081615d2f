//! Fan-out in the distributed deployment: every replica tails every shard stream and hands the
//! events to its own subscribers ([`LiveFeeds`]), in stream order (which is seq order per
//! entity).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::connection::RedisConnection;
use super::shards::Shards;
use super::stream::{self, RawEntry, auction_of};
use super::{deadline, unavailable};
use crate::embedded::Fanout;
use surge_core::auctions::AuctionEvent;
use surge_core::events::AppEvent;

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
    feeds: LiveFeeds,
    stop: CancellationToken,
) {
    let stream = shards.keys.events(shard);
    let mut last = from;
    let mut backoff = Duration::from_millis(50);
    loop {
        // Nobody here listens: keep the position and read nothing. When someone subscribes,
        // reading resumes from where it paused, so no event after their subscription is missed
        // (earlier ones they drop by seq).
        if !feeds.has_watchers() {
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
                publish(&feeds, shard, &entries);
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

/// The feeds of every app with live subscribers: one field per app.
#[derive(Clone)]
pub struct LiveFeeds {
    pub auctions: Arc<Fanout<AuctionEvent>>,
}

impl LiveFeeds {
    fn has_watchers(&self) -> bool {
        self.auctions.has_watchers()
    }

    /// Whether someone here watches the entity an entry is about, read without decoding it.
    fn watches(&self, fields: &[String]) -> bool {
        auction_of(fields).is_some_and(|id| self.auctions.is_watched(id))
    }

    fn publish(&self, events: Vec<AppEvent>) {
        let auctions = events.into_iter().filter_map(|event| match event {
            AppEvent::Auction(event) => Some(event),
            AppEvent::Cinema(_) | AppEvent::Order(_) | AppEvent::Points(_) => None,
        });
        self.auctions.publish_each(auctions);
    }
}

/// Decodes and publishes, in order, the entries of entities someone here is watching; the
/// others (most of them, under a storm) are skipped without being decoded.
fn publish(feeds: &LiveFeeds, shard: u16, entries: &[RawEntry]) {
    let watched = entries.iter().filter(|(_, fields)| feeds.watches(fields));
    let events = watched.filter_map(|(id, fields)| match stream::decode(fields) {
        Ok(event) => Some(event),
        Err(error) => {
            tracing::warn!(shard, entry = %id, error = %error, "fan-out skipped a malformed entry");
            None
        }
    });
    feeds.publish(events.collect());
}
