//! The deals' live events in this process: each store's orders, for its owner's streams, and
//! the announcements (deals posted, favourites changed) every favourites stream reads.
//!
//! Both backends publish here once a command has committed: the embedded writer after its
//! batch; a replica of the distributed deployment from the notices of every replica's commits
//! (so a stream on any replica sees every replica's orders). When this process may have missed
//! events — a lost notice connection — [`DealsHub::resync`] tells every stream to catch up from
//! the store, where every event is kept with its number.

use std::sync::Arc;

use surge_store::deals::{Announcement, StoreEvent};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::embedded::Fanout;
use crate::feed::{Feed, Published};

/// What a live deals stream receives: an event, or word that events may have been missed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live<E> {
    Event(E),
    Resync,
}

pub type StoreEvents = broadcast::Receiver<Arc<Published<Live<StoreEvent>>>>;
pub type Announcements = broadcast::Receiver<Arc<Published<Live<Announcement>>>>;

pub struct DealsHub {
    stores: Fanout<Live<StoreEvent>>,
    announcements: broadcast::Sender<Arc<Published<Live<Announcement>>>>,
}

impl DealsHub {
    /// `capacity`: events buffered per stream before it lags (and catches up from the store).
    pub fn new(capacity: usize) -> Self {
        Self { stores: Fanout::new(capacity), announcements: broadcast::channel(capacity.max(1)).0 }
    }

    /// The live events of one store.
    pub fn store_events(&self, store_id: Uuid) -> StoreEvents {
        self.stores.subscribe(store_id)
    }

    /// Every announcement, in order.
    pub fn announcements(&self) -> Announcements {
        self.announcements.subscribe()
    }

    /// Committed store events, each store's in the order given.
    pub fn publish_store_events(&self, events: impl IntoIterator<Item = StoreEvent>) {
        for event in events {
            if self.stores.is_watched(event.store_id) {
                self.stores.publish(event.store_id, [Live::Event(event)]);
            }
        }
    }

    /// A committed announcement.
    pub fn announce(&self, announcement: Announcement) {
        // An error only means nobody listens.
        let _ = self
            .announcements
            .send(Arc::new(Published::new(Uuid::nil(), Live::Event(announcement))));
    }

    /// Events may have been missed here: every stream catches up from the store.
    pub fn resync(&self) {
        self.stores.publish_everywhere(|| Live::Resync);
        let _ = self.announcements.send(Arc::new(Published::new(Uuid::nil(), Live::Resync)));
    }
}
