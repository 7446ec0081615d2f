//! Per-entity broadcast channels: publishers never wait for subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auctions::{AuctionFeed, FeedEvent};

/// Channels kept before `subscribe` sweeps out those nobody listens to any more (entities
/// that never publish — say, a subscription to an unknown id — are not cleaned by `publish`).
const SWEEP_AT: usize = 1024;

pub struct Fanout {
    /// Buffer per subscriber, in events.
    capacity: usize,
    channels: Mutex<Channels>,
}

#[derive(Default)]
struct Channels {
    by_entity: HashMap<Uuid, broadcast::Sender<Arc<FeedEvent>>>,
    /// Size at which the next sweep runs; doubles with the number of live channels.
    sweep_at: usize,
}

impl Fanout {
    pub fn new(capacity: usize) -> Self {
        let channels = Channels { by_entity: HashMap::new(), sweep_at: SWEEP_AT };
        Self { capacity: capacity.max(1), channels: Mutex::new(channels) }
    }

    /// Sends events to the entity's current subscribers, in order. Channels nobody listens to
    /// any more are dropped here, so the map only holds watched entities.
    pub fn publish(&self, entity: Uuid, events: impl IntoIterator<Item = FeedEvent>) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = channels.by_entity.get(&entity) else { return };
        if sender.receiver_count() == 0 {
            channels.by_entity.remove(&entity);
            return;
        }
        for event in events {
            // An error only means every receiver left meanwhile.
            let _ = sender.send(Arc::new(event));
        }
    }
}

impl Fanout {
    /// Whether anyone here listens to `entity`: publishers that must first decode or render an
    /// event skip that work for entities nobody watches.
    pub fn is_watched(&self, entity: Uuid) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.by_entity.get(&entity).is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// Whether anyone here listens to anything.
    pub fn has_watchers(&self) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.by_entity.values().any(|sender| sender.receiver_count() > 0)
    }

    /// Publishes events of several entities, each entity's in the order given.
    pub fn publish_each(&self, events: impl IntoIterator<Item = FeedEvent>) {
        let mut by_auction: Vec<(Uuid, Vec<FeedEvent>)> = Vec::new();
        for event in events {
            match by_auction.iter_mut().find(|(id, _)| *id == event.auction_id) {
                Some((_, events)) => events.push(event),
                None => by_auction.push((event.auction_id, vec![event])),
            }
        }
        for (id, events) in by_auction {
            self.publish(id, events);
        }
    }
}

impl AuctionFeed for Fanout {
    fn subscribe(&self, auction_id: Uuid) -> broadcast::Receiver<Arc<FeedEvent>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if channels.by_entity.len() >= channels.sweep_at {
            channels.by_entity.retain(|_, sender| sender.receiver_count() > 0);
            channels.sweep_at = (channels.by_entity.len() * 2).max(SWEEP_AT);
        }
        channels
            .by_entity
            .entry(auction_id)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::RecvError;

    use super::*;

    fn event(seq: i64) -> FeedEvent {
        FeedEvent::extended(Uuid::nil(), seq, chrono::Utc::now())
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
        assert!(fanout.channels.lock().unwrap().by_entity.is_empty());
    }

    #[tokio::test]
    async fn abandoned_subscriptions_are_swept_once_the_map_grows() {
        let fanout = Fanout::new(4);
        for n in 0..(SWEEP_AT as u128 + 10) {
            drop(fanout.subscribe(Uuid::from_u128(n)));
        }
        assert!(fanout.channels.lock().unwrap().by_entity.len() < SWEEP_AT);
    }
}
