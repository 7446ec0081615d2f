//! An incremental `text/event-stream` parser.
//!
//! Surge's event streams arrive in arbitrary pieces (HTTP chunks do not line up with events), so
//! the parser keeps the unfinished tail between calls and emits an event only at the blank line
//! that ends it. Lines end with `\n` or `\r\n`; lines starting with `:` are comments (Surge's
//! heartbeats) and are only counted.

use std::fmt;

/// Longest line the parser buffers before giving up on a stream.
const MAX_LINE: usize = 1 << 20;

/// One dispatched server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when the server sent none.
    pub event: String,
    /// The `id:` field of this event, if it had one (Surge puts the bid's `seq` here).
    pub id: Option<String>,
    /// All `data:` lines joined with `\n`.
    pub data: String,
}

/// The stream sent a line longer than the parser is willing to buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event-stream line longer than {MAX_LINE} bytes")
    }
}

impl std::error::Error for LineTooLong {}

/// Parser state for one event stream; feed it every body chunk in order.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: String,
    has_data: bool,
    comments: u64,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of comment lines (heartbeats) seen so far.
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Consumes `chunk` and appends every event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line_end = if end > start && self.buf[end - 1] == b'\r' { end - 1 } else { end };
            let line = String::from_utf8_lossy(&self.buf[start..line_end]).into_owned();
            self.line(&line, out);
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            self.buf.clear();
            return Err(LineTooLong);
        }
        Ok(())
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `retry` and unknown fields carry nothing the bench needs.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let id = self.id.take();
        let event = self.event.take();
        if !self.has_data && event.is_none() {
            return;
        }
        out.push(SseEvent {
            event: event.unwrap_or_else(|| "message".to_owned()),
            id,
            data: std::mem::take(&mut self.data),
        });
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = ": hello\n\nevent: bid\nid: 7\ndata: {\"amount\":107,\"seq\":7}\n\n\
                          : heartbeat\n\nevent: closed\ndata: {\"final_price\":107}\n\n";

    fn parse_in_pieces(input: &[u8], piece: usize) -> (Vec<SseEvent>, u64) {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            parser.push(chunk, &mut out).unwrap();
        }
        (out, parser.comments())
    }

    #[test]
    fn bid_events_and_heartbeats_are_recognised() {
        let (events, comments) = parse_in_pieces(STREAM.as_bytes(), STREAM.len());
        assert_eq!(comments, 2);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "bid".into(),
                    id: Some("7".into()),
                    data: "{\"amount\":107,\"seq\":7}".into(),
                },
                SseEvent { event: "closed".into(), id: None, data: "{\"final_price\":107}".into() },
            ]
        );
    }

    #[test]
    fn any_split_of_the_stream_gives_the_same_events() {
        let (whole, whole_comments) = parse_in_pieces(STREAM.as_bytes(), STREAM.len());
        for piece in 1..STREAM.len() {
            let (events, comments) = parse_in_pieces(STREAM.as_bytes(), piece);
            assert_eq!(events, whole, "piece size {piece}");
            assert_eq!(comments, whole_comments, "piece size {piece}");
        }
    }

    #[test]
    fn crlf_line_endings_are_accepted_even_when_split() {
        let input = b"event: bid\r\nid: 1\r\ndata: x\r\n\r\n";
        for piece in 1..input.len() {
            let (events, _) = parse_in_pieces(input, piece);
            assert_eq!(events.len(), 1, "piece size {piece}");
            assert_eq!(events[0].event, "bid");
            assert_eq!(events[0].id.as_deref(), Some("1"));
            assert_eq!(events[0].data, "x");
        }
    }

    #[test]
    fn multiple_data_lines_are_joined_with_newlines() {
        let (events, _) = parse_in_pieces(b"data: a\ndata:b\ndata\n\n", 3);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].data, "a\nb\n");
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.push(b"event: bid\nid: 3\ndata: {}\n", &mut out).unwrap();
        assert!(out.is_empty());
        parser.push(b"\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id.as_deref(), Some("3"));
    }

    #[test]
    fn the_id_does_not_leak_into_the_next_event() {
        let (events, _) = parse_in_pieces(b"id: 1\ndata: a\n\ndata: b\n\n", 5);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].id, None);
    }

    #[test]
    fn blank_lines_alone_dispatch_nothing() {
        let (events, comments) = parse_in_pieces(b"\n\n\r\n: ping\n\n", 2);
        assert!(events.is_empty());
        assert_eq!(comments, 1);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let junk = vec![b'x'; MAX_LINE + 1];
        assert_eq!(parser.push(&junk, &mut out), Err(LineTooLong));
    }
}
