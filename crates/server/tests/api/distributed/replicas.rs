//! Replicas behave as one service: events, limits and fresh reads cross them.

use std::time::Duration;

use super::deployment::Deployment;
use crate::helpers::{
    Api, PASSWORD, PNG, TestUser, auction_body, expect_error, expect_json, expect_rate_limited,
    string,
};

/// A bidder and a live auction (of another user), made on `api`.
async fn live_auction(api: &Api) -> (TestUser, String) {
    let seller = api.signup().await;
    let bidder = api.signup().await;
    let auction = api.create_auction(&seller, auction_body(chrono::Utc::now())).await;
    (bidder, string(&auction["id"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_replica_gets_bids_placed_on_another_in_seq_order() {
    let deployment = Deployment::start(2).await;
    let (first, second) = (deployment.api(0), deployment.api(1));
    let (bidder, auction_id) = live_auction(&first).await;
    let mut events = second.events(&auction_id, "", None).await;

    for n in 0..20 {
        let api = if n % 2 == 0 { &first } else { &second };
        api.place_bid(&bidder, &auction_id, 1_000 + 100 * n).await;
    }

    let mut seqs = Vec::new();
    while seqs.len() < 20 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap_or_else(|_| panic!("only {seqs:?} arrived\n{}", deployment.logs()))
            .expect("the stream ended");
        if event.event.as_deref() == Some("bid") {
            seqs.push(event.id.unwrap().parse::<i64>().unwrap());
        }
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_is_read_back_at_once_from_any_replica() {
    let deployment = Deployment::start(2).await;
    let (first, second) = (deployment.api(0), deployment.api(1));
    let (bidder, auction_id) = live_auction(&first).await;

    for n in 1..=5 {
        let placed = first.place_bid(&bidder, &auction_id, 1_000 * n).await;
        // Straight after the 201, before any persister could have run.
        let seen = second.auction(&auction_id).await;
        assert_eq!(seen["current_price"], 1_000 * n, "{seen}");
        assert_eq!(seen["bid_count"], n);
        assert_eq!(seen["high_bidder"]["id"], bidder.id.as_str());
        let history = second.bid_history(&auction_id).await;
        assert_eq!(history[0]["id"], placed["bid"]["id"]);
        assert_eq!(history.len() as i64, n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_limit_holds_across_replicas_together() {
    let deployment = Deployment::start(2).await;
    let (first, second) = (deployment.api(0), deployment.api(1));
    let user = first.signup().await;

    first.upload_png(&user).await;
    second.upload_png(&user).await;
    let third = first.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;
    let retry_after = expect_rate_limited(third).await;
    let fourth = second.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;
    expect_rate_limited(fourth).await;
    assert!(retry_after > 1_000, "the next upload is half an hour away, not {retry_after} s");
    // Logins on either replica share one failure budget as well.
    for n in 0..10 {
        let api = if n % 2 == 0 { &first } else { &second };
        expect_error(api.login(&user.email, "not the password").await, 401, "invalid_credentials")
            .await;
    }
    expect_rate_limited(second.login(&user.email, PASSWORD).await).await;
    expect_rate_limited(first.login(&user.email, PASSWORD).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_replica_ends_the_sessions_access_token_on_the_other_within_a_second() {
    let deployment = Deployment::start(2).await;
    let (first, second) = (deployment.api(0), deployment.api(1));
    let user = first.signup().await;
    expect_json(second.me(&user.access_token).await, 200).await;

    assert_eq!(first.logout(&user.refresh_token).await.status().as_u16(), 204);
    let logged_out = std::time::Instant::now();
    loop {
        let status = second.me(&user.access_token).await.status().as_u16();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            logged_out.elapsed() < Duration::from_secs(1),
            "the other replica still accepts the token after {:?}",
            logged_out.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    expect_error(first.me(&user.access_token).await, 401, "unauthorized").await;
}
