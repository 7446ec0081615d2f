//! Per-entity broadcast channels of one app's events: publishers never wait for subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use uuid::Uuid;

use surge_core::events::Event;

use crate::feed::{Feed, Published};

/// Channels kept before `subscribe` sweeps out those nobody listens to any more (entities
/// that never publish — say, a subscription to an unknown id — are not cleaned by `publish`).
const SWEEP_AT: usize = 1024;

pub struct Fanout<E> {
    /// Buffer per subscriber, in events.
    capacity: usize,
    channels: Mutex<Channels<E>>,
}

struct Channels<E> {
    by_entity: HashMap<Uuid, broadcast::Sender<Arc<Published<E>>>>,
    /// Size at which the next sweep runs; doubles with the number of live channels.
    sweep_at: usize,
}

impl<E> Fanout<E> {
    pub fn new(capacity: usize) -> Self {
        let channels = Channels { by_entity: HashMap::new(), sweep_at: SWEEP_AT };
        Self { capacity: capacity.max(1), channels: Mutex::new(channels) }
    }

    /// Sends events to the entity's current subscribers, in order. Channels nobody listens to
    /// any more are dropped here, so the map only holds watched entities.
    pub fn publish(&self, entity: Uuid, events: impl IntoIterator<Item = E>) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = channels.by_entity.get(&entity) else { return };
        if sender.receiver_count() == 0 {
            channels.by_entity.remove(&entity);
            return;
        }
        for event in events {
            // An error only means every receiver left meanwhile.
            let _ = sender.send(Arc::new(Published::new(entity, event)));
        }
    }
}

impl<E> Fanout<E> {
    /// Whether anyone here listens to `entity`: publishers that must first decode or render an
    /// event skip that work for entities nobody watches.
    pub fn is_watched(&self, entity: Uuid) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.by_entity.get(&entity).is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// Sends `make()` to the subscribers of every watched entity (a notice that concerns them
    /// all).
    pub fn publish_everywhere(&self, make: impl Fn() -> E) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for (entity, sender) in &channels.by_entity {
            if sender.receiver_count() > 0 {
                let _ = sender.send(Arc::new(Published::new(*entity, make())));
            }
        }
    }

    /// Whether anyone here listens to anything.
    pub fn has_watchers(&self) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.by_entity.values().any(|sender| sender.receiver_count() > 0)
    }

    /// Publishes events of several entities, each entity's in the order given.
    pub fn publish_each(&self, events: impl IntoIterator<Item = Event<E>>) {
        let mut by_entity: Vec<(Uuid, Vec<E>)> = Vec::new();
        for event in events {
            match by_entity.iter_mut().find(|(id, _)| *id == event.entity) {
                Some((_, bodies)) => bodies.push(event.body),
                None => by_entity.push((event.entity, vec![event.body])),
            }
        }
        for (id, bodies) in by_entity {
            self.publish(id, bodies);
        }
    }
}

impl<E: Send + Sync> Feed<E> for Fanout<E> {
    fn subscribe(&self, entity: Uuid) -> broadcast::Receiver<Arc<Published<E>>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if channels.by_entity.len() >= channels.sweep_at {
            channels.by_entity.retain(|_, sender| sender.receiver_count() > 0);
            channels.sweep_at = (channels.by_entity.len() * 2).max(SWEEP_AT);
        }
        channels
            .by_entity
            .entry(entity)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::RecvError;

    use super::*;

    fn event(seq: i64) -> i64 {
        seq
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_without_holding_back_a_fast_one() {
        let fanout = Fanout::<i64>::new(4);
        let mut slow = fanout.subscribe(Uuid::nil());
        let mut fast = fanout.subscribe(Uuid::nil());
        for seq in 1..=10 {
            fanout.publish(Uuid::nil(), [event(seq)]);
            assert_eq!(fast.recv().await.unwrap().body, seq);
        }
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(_))));
    }

    #[tokio::test]
    async fn publishing_to_an_unwatched_entity_is_a_no_op() {
        let fanout = Fanout::<i64>::new(4);
        fanout.publish(Uuid::nil(), [event(1)]);
        drop(fanout.subscribe(Uuid::nil()));
        fanout.publish(Uuid::nil(), [event(2)]);
        assert!(fanout.channels.lock().unwrap().by_entity.is_empty());
    }

    #[tokio::test]
    async fn abandoned_subscriptions_are_swept_once_the_map_grows() {
        let fanout = Fanout::<i64>::new(4);
        for n in 0..(SWEEP_AT as u128 + 10) {
            drop(fanout.subscribe(Uuid::from_u128(n)));
        }
        assert!(fanout.channels.lock().unwrap().by_entity.len() < SWEEP_AT);
    }
}
