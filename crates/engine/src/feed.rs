//! Live events per entity, for subscribers (an auction's SSE stream, …).
//!
//! Publishers hand over each app's own events ([`surge_core::events::Event`]); subscribers get
//! them as [`Published`], which carries a slot for whatever the serving layer makes of the
//! event (the HTTP layer renders an SSE frame): made once per event, shared by every
//! subscriber, and never made when nobody listens.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;
use uuid::Uuid;

/// An event as subscribers receive it.
#[derive(Debug)]
pub struct Published<E> {
    pub entity: Uuid,
    pub body: E,
    /// The event rendered for the wire, by the first subscriber that needs it.
    pub rendered: OnceLock<Bytes>,
}

impl<E> Published<E> {
    pub fn new(entity: Uuid, body: E) -> Self {
        Self { entity, body, rendered: OnceLock::new() }
    }

    /// The rendering, made by `render` on first use and then shared.
    pub fn rendered(&self, render: impl FnOnce(Uuid, &E) -> Bytes) -> Bytes {
        self.rendered.get_or_init(|| render(self.entity, &self.body)).clone()
    }
}

/// Live events of one kind, per entity. Each subscriber gets a bounded buffer: one that falls
/// behind sees `RecvError::Lagged` and must resume from the store; it never slows the others.
pub trait Feed<E>: Send + Sync {
    fn subscribe(&self, entity: Uuid) -> broadcast::Receiver<Arc<Published<E>>>;
}
