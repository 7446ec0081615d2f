//! Group commit to Redis: bids on one auction that arrive while its previous call is in flight
//! travel together in the next one. Under a storm a replica makes one script call (one round
//! trip, one AOF write) per batch instead of one per bid; a lone bid still goes at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::auctions::{Floor, RedisAuctions, RedisBidResult};
use crate::EngineError;
use crate::auctions::PlaceBid;
use crate::clock::Clock;

/// Most bids in one script call; the rest wait for the next.
const MAX_BATCH: usize = 256;

type Reply = Result<(RedisBidResult, Option<Floor>), EngineError>;

struct Waiting {
    bid: PlaceBid,
    reply: oneshot::Sender<Reply>,
}

/// One auction's queue and whether a task is draining it.
#[derive(Default)]
struct Lane {
    queue: Mutex<Vec<Waiting>>,
    draining: AtomicBool,
}

#[derive(Clone)]
pub struct BidBatcher {
    redis: RedisAuctions,
    clock: Arc<dyn Clock>,
    lanes: moka::sync::Cache<Uuid, Arc<Lane>>,
}

impl BidBatcher {
    pub fn new(redis: RedisAuctions, clock: Arc<dyn Clock>) -> Self {
        let lanes = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_idle(Duration::from_secs(600))
            .build();
        Self { redis, clock, lanes }
    }

    /// Places an unkeyed bid, batched with the others of its auction.
    pub async fn place(&self, bid: PlaceBid) -> Reply {
        let lane = self.lanes.get_with(bid.auction_id, || Arc::new(Lane::default()));
        let (reply, answer) = oneshot::channel();
        lane.queue.lock().unwrap_or_else(|p| p.into_inner()).push(Waiting { bid, reply });
        if !lane.draining.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().drain(lane));
        }
        answer.await.map_err(|_| EngineError::Unavailable("the bid batch was dropped".into()))?
    }

    /// Sends the lane's queue in batches until it stays empty.
    async fn drain(self, lane: Arc<Lane>) {
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = lane.queue.lock().unwrap_or_else(|p| p.into_inner());
                let take = queue.len().min(MAX_BATCH);
                queue.drain(..take).collect()
            };
            if batch.is_empty() {
                lane.draining.store(false, Ordering::Release);
                // A bid queued between the take and the store must not be stranded.
                let waiting = !lane.queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
                if !waiting || lane.draining.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            let bids: Vec<&PlaceBid> = batch.iter().map(|waiting| &waiting.bid).collect();
            metrics::histogram!("surge_redis_bid_batch_size").record(bids.len() as f64);
            match self.redis.place_bids(&bids, self.clock.authority_time()).await {
                Ok(replies) => {
                    for (waiting, reply) in batch.into_iter().zip(replies) {
                        let _ = waiting.reply.send(Ok(reply));
                    }
                }
                Err(error) => {
                    for waiting in batch {
                        let _ = waiting.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}
