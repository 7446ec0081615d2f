//! Replicas whose clocks are wrong. Every question of time is decided by the Redis server's
//! clock, so a replica 3 s behind or ahead decides — and shows — exactly what the others do.
//!
//! The replicas run under libfaketime (`LD_PRELOAD`, `FAKETIME`), like a host whose NTP broke.
//! The slow one is started first, so it holds the closer's lease (the reported failure: it
//! accepted a bid 1.5 s after the end and made that late bidder the winner).

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::deployment::Deployment;
use crate::helpers::{Api, expect_error, expect_json, rfc3339, string};

const SLOW: usize = 0;
const TRUE: usize = 1;
const FAST: usize = 2;

/// Runs the replica's clock `offset` off real time (e.g. `-3s`).
fn skewed(offset: &'static str) -> impl FnOnce(&mut Command) {
    move |command| {
        command
            .env("LD_PRELOAD", surge_testkit::required(surge_testkit::FAKETIME_LIB_VAR))
            .env("FAKETIME", offset)
            // Real time for the monotonic clock: timers and timeouts are not what is tested.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
}

/// A slow (-3 s), a true and a fast (+3 s) replica; the slow one holds the closer's lease.
async fn skewed_deployment(redis_url: String) -> Deployment {
    let mut deployment = Deployment::empty(redis_url).await;
    deployment.add_replica(skewed("-3s")).await;
    deployment.add_replica(|_| {}).await;
    deployment.add_replica(skewed("+3s")).await;
    deployment.wait_until_balanced().await;
    let closer = deployment.keys().singleton_lease("closer").lease;
    let holder: Option<String> = deployment.redis_query(redis::cmd("GET").arg(closer)).await;
    assert!(holder.is_some_and(|h| h.starts_with("r0/")), "the slow replica must run the closer");
    deployment
}

/// Sleeps until `instant` by the test's (true) clock.
async fn until(instant: DateTime<Utc>) {
    if let Ok(wait) = (instant - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

async fn status(api: &Api, auction_id: &str) -> Value {
    api.auction(auction_id).await
}

async fn an_auction_ends_when_the_server_says_on_every_replica(redis_url: String) {
    let deployment = skewed_deployment(redis_url).await;
    let apis = deployment.apis();
    let users = [apis[TRUE].signup().await, apis[TRUE].signup().await, apis[TRUE].signup().await];
    let [seller, early, late] = &users;
    let winner = &apis[TRUE].signup().await;
    let ends_at = Utc::now() + chrono::Duration::seconds(5);
    let body = json!({"title": "Last seconds", "starting_price": 1000, "min_increment": 100,
        "ends_at": rfc3339(ends_at)});
    // Made through the fast replica: its clock thinks 2 s are left, and the end must still be
    // valid (in the future) by the server's clock.
    let auction = apis[FAST].create_auction(seller, body).await;
    let id = string(&auction["id"]);
    let ends_at: DateTime<Utc> = auction["ends_at"].as_str().unwrap().parse().unwrap();
    apis[TRUE].place_bid(early, &id, 1000).await;

    // 1.5 s before the end: the fast replica's clock says it ended 1.5 s ago.
    until(ends_at - chrono::Duration::milliseconds(1500)).await;
    for (n, api) in apis.iter().enumerate() {
        let seen = status(api, &id).await;
        assert_eq!(seen["status"], "live", "replica {n}: {seen}");
    }
    let placed = apis[FAST].place_bid(winner, &id, 1100).await;
    assert_eq!(placed["auction"]["current_price"], 1100);

    // 1.5 s after the end: the slow replica's clock says 1.5 s are left.
    until(ends_at + chrono::Duration::milliseconds(1500)).await;
    for (n, api) in apis.iter().enumerate() {
        let seen = status(api, &id).await;
        assert_eq!(seen["status"], "ended", "replica {n}: {seen}");
    }
    expect_error(apis[SLOW].bid(late, &id, 5000).await, 410, "auction_ended").await;

    // The closer (on the slow replica) announced the true winner, and everyone agrees.
    let deadline = Utc::now() + chrono::Duration::seconds(10);
    for api in &apis {
        loop {
            let seen = status(api, &id).await;
            if !seen["winner"].is_null() {
                assert_eq!(seen["winner"]["id"], winner.id.as_str(), "{seen}");
                assert_eq!(seen["current_price"], 1100, "{seen}");
                break;
            }
            assert!(Utc::now() < deadline, "never closed: {seen}\n{}", deployment.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn a_screening_starts_when_the_server_says_on_every_replica(redis_url: String) {
    let deployment = skewed_deployment(redis_url).await;
    let apis = deployment.apis();
    let starts_at = Utc::now() + chrono::Duration::seconds(5);
    let screening = deployment.screening(3, 3, starts_at).await;
    let users = deployment.quick_users(3).await;
    let reserve = |replica: usize, user: usize, seat: &'static str| {
        let (api, token) = (apis[replica].clone(), users[user].token.clone());
        let body = json!({"screening_id": screening, "seats": [seat]});
        async move { api.post_json("/reservations", Some(&token), &body).await }
    };

    // 1.5 s before the start, the fast replica's clock says it started 1.5 s ago.
    until(starts_at - chrono::Duration::milliseconds(1500)).await;
    let reservation = expect_json(reserve(FAST, 0, "A1").await, 201).await;
    // 1.5 s after the start, the slow replica's clock says 1.5 s are left.
    until(starts_at + chrono::Duration::milliseconds(1500)).await;
    expect_error(reserve(SLOW, 1, "A2").await, 409, "screening_started").await;
    let cancel = apis[SLOW]
        .send(
            apis[SLOW]
                .client
                .delete(apis[SLOW].url(&format!("/reservations/{}", string(&reservation["id"]))))
                .bearer_auth(&users[0].token),
        )
        .await;
    expect_error(cancel, 409, "screening_started").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auction_ends_when_the_server_says_on_every_replica_on_one_redis() {
    let redis_url = surge_testkit::required(surge_testkit::REDIS_URL_VAR);
    an_auction_ends_when_the_server_says_on_every_replica(redis_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auction_ends_when_the_server_says_on_every_replica_on_a_cluster() {
    let redis_urls = surge_testkit::required(surge_testkit::REDIS_CLUSTER_URLS_VAR);
    an_auction_ends_when_the_server_says_on_every_replica(redis_urls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screening_starts_when_the_server_says_on_every_replica_on_one_redis() {
    let redis_url = surge_testkit::required(surge_testkit::REDIS_URL_VAR);
    a_screening_starts_when_the_server_says_on_every_replica(redis_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screening_starts_when_the_server_says_on_every_replica_on_a_cluster() {
    let redis_urls = surge_testkit::required(surge_testkit::REDIS_CLUSTER_URLS_VAR);
    a_screening_starts_when_the_server_says_on_every_replica(redis_urls).await;
}
