//! Per-entity broadcast channels: publishers never wait for subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auctions::{AuctionFeed, FeedEvent};

pub struct Fanout {
    /// Buffer per subscriber, in events.
    capacity: usize,
    channels: Mutex<HashMap<Uuid, broadcast::Sender<Arc<FeedEvent>>>>,
}

impl Fanout {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), channels: Mutex::new(HashMap::new()) }
    }

    /// Sends events to the entity's current subscribers, in order. Channels nobody listens to
    /// any more are dropped here, so the map only holds watched entities.
    pub fn publish(&self, entity: Uuid, events: impl IntoIterator<Item = FeedEvent>) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = channels.get(&entity) else { return };
        if sender.receiver_count() == 0 {
            channels.remove(&entity);
            return;
        }
        for event in events {
            // An error only means every receiver left meanwhile.
            let _ = sender.send(Arc::new(event));
        }
    }
}

impl AuctionFeed for Fanout {
    fn subscribe(&self, auction_id: Uuid) -> broadcast::Receiver<Arc<FeedEvent>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(auction_id)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::RecvError;

    use super::*;
    use crate::auctions::FeedEventKind;

    fn event(seq: i64) -> FeedEvent {
        FeedEvent { auction_id: Uuid::nil(), seq, kind: FeedEventKind::Bid, data: Arc::from("{}") }
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_without_holding_back_a_fast_one() {
        let fanout = Fanout::new(4);
        let mut slow = fanout.subscribe(Uuid::nil());
        let mut fast = fanout.subscribe(Uuid::nil());
        for seq in 1..=10 {
            fanout.publish(Uuid::nil(), [event(seq)]);
            assert_eq!(fast.recv().await.unwrap().seq, seq);
        }
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(_))));
    }

    #[tokio::test]
    async fn publishing_to_an_unwatched_entity_is_a_no_op() {
        let fanout = Fanout::new(4);
        fanout.publish(Uuid::nil(), [event(1)]);
        drop(fanout.subscribe(Uuid::nil()));
        fanout.publish(Uuid::nil(), [event(2)]);
        assert!(fanout.channels.lock().unwrap().is_empty());
    }
}
