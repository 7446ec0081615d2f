//! The deals' live streams over server-sent events: a store's orders for its owner
//! (`/stores/{id}/events`: `order_created`, `order_cancelled`, `id:` = the store's event number)
//! and the deals posted in the caller's favourite stores (`/me/events`: `deal_created`, `id:` =
//! the deal's number).
//!
//! Both are numbered like the auction's stream: a stream joins the live hub *before* it reads
//! what it missed from the store, sends each event once and in number order, and catches up from
//! the store whenever it may have missed something — a `Last-Event-ID` (or `after_seq`), a gap
//! in a store's numbers, a lag behind its buffer, or a resync from the hub (a replica that lost
//! its notice connection). Each live frame is rendered once and shared by every stream.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use surge_core::deals::orders::OrderEvent;
use surge_engine::clock::Clock;
use surge_engine::deals::feed::Live;
use surge_engine::feed::Published;
use surge_store::StoreResult;
use surge_store::deals::{Announcement, DealPosted, DealStore, StoreEvent};
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use super::{Deal, DealsState, owned_store};
use crate::error::ApiResult;
use crate::extract::{AuthUser, Path, Query};
use crate::sse::{self, HEARTBEAT, SubscriberGauge};

/// Events read from the store per catch-up query.
const CATCH_UP_PAGE: u32 = 500;

#[derive(Debug, Deserialize)]
pub struct EventsParams {
    pub after_seq: Option<i64>,
}

/// Orders placed and cancelled at the store's deals, live, for its owner.
#[utoipa::path(get, path = "/api/v1/stores/{id}/events", tag = "deals", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("after_seq" = Option<i64>, Query, description = "replay the store's events after this number first"),
        ("Last-Event-ID" = Option<String>, Header, description = "same as after_seq, set by EventSource on reconnect")),
    responses((status = 200, content_type = "text/event-stream", description = "`order_created` and `order_cancelled` events (id = the store's event number; data: the order with `order_id`, `deal_id`); a comment heartbeat"),
        (status = 403, description = "`not_store_owner`")))]
pub async fn store_stream(
    State(state): State<DealsState>,
    Path(store_id): Path<Uuid>,
    user: AuthUser,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    owned_store(&state, &user, store_id).await?;
    let after = sse::resume_after(&headers, params.after_seq);
    let live = state.hub.store_events(store_id);
    let last = match after {
        Some(after) => after,
        None => state.store.last_store_event(store_id).await?,
    };
    let source = StoreOrders { store: state.store.clone(), store_id, live };
    Ok(stream(&state, source, last, after.is_some()))
}

/// Deals posted in the caller's favourite stores, live.
#[utoipa::path(get, path = "/api/v1/me/events", tag = "deals", security(("bearer" = [])),
    params(("after_seq" = Option<i64>, Query, description = "replay the favourite stores' deals posted after this number first"),
        ("Last-Event-ID" = Option<String>, Header, description = "same as after_seq, set by EventSource on reconnect")),
    responses((status = 200, content_type = "text/event-stream", description = "`deal_created` events (id = the deal's number; data: the deal with `deal_id`); a comment heartbeat")))]
pub async fn my_stream(
    State(state): State<DealsState>,
    user: AuthUser,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let after = sse::resume_after(&headers, params.after_seq);
    let live = state.hub.announcements();
    let favorites = state.store.favorites(user.id).await?.into_iter().collect();
    let last = match after {
        Some(after) => after,
        None => state.store.last_deal_seq().await?,
    };
    let source = FavoriteDeals {
        store: state.store.clone(),
        clock: state.clock.clone(),
        user_id: user.id,
        favorites,
        live,
    };
    Ok(stream(&state, source, last, after.is_some()))
}

fn stream<S: Source>(state: &DealsState, source: S, last: i64, catch_up: bool) -> Response {
    let feed = Numbered {
        source,
        heartbeat: state.sse_heartbeat,
        last,
        catching_up: catch_up,
        backlog: VecDeque::new(),
        _gauge: SubscriberGauge::new(),
    };
    let chunks = futures_util::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((chunk, feed))
    });
    sse::response(chunks, state.shutdown.clone())
}

/// What a live event is to a stream.
enum Take {
    /// Send it: the stream's next event, with its number.
    Send(i64),
    /// Not for this stream, or already sent.
    Skip,
    /// Something before it was missed: catch up from the store (which has it too).
    CatchUp,
}

/// Where a numbered stream's events come from: the live hub, and the store for what it missed.
#[async_trait]
trait Source: Send + 'static {
    type Body: Send + Sync + 'static;

    fn live(&mut self) -> &mut broadcast::Receiver<Arc<Published<Live<Self::Body>>>>;
    /// The frames of (at most [`CATCH_UP_PAGE`]) events after number `after`, in order, each
    /// with its number.
    async fn missed(&mut self, after: i64) -> StoreResult<Vec<(i64, Bytes)>>;
    /// What the live event `body` is to this stream, which has sent up to number `last`.
    fn take(&mut self, body: &Self::Body, last: i64) -> Take;
    /// The live event's frame, shared by every stream.
    fn frame(&self, event: &Published<Live<Self::Body>>) -> Bytes;
}

struct Numbered<S> {
    source: S,
    heartbeat: Duration,
    /// The number of the last event sent (or the position the stream started from).
    last: i64,
    catching_up: bool,
    backlog: VecDeque<Bytes>,
    _gauge: SubscriberGauge,
}

impl<S: Source> Numbered<S> {
    /// The next bytes to send: frames, or a heartbeat; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if !self.backlog.is_empty() {
                let mut chunk = BytesMut::new();
                while let Some(frame) = self.backlog.pop_front() {
                    chunk.extend_from_slice(&frame);
                    if chunk.len() > 64 * 1024 {
                        break;
                    }
                }
                return Some(chunk.freeze());
            }
            if self.catching_up {
                let Ok(page) = self.source.missed(self.last).await else {
                    tracing::warn!("catching up a deals stream failed; closing it");
                    return None;
                };
                self.catching_up = page.len() == CATCH_UP_PAGE as usize;
                for (seq, frame) in page {
                    self.last = seq;
                    self.backlog.push_back(frame);
                }
                continue;
            }
            let received = tokio::time::timeout(self.heartbeat, self.source.live().recv()).await;
            let event = match received {
                Err(_) => return Some(Bytes::from_static(HEARTBEAT)),
                Ok(Err(RecvError::Closed)) => return None,
                Ok(Err(RecvError::Lagged(missed))) => {
                    tracing::info!(
                        missed,
                        "a deals stream fell behind; catching up from the store"
                    );
                    metrics::counter!("surge_sse_lagged_total").increment(1);
                    self.catching_up = true;
                    continue;
                }
                Ok(Ok(event)) => event,
            };
            let take = match &event.body {
                Live::Resync => Take::CatchUp,
                Live::Event(body) => self.source.take(body, self.last),
            };
            match take {
                Take::Send(seq) => {
                    self.last = seq;
                    return Some(self.source.frame(&event));
                }
                Take::Skip => {}
                Take::CatchUp => self.catching_up = true,
            }
        }
    }
}

/// A store's orders, for its owner.
struct StoreOrders {
    store: Arc<dyn DealStore>,
    store_id: Uuid,
    live: broadcast::Receiver<Arc<Published<Live<StoreEvent>>>>,
}

#[async_trait]
impl Source for StoreOrders {
    type Body = StoreEvent;

    fn live(&mut self) -> &mut broadcast::Receiver<Arc<Published<Live<StoreEvent>>>> {
        &mut self.live
    }

    async fn missed(&mut self, after: i64) -> StoreResult<Vec<(i64, Bytes)>> {
        let events = self.store.store_events_after(self.store_id, after, CATCH_UP_PAGE).await?;
        Ok(events.iter().filter_map(|event| Some((event.seq, order_frame(event)?))).collect())
    }

    /// The store's numbers have no gaps: the next one is sent, an earlier one was, a later one
    /// means some were missed.
    fn take(&mut self, event: &StoreEvent, last: i64) -> Take {
        match event.seq {
            seq if seq <= last => Take::Skip,
            seq if seq == last + 1 => Take::Send(seq),
            _ => Take::CatchUp,
        }
    }

    fn frame(&self, event: &Published<Live<StoreEvent>>) -> Bytes {
        event.rendered(|_, body| match body {
            Live::Event(event) => order_frame(event).unwrap_or_default(),
            Live::Resync => Bytes::new(),
        })
    }
}

/// `order_created` / `order_cancelled`: the order as it is now, under its id and `order_id`.
fn order_frame(event: &StoreEvent) -> Option<Bytes> {
    let (kind, status, order_id, deal_id, buyer_id, quantity, total, at) = match event.event {
        OrderEvent::Placed { order_id, deal_id, buyer_id, quantity, total, at } => {
            ("order_created", "confirmed", order_id, deal_id, buyer_id, quantity, total, at)
        }
        OrderEvent::Cancelled { order_id, deal_id, buyer_id, quantity, total, at } => {
            ("order_cancelled", "cancelled", order_id, deal_id, buyer_id, quantity, total, at)
        }
        OrderEvent::PickedUp { .. } => return None,
    };
    let data = serde_json::json!({
        "id": order_id,
        "order_id": order_id,
        "deal_id": deal_id,
        "store_id": event.store_id,
        "buyer_id": buyer_id,
        "quantity": quantity,
        "total_price": total,
        "status": status,
        "at": at,
        "seq": event.seq,
    });
    Some(sse::frame(kind, event.seq, &data))
}

/// The deals posted in one user's favourite stores.
struct FavoriteDeals {
    store: Arc<dyn DealStore>,
    clock: Arc<dyn Clock>,
    user_id: Uuid,
    /// Kept current by the favourites changes among the announcements.
    favorites: HashSet<Uuid>,
    live: broadcast::Receiver<Arc<Published<Live<Announcement>>>>,
}

#[async_trait]
impl Source for FavoriteDeals {
    type Body = Announcement;

    fn live(&mut self) -> &mut broadcast::Receiver<Arc<Published<Live<Announcement>>>> {
        &mut self.live
    }

    /// Also reads the favourites again: a stream that missed announcements may have missed a
    /// change of them.
    async fn missed(&mut self, after: i64) -> StoreResult<Vec<(i64, Bytes)>> {
        self.favorites = self.store.favorites(self.user_id).await?.into_iter().collect();
        let deals = self.store.favorite_deals_after(self.user_id, after, CATCH_UP_PAGE).await?;
        let now = self.clock.now();
        Ok(deals.iter().map(|posted| (posted.seq, deal_frame(posted, now))).collect())
    }

    fn take(&mut self, announcement: &Announcement, last: i64) -> Take {
        match announcement {
            Announcement::DealPosted(posted)
                if posted.seq > last && self.favorites.contains(&posted.deal.store_id) =>
            {
                Take::Send(posted.seq)
            }
            Announcement::DealPosted(_) => Take::Skip,
            Announcement::FavoriteChanged { user_id, store_id, favorite } => {
                if *user_id == self.user_id {
                    if *favorite {
                        self.favorites.insert(*store_id);
                    } else {
                        self.favorites.remove(store_id);
                    }
                }
                Take::Skip
            }
        }
    }

    fn frame(&self, event: &Published<Live<Announcement>>) -> Bytes {
        event.rendered(|_, body| match body {
            Live::Event(Announcement::DealPosted(posted)) => deal_frame(posted, self.clock.now()),
            _ => Bytes::new(),
        })
    }
}

/// `deal_created`: the deal as GET `/deals/{id}` shows it, with `deal_id`.
fn deal_frame(posted: &DealPosted, now: DateTime<Utc>) -> Bytes {
    let deal = Deal::from_record(posted.deal.clone(), now);
    let mut data = serde_json::to_value(&deal).unwrap_or_default();
    if let Some(object) = data.as_object_mut() {
        object.insert("deal_id".into(), serde_json::json!(posted.deal.id));
        object.insert("seq".into(), serde_json::json!(posted.seq));
    }
    sse::frame("deal_created", posted.seq, &data)
}
