//! Live bid events over SSE: the event format, extension and closing, replay after a
//! reconnect, heartbeats, and a stalled subscriber that must not hold anyone up.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::auctions::wait_until_ended;
use crate::helpers::{
    Api, TestApp, TestUser, assert_same_instant, auction_body, expect_error, header, int, merged,
    minutes, rfc3339, spawn_app, spawn_app_with, status_and_json, string, time,
};

async fn live_auction(app: &TestApp, seller: &TestUser, patch: Value) -> String {
    let auction = app.create_auction(seller, merged(auction_body(app.now()), patch)).await;
    string(&auction["id"])
}

#[tokio::test]
async fn the_event_stream_is_text_event_stream() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let id = live_auction(&app, &seller, json!({})).await;

    let response = app.open_events(&id, "", None).await;

    assert_eq!(response.status().as_u16(), 200);
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("text/event-stream"), "{content_type:?}");
}

#[tokio::test]
async fn the_event_stream_of_an_unknown_auction_is_404_json() {
    let app = spawn_app().await;
    let response = app.open_events(&uuid::Uuid::new_v4().to_string(), "", None).await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn a_bid_event_carries_the_seq_as_id_and_the_bid_with_the_new_price() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let id = live_auction(&app, &seller, json!({})).await;
    let mut events = app.events(&id, "", None).await;

    let placed = app.place_bid(&bidder, &id, 1000).await;

    let event = events.next_named("bid").await;
    assert_eq!(event.id.as_deref(), Some("1"));
    let data = event.json();
    let bid = &placed["bid"];
    for field in ["id", "auction_id", "bidder", "amount", "seq"] {
        assert_eq!(data[field], bid[field], "{field}: {data}");
    }
    assert_same_instant(time(&data["placed_at"]), time(&bid["placed_at"]));
    assert_eq!(data["current_price"], 1000);
    assert_same_instant(time(&data["ends_at"]), time(&placed["auction"]["ends_at"]));
}

#[tokio::test]
async fn an_extending_bid_sends_an_extended_event_with_the_new_end() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let now = app.now();
    let id = live_auction(
        &app,
        &seller,
        json!({"ends_at": rfc3339(now + minutes(10)), "extend_seconds": 300}),
    )
    .await;
    app.advance(minutes(8));
    let mut events = app.events(&id, "?after_seq=0", None).await;

    let placed = app.place_bid(&bidder, &id, 1000).await;

    let extended = events.next_named("extended").await;
    assert_same_instant(time(&extended.json()["ends_at"]), time(&placed["auction"]["ends_at"]));
}

#[tokio::test]
async fn a_closed_event_names_the_winner_and_then_the_stream_ends() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let now = app.now();
    let id = live_auction(&app, &seller, json!({"ends_at": rfc3339(now + minutes(2))})).await;
    app.place_bid(&bidder, &id, 1000).await;
    app.place_bid(&bidder, &id, 1250).await;
    let mut events = app.events(&id, "?after_seq=0", None).await;
    assert_eq!(events.next_named("bid").await.seq(), 1);
    assert_eq!(events.next_named("bid").await.seq(), 2);

    app.advance(minutes(3));

    let closed = events.next_named("closed").await.json();
    assert_eq!(closed["winner"], json!({"id": bidder.id, "nickname": bidder.nickname}));
    assert_eq!(closed["final_price"], 1250);
    events.expect_end().await;

    let ended = wait_until_ended(&app, &id).await;
    assert_eq!(ended["status"], "ended");
    assert_eq!(ended["winner"]["id"], bidder.id.as_str());
}

#[tokio::test]
async fn reconnecting_with_last_event_id_replays_exactly_the_missed_bids_in_order() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let id = live_auction(&app, &seller, json!({"starting_price": 100, "min_increment": 10})).await;
    let mut amounts = (0..).map(|n| 100 + 10 * n);

    let mut first = app.events(&id, "?after_seq=0", None).await;
    for _ in 0..3 {
        app.place_bid(&bidder, &id, amounts.next().unwrap()).await;
    }
    for seq in 1..=3 {
        assert_eq!(first.next_named("bid").await.seq(), seq);
    }
    drop(first);

    // Missed while disconnected.
    let mut missed = Vec::new();
    for _ in 0..4 {
        missed.push(app.place_bid(&bidder, &id, amounts.next().unwrap()).await["bid"].clone());
    }

    let mut resumed = app.events(&id, "", Some("3")).await;
    for bid in &missed {
        let event = resumed.next_named("bid").await;
        assert_eq!(event.seq(), int(&bid["seq"]));
        assert_eq!(event.json()["id"], bid["id"]);
        assert_eq!(event.json()["amount"], bid["amount"]);
    }
    // Then live bids follow, with nothing repeated in between.
    let live = app.place_bid(&bidder, &id, amounts.next().unwrap()).await;
    let event = resumed.next_named("bid").await;
    assert_eq!(event.seq(), 8);
    assert_eq!(event.json()["id"], live["bid"]["id"]);
}

#[tokio::test]
async fn after_seq_in_the_query_replays_like_last_event_id() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let id = live_auction(&app, &seller, json!({"starting_price": 100, "min_increment": 10})).await;
    for amount in [100, 110, 120, 130] {
        app.place_bid(&bidder, &id, amount).await;
    }

    let mut events = app.events(&id, "?after_seq=2", None).await;

    let third = events.next_named("bid").await;
    assert_eq!((third.seq(), third.json()["amount"].clone()), (3, json!(120)));
    let fourth = events.next_named("bid").await;
    assert_eq!((fourth.seq(), fourth.json()["amount"].clone()), (4, json!(130)));
}

#[tokio::test]
async fn a_heartbeat_comment_is_sent_when_nothing_happens() {
    let app = spawn_app_with(|settings| settings.auctions.sse_heartbeat_secs = 1).await;
    let seller = app.signup().await;
    let id = live_auction(&app, &seller, json!({})).await;
    let mut events = app.events(&id, "", None).await;

    let heartbeat = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("no heartbeat within 5 s")
        .expect("the stream ended");

    assert!(heartbeat.is_comment(), "expected a `:` comment, got {heartbeat:?}");
}

/// Reads bid events for ever, reconnecting with `Last-Event-ID` whenever the server drops the
/// stream, and reports each seq with the moment it arrived.
async fn follow(api: Api, auction_id: String, seen: mpsc::UnboundedSender<(i64, Instant)>) {
    let mut last_seq = 0;
    loop {
        let last = last_seq.to_string();
        let mut events = api.events(&auction_id, "", Some(&last)).await;
        while let Some(event) = events.next().await {
            if event.event.as_deref() == Some("bid") {
                last_seq = event.seq();
                if seen.send((last_seq, Instant::now())).is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_does_not_delay_other_subscribers_or_bids() {
    const WORKERS: usize = 4;
    const BIDS_PER_WORKER: usize = 500;

    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidders = app.signup_many(WORKERS).await;
    let id = live_auction(&app, &seller, json!({"starting_price": 1, "min_increment": 1})).await;

    // Opened and never read again.
    let stalled = app.events(&id, "", None).await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let follower = tokio::spawn(follow(app.api.clone(), id.clone(), seen_tx));

    let next_amount = Arc::new(AtomicI64::new(1));
    let mut workers = JoinSet::new();
    for bidder in bidders {
        let (api, id, next_amount) = (app.api.clone(), id.clone(), next_amount.clone());
        workers.spawn(async move {
            let mut accepted = Vec::new();
            let mut slowest = Duration::ZERO;
            for _ in 0..BIDS_PER_WORKER {
                let amount = next_amount.fetch_add(1, Ordering::SeqCst);
                let started = Instant::now();
                let (status, body) = status_and_json(api.bid(&bidder, &id, amount).await).await;
                slowest = slowest.max(started.elapsed());
                match status {
                    201 => accepted.push((int(&body["bid"]["seq"]), Instant::now())),
                    409 => assert_eq!(body["error"]["code"], "bid_too_low", "{body}"),
                    other => panic!("bid got {other}: {body}"),
                }
            }
            (accepted, slowest)
        });
    }
    let results = tokio::time::timeout(Duration::from_secs(120), workers.join_all())
        .await
        .expect("bidding stalled: a subscriber that does not read is holding up bids");

    let mut acknowledged: Vec<(i64, Instant)> = Vec::new();
    for (accepted, slowest) in results {
        assert!(slowest < Duration::from_secs(5), "a bid took {slowest:?}");
        acknowledged.extend(accepted);
    }
    acknowledged.sort_by_key(|(seq, _)| *seq);
    let last_seq = acknowledged.len() as i64;
    assert!(last_seq > 0, "no bid was accepted");

    // The reading subscriber got every bid, in order, soon after it was acknowledged.
    let mut expected_seq = 1;
    let mut worst_lag = Duration::ZERO;
    while expected_seq <= last_seq {
        let (seq, arrived) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .unwrap_or_else(|_| panic!("seq {expected_seq} never reached the reading subscriber"))
            .expect("the follower stopped");
        assert_eq!(seq, expected_seq, "events out of order or repeated");
        let (_, acknowledged_at) = acknowledged[(seq - 1) as usize];
        worst_lag = worst_lag.max(arrived.saturating_duration_since(acknowledged_at));
        expected_seq += 1;
    }
    assert!(worst_lag < Duration::from_secs(5), "an event arrived {worst_lag:?} after its bid");

    follower.abort();
    drop(stalled);
}
