//! The live feed of an auction over server-sent events.
//!
//! The subscriber joins the live broadcast *before* reading what it missed from the store, and
//! drops live events it already replayed, so a reconnect with `Last-Event-ID` yields every bid
//! exactly once and in order. A subscriber that falls behind its buffer is disconnected (it
//! resumes with `Last-Event-ID`); it never slows anyone else.
//!
//! The engine publishes the bid rule's own events ([`AuctionEvent`]); this module renders them
//! as SSE frames. Each event's frame is rendered once and shared by every connection; whatever
//! has queued up for a subscriber goes out as one chunk (one socket write), which is what lets
//! one process feed thousands of subscribers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use surge_core::auctions::AuctionEvent;
use surge_engine::feed::Published;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use uuid::Uuid;

use super::AuctionsState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::sse::{self, HEARTBEAT, SubscriberGauge};

/// Bids read from the store per replay query.
const REPLAY_PAGE: u32 = 500;
/// Most queued events coalesced into one chunk.
const MAX_COALESCED: usize = 64;

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
    State(state): State<AuctionsState>,
    Path(auction_id): Path<Uuid>,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let after = sse::resume_after(&headers, params.after_seq);
    let live = state.feed.subscribe(auction_id);
    let auction = state.store.get(auction_id).await?.ok_or(ApiError::NotFound)?;
    let closing = auction.closed.then(|| {
        let closed = AuctionEvent::Closed {
            seq: auction.bid_count,
            winner: auction.high_bidder.clone(),
            final_price: auction.current_price,
            closed_at: auction.ends_at,
        };
        Published::new(auction_id, closed)
    });
    let feed = Feed {
        heartbeat: state.sse_heartbeat,
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
    let chunks = futures_util::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((chunk, feed))
    });
    Ok(sse::response(chunks, state.shutdown.clone()))
}

struct Feed {
    state: AuctionsState,
    heartbeat: Duration,
    auction_id: Uuid,
    ends_at: DateTime<Utc>,
    /// Replay position while catching up; `None` once live.
    replay_after: Option<i64>,
    /// Highest bid seq sent so far; live bids at or below it were already replayed.
    last_seq: i64,
    backlog: VecDeque<Arc<Published<AuctionEvent>>>,
    live: broadcast::Receiver<Arc<Published<AuctionEvent>>>,
    /// The `closed` event to send after the replay when the auction had already closed.
    closing: Option<Published<AuctionEvent>>,
    finished: bool,
    _gauge: SubscriberGauge,
}

impl Feed {
    /// The next bytes to send: one or more frames, or a heartbeat; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if !self.backlog.is_empty() {
                let mut chunk = BytesMut::new();
                while let Some(event) = self.backlog.pop_front() {
                    chunk.extend_from_slice(&self.frame(&event));
                    if chunk.len() > 64 * 1024 {
                        break;
                    }
                }
                return Some(chunk.freeze());
            }
            if self.finished {
                return None;
            }
            if let Some(after) = self.replay_after {
                self.replay_page(after).await?;
                continue;
            }
            if let Some(closing) = self.closing.take() {
                return Some(self.frame(&closing));
            }
            let first = match tokio::time::timeout(self.heartbeat, self.live.recv()).await {
                Err(_) => return Some(Bytes::from_static(HEARTBEAT)),
                Ok(received) => self.accept(received)?,
            };
            let mut frames: Vec<Bytes> = Vec::new();
            if let Some(event) = first {
                frames.push(self.frame(&event));
            }
            // Whatever else is already queued goes out in the same write.
            while frames.len() < MAX_COALESCED && !self.finished {
                let received = match self.live.try_recv() {
                    Ok(event) => Ok(event),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                };
                if let Some(event) = self.accept(received)? {
                    frames.push(self.frame(&event));
                }
            }
            match frames.len() {
                0 => continue,
                // The usual case for a subscriber that keeps up: the shared frame, no copy.
                1 => return frames.pop(),
                _ => return Some(frames.concat().into()),
            }
        }
    }

    /// Filters a live receive: `Ok(None)` skips a replayed duplicate; `None` ends the stream.
    fn accept(
        &self,
        received: Result<Arc<Published<AuctionEvent>>, RecvError>,
    ) -> Option<Option<Arc<Published<AuctionEvent>>>> {
        match received {
            // Bids (and the extensions they caused) already sent by the replay.
            Ok(event) if self.already_sent(&event.body) => Some(None),
            Ok(event) => Some(Some(event)),
            Err(RecvError::Lagged(missed)) => {
                tracing::info!(auction.id = %self.auction_id, missed, "slow SSE subscriber disconnected");
                metrics::counter!("surge_sse_lagged_total").increment(1);
                None
            }
            Err(RecvError::Closed) => None,
        }
    }

    /// Queues the next page of missed bids; switches to live when there are no more.
    async fn replay_page(&mut self, after: i64) -> Option<()> {
        let page = self.state.store.bids_after(self.auction_id, after, REPLAY_PAGE).await;
        let Ok(page) = page else {
            tracing::warn!(auction.id = %self.auction_id, "replay failed; closing the stream");
            return None;
        };
        self.replay_after =
            page.last().map(|bid| bid.seq).filter(|_| page.len() == REPLAY_PAGE as usize);
        for bid in page {
            let event = AuctionEvent::BidPlaced {
                bid_id: bid.id,
                bidder: bid.bidder,
                amount: bid.amount,
                seq: bid.seq,
                placed_at: bid.placed_at,
                ends_at: self.ends_at,
            };
            self.backlog.push_back(Arc::new(Published::new(bid.auction_id, event)));
        }
        Some(())
    }

    /// Whether a live event was already sent by the replay: a bid at or below the last seq
    /// sent, or the extension of an earlier bid. The close always goes out.
    fn already_sent(&self, event: &AuctionEvent) -> bool {
        match event {
            AuctionEvent::BidPlaced { seq, .. } => *seq <= self.last_seq,
            AuctionEvent::Extended { seq, .. } => *seq < self.last_seq,
            AuctionEvent::Closed { .. } => false,
        }
    }

    /// The event's shared frame; records what the subscriber has been sent.
    fn frame(&mut self, event: &Published<AuctionEvent>) -> Bytes {
        match &event.body {
            AuctionEvent::BidPlaced { seq, .. } => self.last_seq = self.last_seq.max(*seq),
            AuctionEvent::Closed { .. } => self.finished = true,
            AuctionEvent::Extended { .. } => {}
        }
        event.rendered(sse_frame)
    }
}

/// The whole server-sent-events frame of an event: `event:` (`bid`, `extended`, `closed`),
/// `id:` (the seq of the latest bid, which a reconnecting client sends back as
/// `Last-Event-ID`) and `data:` (one line of JSON: JSON never contains a raw newline).
fn sse_frame(auction_id: Uuid, event: &AuctionEvent) -> Bytes {
    let (kind, data) = match event {
        AuctionEvent::BidPlaced { bid_id, bidder, amount, seq, placed_at, ends_at } => {
            let data = serde_json::json!({
                "id": bid_id,
                "auction_id": auction_id,
                "bidder": bidder,
                "amount": amount,
                "seq": seq,
                "placed_at": placed_at,
                "current_price": amount,
                "ends_at": ends_at,
            });
            ("bid", data)
        }
        AuctionEvent::Extended { ends_at, .. } => {
            ("extended", serde_json::json!({ "ends_at": ends_at }))
        }
        AuctionEvent::Closed { winner, final_price, .. } => {
            ("closed", serde_json::json!({ "winner": winner, "final_price": final_price }))
        }
    };
    sse::frame(kind, event.seq(), &data)
}
