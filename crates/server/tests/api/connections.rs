//! Connection limits: a client that is slow or silent is cut off, concurrent connections are
//! bounded, and none of it touches a live event stream.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, auction_body, spawn_app_with, string};

/// A server whose clients must send a request head (and keep a body flowing) within 1 s.
async fn impatient() -> TestApp {
    spawn_app_with(|settings| {
        settings.http.header_read_timeout_secs = 1;
        settings.http.body_read_timeout_secs = 1;
        settings.auctions.sse_heartbeat_secs = 1;
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(socket: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + within).into(), socket.read(&mut buffer)).await {
            Err(_) => panic!("still open after {within:?}; received {received:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_cut_off() {
    let app = impatient().await;
    let mut socket = connect(&app).await;
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let (_, after) = until_closed(&mut socket, Duration::from_secs(5)).await;
    assert!(after >= Duration::from_millis(900), "closed too early: {after:?}");
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed() {
    let app = impatient().await;
    let mut socket = connect(&app).await;
    until_closed(&mut socket, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = impatient().await;
    let mut socket = connect(&app).await;
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (received, _) = until_closed(&mut socket, Duration::from_secs(5)).await;
    assert!(received.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&received));
}

#[tokio::test]
async fn a_body_that_stops_half_way_is_cut_off() {
    let app = impatient().await;
    let mut socket = connect(&app).await;
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"em";
    socket.write_all(head.as_bytes()).await.unwrap();
    let (received, _) = until_closed(&mut socket, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
}

/// The stream is a response in progress: the head timeout does not apply, and heartbeats flow
/// for longer than it.
#[tokio::test]
async fn an_event_stream_outlives_the_timeouts() {
    let app = impatient().await;
    let seller = app.signup().await;
    let auction = app.create_auction(&seller, auction_body(app.now())).await;
    let mut events = app.events(&string(&auction["id"]), "", None).await;
    let started = Instant::now();
    let mut heartbeats = 0;
    while started.elapsed() < Duration::from_millis(3_500) {
        let event = tokio::time::timeout(Duration::from_secs(3), events.next())
            .await
            .expect("the stream went quiet")
            .expect("the stream was closed");
        heartbeats += usize::from(event.is_comment());
    }
    assert!(heartbeats >= 2, "{heartbeats} heartbeats in 3.5 s");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let app = spawn_app_with(|settings| settings.http.max_connections = 1).await;
    let mut first = connect(&app).await;
    first.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let n = first.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));

    // The first connection holds the only slot (keep-alive): the second is not served yet.
    let mut second = connect(&app).await;
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(waiting.is_err(), "served past the connection limit");

    drop(first);
    let (received, _) = until_closed(&mut second, Duration::from_secs(5)).await;
    assert!(received.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&received));
}
