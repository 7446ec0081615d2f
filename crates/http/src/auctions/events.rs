//! The live feed of an auction over server-sent events.
//!
//! The subscriber joins the live broadcast *before* reading what it missed from the store, and
//! drops live events it already replayed, so a reconnect with `Last-Event-ID` yields every bid
//! exactly once and in order. A subscriber that falls behind its buffer is disconnected (it
//! resumes with `Last-Event-ID`); it never slows anyone else.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use surge_engine::auctions::{AcceptedBid, FeedEvent, FeedEventKind};
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::state::AppState;

/// Bids read from the store per replay query.
const REPLAY_PAGE: u32 = 500;

#[derive(Debug, Deserialize)]
pub struct EventsParams {
    pub after_seq: Option<i64>,
}

/// Live bids, extensions and the close of an auction.
#[utoipa::path(get, path = "/api/v1/auctions/{id}/events", tag = "auctions",
    params(("id" = Uuid, Path), ("after_seq" = Option<i64>, Query, description = "replay bids after this seq first"),
        ("Last-Event-ID" = Option<String>, Header, description = "same as after_seq, set by EventSource on reconnect")),
    responses((status = 200, content_type = "text/event-stream", description = "`bid` (id = seq), `extended`, `closed` events; a comment heartbeat"), (status = 404)))]
pub async fn stream(
    State(state): State<AppState>,
    Path(auction_id): Path<Uuid>,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = last_event_id.or(params.after_seq).map(|seq| seq.max(0));
    let live = state.feed.subscribe(auction_id);
    let auction = state.auctions.get(auction_id).await?.ok_or(ApiError::NotFound)?;
    let closing = auction.closed.then(|| {
        FeedEvent::closed(
            auction_id,
            auction.bid_count,
            auction.high_bidder.as_ref(),
            auction.current_price,
        )
    });
    let feed = Feed {
        state: state.clone(),
        auction_id,
        ends_at: auction.ends_at,
        replay_after: after,
        last_seq: after.unwrap_or(0),
        backlog: VecDeque::new(),
        live,
        closing,
        finished: false,
        _gauge: SubscriberGauge::new(),
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    })
    .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(state.settings.sse_heartbeat)))
}

struct Feed {
    state: AppState,
    auction_id: Uuid,
    ends_at: DateTime<Utc>,
    /// Replay position while catching up; `None` once live.
    replay_after: Option<i64>,
    /// Highest bid seq sent so far; live bids at or below it were already replayed.
    last_seq: i64,
    backlog: VecDeque<Arc<FeedEvent>>,
    live: broadcast::Receiver<Arc<FeedEvent>>,
    /// The `closed` event to send after the replay when the auction had already closed.
    closing: Option<FeedEvent>,
    finished: bool,
    _gauge: SubscriberGauge,
}

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Some(self.emit(&event));
            }
            if self.finished {
                return None;
            }
            if let Some(after) = self.replay_after {
                self.replay_page(after).await?;
                continue;
            }
            if let Some(closing) = self.closing.take() {
                self.finished = true;
                return Some(self.emit(&closing));
            }
            match self.live.recv().await {
                Ok(event) if event.kind == FeedEventKind::Bid && event.seq <= self.last_seq => {}
                Ok(event) => return Some(self.emit(&event)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(auction.id = %self.auction_id, missed, "slow SSE subscriber disconnected");
                    metrics::counter!("surge_sse_lagged_total").increment(1);
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Queues the next page of missed bids; switches to live when there are no more.
    async fn replay_page(&mut self, after: i64) -> Option<()> {
        let page = self.state.auctions.bids_after(self.auction_id, after, REPLAY_PAGE).await;
        let Ok(page) = page else {
            tracing::warn!(auction.id = %self.auction_id, "replay failed; closing the stream");
            return None;
        };
        self.replay_after =
            page.last().map(|bid| bid.seq).filter(|_| page.len() == REPLAY_PAGE as usize);
        for bid in page {
            let accepted = AcceptedBid {
                id: bid.id,
                auction_id: bid.auction_id,
                amount: bid.amount,
                seq: bid.seq,
                placed_at: bid.placed_at,
                bidder: bid.bidder,
            };
            self.backlog.push_back(Arc::new(FeedEvent::bid(
                &accepted,
                accepted.amount,
                self.ends_at,
            )));
        }
        Some(())
    }

    fn emit(&mut self, event: &FeedEvent) -> Event {
        if event.kind == FeedEventKind::Bid {
            self.last_seq = self.last_seq.max(event.seq);
        }
        if event.kind == FeedEventKind::Closed {
            self.finished = true;
        }
        Event::default().event(event.kind.as_str()).id(event.seq.to_string()).data(event.data())
    }
}

/// Counts open SSE streams in `surge_sse_subscribers` for as long as it lives.
struct SubscriberGauge;

impl SubscriberGauge {
    fn new() -> Self {
        metrics::gauge!("surge_sse_subscribers").increment(1.0);
        SubscriberGauge
    }
}

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        metrics::gauge!("surge_sse_subscribers").decrement(1.0);
    }
}
