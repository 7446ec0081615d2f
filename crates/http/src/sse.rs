//! What every server-sent-events stream shares: the response and its headers, the resume
//! position a reconnecting client sends, the frame format, the heartbeat, and the subscriber
//! gauge. Each app's stream decides what its events are and how it catches up.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// The heartbeat: a comment line, which keeps proxies from closing an idle stream.
pub const HEARTBEAT: &[u8] = b":\n\n";

/// Where a stream resumes: the `Last-Event-ID` an `EventSource` sends on reconnect, else the
/// `after_seq` query parameter; negative numbers count as 0.
pub fn resume_after(headers: &HeaderMap, after_seq: Option<i64>) -> Option<i64> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    last_event_id.or(after_seq).map(|seq| seq.max(0))
}

/// One whole frame: `event:`, `id:` (what a reconnecting client sends back as
/// `Last-Event-ID`) and `data:` (one line of JSON: JSON never holds a raw newline).
pub fn frame(kind: &str, id: i64, data: &serde_json::Value) -> Bytes {
    let data = data.to_string();
    let mut frame = String::with_capacity(data.len() + kind.len() + 32);
    frame.push_str("event: ");
    frame.push_str(kind);
    frame.push_str("\nid: ");
    frame.push_str(&id.to_string());
    frame.push_str("\ndata: ");
    frame.push_str(&data);
    frame.push_str("\n\n");
    Bytes::from(frame)
}

/// The streaming response of `chunks`, which ends when the server shuts down.
pub fn response(
    chunks: impl Stream<Item = Bytes> + Send + 'static,
    shutdown: CancellationToken,
) -> Response {
    let body = chunks.map(Ok::<_, Infallible>).take_until(shutdown.cancelled_owned());
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        // Tells reverse proxies not to buffer the stream.
        (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
    ];
    (headers, Body::from_stream(body)).into_response()
}

/// Counts open SSE streams in `surge_sse_subscribers` for as long as it lives.
pub struct SubscriberGauge;

impl SubscriberGauge {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        metrics::gauge!("surge_sse_subscribers").increment(1.0);
        SubscriberGauge
    }
}

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        metrics::gauge!("surge_sse_subscribers").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_one_event_with_its_id_and_one_line_of_data() {
        let frame = frame("bid", 7, &serde_json::json!({ "text": "two\nlines" }));
        assert_eq!(frame, Bytes::from("event: bid\nid: 7\ndata: {\"text\":\"two\\nlines\"}\n\n"));
    }

    #[test]
    fn the_header_wins_over_the_query_and_negative_numbers_start_over() {
        let mut headers = HeaderMap::new();
        assert_eq!(resume_after(&headers, Some(3)), Some(3));
        headers.insert("last-event-id", HeaderValue::from_static(" 12 "));
        assert_eq!(resume_after(&headers, Some(3)), Some(12));
        headers.insert("last-event-id", HeaderValue::from_static("-5"));
        assert_eq!(resume_after(&headers, None), Some(0));
        assert_eq!(resume_after(&HeaderMap::new(), None), None);
    }
}
