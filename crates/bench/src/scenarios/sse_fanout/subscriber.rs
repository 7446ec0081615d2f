//! The subscriber side of the fan-out: many tasks, each holding one event stream open and timing
//! every bid event against the moment its POST was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::{Conn, Endpoint};
use crate::histogram::Histogram;
use crate::sse::SseParser;

/// Send instant of each bid, indexed by seq; written by the bidder, read lock-free by every
/// subscriber.
pub struct SendTimes {
    base: Instant,
    /// Nanoseconds after `base`, plus one; 0 = not sent.
    slots: Box<[AtomicU64]>,
}

impl SendTimes {
    /// Room for seqs `1..=max_seq`; later seqs are ignored.
    pub fn new(max_seq: usize) -> Self {
        Self { base: Instant::now(), slots: (0..=max_seq).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Records that the bid that will get `seq` was sent at `at`.
    pub fn set(&self, seq: u64, at: Instant) {
        let nanos = u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX - 1);
        if let Some(slot) = usize::try_from(seq).ok().and_then(|i| self.slots.get(i)) {
            slot.store(nanos + 1, Ordering::Release);
        }
    }

    /// When the bid with `seq` was sent, if the bench sent it.
    pub fn get(&self, seq: u64) -> Option<Instant> {
        let slot = self.slots.get(usize::try_from(seq).ok()?)?;
        match slot.load(Ordering::Acquire) {
            0 => None,
            v => Some(self.base + Duration::from_nanos(v - 1)),
        }
    }
}

/// What every subscriber task shares.
pub struct Shared {
    /// The server.
    pub endpoint: Endpoint,
    /// `/api/v1/auctions/{id}/events`.
    pub events_uri: Uri,
    /// Send instants by seq.
    pub send_times: SendTimes,
    /// Bid events received by all subscribers together, to know when delivery is complete.
    pub received: AtomicU64,
    /// Bounds how many streams are being opened at once.
    pub permits: Semaphore,
    /// Opening a stream after this counts as a failure.
    pub open_deadline: Instant,
}

/// What the subscribers saw, added up.
#[derive(Default)]
pub struct Totals {
    /// Subscribers whose stream opened.
    pub opened: u64,
    /// Of those, streams that ended or broke before the bench stopped them.
    pub ended_early: u64,
    /// First error of a stream that ended early.
    pub first_error: Option<String>,
    /// Bid events received.
    pub events: u64,
    /// Comment lines (heartbeats) received.
    pub heartbeats: u64,
    /// Bid events whose seq the bench never sent (or could not read).
    pub unmatched: u64,
    /// Bid events at or below a seq the subscriber had already seen.
    pub out_of_order: u64,
    /// Delivery latency of matched bid events.
    pub latency: Histogram,
}

/// All subscriber tasks of a run.
pub struct Fanout {
    tasks: Vec<JoinHandle<Totals>>,
    stop: watch::Sender<bool>,
    /// Streams that opened.
    pub connected: u64,
    /// Streams that could not be opened.
    pub failed: u64,
    /// Why the first failed stream failed.
    pub first_error: Option<String>,
}

impl Fanout {
    /// Starts `n` subscribers and waits until each has opened its stream or given up.
    pub async fn open(shared: &Arc<Shared>, n: usize) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, mut ready_rx) = mpsc::channel(1024);
        let tasks = (0..n)
            .map(|_| {
                let task = subscriber(Arc::clone(shared), ready_tx.clone(), stop_rx.clone());
                tokio::spawn(task)
            })
            .collect();
        drop(ready_tx);
        let mut fanout = Self { tasks, stop, connected: 0, failed: 0, first_error: None };
        let deadline =
            tokio::time::Instant::from_std(shared.open_deadline + Duration::from_secs(2));
        while let Ok(Some(result)) = tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            match result {
                Ok(()) => fanout.connected += 1,
                Err(e) => {
                    fanout.failed += 1;
                    fanout.first_error.get_or_insert(e);
                }
            }
            if (fanout.connected + fanout.failed).is_multiple_of(1000) {
                eprintln!("surge-bench: {} connected, {} failed", fanout.connected, fanout.failed);
            }
        }
        fanout
    }

    /// Stops every subscriber and adds up what they saw.
    pub async fn finish(self) -> Totals {
        let _ = self.stop.send(true);
        let mut total = Totals::default();
        for task in self.tasks {
            let Ok(s) = task.await else { continue };
            total.opened += s.opened;
            total.ended_early += s.ended_early;
            if total.first_error.is_none() {
                total.first_error = s.first_error;
            }
            total.events += s.events;
            total.heartbeats += s.heartbeats;
            total.unmatched += s.unmatched;
            total.out_of_order += s.out_of_order;
            total.latency.merge(&s.latency);
        }
        total
    }
}

async fn open_stream(shared: &Shared) -> Result<(Conn, Incoming)> {
    let mut conn = shared.endpoint.connect().await?;
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.method_mut() = Method::GET;
    *req.uri_mut() = shared.events_uri.clone();
    let headers = req.headers_mut();
    headers.insert(header::HOST, shared.endpoint.host_header().clone());
    headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
    let response = conn.send_streaming(req).await?;
    if response.status() != StatusCode::OK {
        bail!("event stream answered {}", response.status());
    }
    Ok((conn, response.into_body()))
}

/// One subscriber: open the stream (reporting on `ready`), then read events until `stop`.
/// Returns its own [`Totals`] (with `opened` 0 or 1).
async fn subscriber(
    shared: Arc<Shared>,
    ready: mpsc::Sender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) -> Totals {
    let mut stats = Totals::default();
    let opened = match shared.permits.acquire().await {
        Ok(_permit) => {
            let deadline = tokio::time::Instant::from_std(shared.open_deadline);
            match tokio::time::timeout_at(deadline, open_stream(&shared)).await {
                Ok(result) => result.map_err(|e| format!("{e:#}")),
                Err(_) => Err("timed out while opening".to_owned()),
            }
        }
        Err(_) => Err("connection permits closed".to_owned()),
    };
    let (conn, mut body) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return stats;
        }
    };
    stats.opened = 1;
    let _ = ready.send(Ok(())).await;
    drop(ready);

    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut last_seq = 0;
    let ended = loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break None,
            frame = body.frame() => frame,
        };
        let data = match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers carry no events
            },
            Some(Err(e)) => break Some(e.to_string()),
            None => break Some("the server ended the stream".to_owned()),
        };
        let now = Instant::now();
        if let Err(e) = parser.push(&data, &mut events) {
            break Some(e.to_string());
        }
        for event in events.drain(..).filter(|e| e.event == "bid") {
            stats.events += 1;
            shared.received.fetch_add(1, Ordering::Relaxed);
            let seq = event
                .id
                .as_deref()
                .and_then(|id| id.trim().parse::<u64>().ok())
                .or_else(|| seq_from_data(&event.data));
            let Some(seq) = seq else {
                stats.unmatched += 1;
                continue;
            };
            if seq <= last_seq {
                stats.out_of_order += 1;
            }
            last_seq = last_seq.max(seq);
            match shared.send_times.get(seq) {
                Some(sent) => stats.latency.record(now.saturating_duration_since(sent)),
                None => stats.unmatched += 1,
            }
        }
    };
    if let Some(e) = ended {
        stats.ended_early = 1;
        stats.first_error = Some(e);
    }
    stats.heartbeats = parser.comments();
    drop(body);
    drop(conn);
    stats
}

/// The bid's `seq` from its JSON data, for streams that omit `id:`.
fn seq_from_data(data: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(data).ok()?.get("seq")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_round_trip_and_ignore_out_of_range_seqs() {
        let times = SendTimes::new(4);
        assert_eq!(times.get(1), None);
        let at = Instant::now() + Duration::from_millis(3);
        times.set(1, at);
        times.set(99, at);
        let got = times.get(1).unwrap();
        assert!(got <= at && at - got < Duration::from_micros(1));
        assert_eq!(times.get(99), None);
    }

    #[test]
    fn the_seq_is_read_from_the_data_when_the_id_is_missing() {
        assert_eq!(seq_from_data(r#"{"amount":101,"seq":2,"placed_at":"x"}"#), Some(2));
        assert_eq!(seq_from_data("not json"), None);
    }
}
