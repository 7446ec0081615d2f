//! Faults during a bidding storm: a replica killed or paused, Redis restarted, a hot key
//! deleted, PostgreSQL refusing writes. Each ends with PostgreSQL holding exactly the
//! acknowledged bids.

use std::time::{Duration, Instant};

use serde_json::json;

use super::deployment::{DURABLE, Deployment, LEASE_TTL, OwnRedis};
use crate::helpers::{
    Api, TestUser, auction_body, expect_error, expect_json, header, int, merged, string,
};
use crate::storm::Storm;

/// Bidding tasks per storm.
const BIDDERS: usize = 6;
/// How long the persisters get to catch up at the end.
const CATCH_UP: Duration = Duration::from_secs(20);

/// A seller, four bidders and a live auction with a minimum step of 1, made on `api`.
async fn auction(api: &Api) -> (Vec<TestUser>, String) {
    let seller = api.signup().await;
    let bidders = api.signup_many(4).await;
    let body =
        merged(auction_body(chrono::Utc::now()), json!({"starting_price": 1, "min_increment": 1}));
    let auction = api.create_auction(&seller, body).await;
    (bidders, string(&auction["id"]))
}

/// Waits until the storm has `more` acknowledgements beyond those it had; fails with the
/// replicas' logs after 30 s.
async fn more_acks(storm: &mut Storm, deployment: &Deployment, more: usize) {
    let target = storm.acks() + more;
    assert!(storm.wait_for_acks(target, Duration::from_secs(30)).await, "{}", deployment.logs());
}

/// The bid count the replicas report (hot state), once the storm is over.
async fn live_bid_count(api: &Api, auction_id: &str) -> i64 {
    int(&api.auction(auction_id).await["bid_count"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_lease_holder_mid_storm_moves_its_shard_and_loses_nothing() {
    let mut deployment = Deployment::start(3).await;
    let (bidders, auction_id) = auction(&deployment.api(0)).await;
    let shard = deployment.shard_of(&auction_id);
    let (holder, epoch, _) =
        deployment.wait_for_holder(shard, Duration::from_secs(10), |_, _| true).await;

    let mut storm = Storm::start(&deployment.apis(), &bidders, &auction_id, BIDDERS);
    more_acks(&mut storm, &deployment, 100).await;
    deployment.replicas[Deployment::index_of(&holder)].kill();
    let (successor, new_epoch, took) =
        deployment.wait_for_successor(shard, &holder, epoch, 6 * LEASE_TTL).await;
    assert!(
        took <= 2 * LEASE_TTL,
        "{successor} took shard {shard} over {took:?} after {holder} died (TTL {LEASE_TTL:?})"
    );
    assert!(new_epoch > epoch);
    more_acks(&mut storm, &deployment, 100).await;
    let ledger = storm.stop().await;

    let survivor = deployment.api(Deployment::index_of(&successor));
    let count = live_bid_count(&survivor, &auction_id).await;
    deployment.wait_until_persisted(&auction_id, count, CATCH_UP).await;
    deployment.assert_persisted_exactly(&auction_id, &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_lease_holder_is_fenced_out_when_it_resumes() {
    let deployment = Deployment::start(2).await;
    let (bidders, auction_id) = auction(&deployment.api(0)).await;
    let shard = deployment.shard_of(&auction_id);
    let (holder, epoch, _) =
        deployment.wait_for_holder(shard, Duration::from_secs(10), |_, _| true).await;
    let paused = Deployment::index_of(&holder);
    let other = deployment.api(1 - paused);

    // Clients use the other replica only: requests to a frozen process would just hang.
    let mut storm = Storm::start(std::slice::from_ref(&other), &bidders, &auction_id, BIDDERS);
    more_acks(&mut storm, &deployment, 50).await;
    deployment.replicas[paused].signal("STOP");
    let (successor, new_epoch, _) =
        deployment.wait_for_successor(shard, &holder, epoch, 6 * LEASE_TTL).await;
    more_acks(&mut storm, &deployment, 100).await;
    deployment.replicas[paused].signal("CONT");
    more_acks(&mut storm, &deployment, 100).await;
    let ledger = storm.stop().await;

    let count = live_bid_count(&other, &auction_id).await;
    deployment.wait_until_persisted(&auction_id, count, CATCH_UP).await;
    deployment.assert_persisted_exactly(&auction_id, &ledger).await;
    // PostgreSQL's fence moved to the new holder; the resumed one noticed it lost the lease.
    let fence = deployment.fence(shard).await.expect("the shard was persisted");
    assert!(fence >= new_epoch, "fence {fence} is behind {successor}'s epoch {new_epoch}");
    let logs = deployment.replicas[paused].logs();
    assert!(
        logs.contains("giving it up") || logs.contains("taken over") || logs.contains("fenced"),
        "{holder} did not notice it lost shard {shard}:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_redis_mid_storm_loses_no_acknowledged_bid() {
    let mut redis = OwnRedis::start(DURABLE);
    let deployment = Deployment::start_on(redis.url(), 2).await;
    let (bidders, auction_id) = auction(&deployment.api(0)).await;

    let mut storm = Storm::start(&deployment.apis(), &bidders, &auction_id, BIDDERS);
    more_acks(&mut storm, &deployment, 100).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api = deployment.api(1);
    let ready = api.send(api.client.get(api.root_url("/readyz"))).await;
    assert_eq!(ready.status().as_u16(), 503, "/readyz must fail while Redis is down");
    // Meanwhile a bid gets a prompt 503, not a hang.
    let started = Instant::now();
    let refused = deployment.api(0).bid(&bidders[0], &auction_id, i64::from(u32::MAX)).await;
    assert!(!header(&refused, "retry-after").is_empty(), "a 503 must say when to retry");
    expect_error(refused, 503, "unavailable").await;
    assert!(started.elapsed() < Duration::from_secs(5), "a bid took {:?}", started.elapsed());
    redis.launch();
    more_acks(&mut storm, &deployment, 100).await;
    let mut ledger = storm.stop().await;
    ledger.indeterminate.insert(i64::from(u32::MAX));

    let count = live_bid_count(&deployment.api(1), &auction_id).await;
    deployment.wait_until_persisted(&auction_id, count, CATCH_UP).await;
    deployment.assert_persisted_exactly(&auction_id, &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_hot_key_is_rebuilt_only_from_complete_data() {
    let deployment = Deployment::start(2).await;
    let api = deployment.api(0);
    let (bidders, auction_id) = auction(&api).await;
    for amount in 1..=5 {
        api.place_bid(&bidders[0], &auction_id, amount).await;
    }
    deployment.wait_until_persisted(&auction_id, 5, CATCH_UP).await;

    // PostgreSQL stops taking writes: the next bids live only in Redis.
    deployment.set_read_only(true).await;
    for amount in 6..=10 {
        api.place_bid(&bidders[1], &auction_id, amount).await;
    }
    let hot_key = deployment.keys().auction(uuid::Uuid::parse_str(&auction_id).unwrap());
    let deleted: i64 = deployment.redis_query(redis::cmd("DEL").arg(&hot_key)).await;
    assert_eq!(deleted, 1);

    // PostgreSQL says the price is 5; a bid of 7 must still never win.
    for replica in 0..2 {
        let response = deployment.api(replica).bid(&bidders[2], &auction_id, 7).await;
        let status = response.status().as_u16();
        assert!(matches!(status, 409 | 503), "a bid below the acknowledged 10 got {status}");
    }

    deployment.set_read_only(false).await;
    deployment.wait_until_persisted(&auction_id, 10, CATCH_UP).await;
    expect_error(api.bid(&bidders[2], &auction_id, 7).await, 409, "bid_too_low").await;
    let placed = expect_json(api.bid(&bidders[2], &auction_id, 11).await, 201).await;
    assert_eq!(placed["bid"]["seq"], 11);
    deployment.wait_until_persisted(&auction_id, 11, CATCH_UP).await;
    assert_eq!(deployment.dead_letters().await, 0);
    let stored = deployment.stored_bids(&auction_id).await;
    let mut amounts: Vec<i64> = stored.keys().copied().collect();
    amounts.sort();
    assert_eq!(amounts, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_refuses_writes_events_wait_and_none_is_dead_lettered() {
    let deployment = Deployment::start(2).await;
    let (bidders, auction_id) = auction(&deployment.api(0)).await;

    let mut storm = Storm::start(&deployment.apis(), &bidders, &auction_id, BIDDERS);
    more_acks(&mut storm, &deployment, 50).await;
    deployment.set_read_only(true).await;
    let (_, persisted_then) = deployment.stored_auction(&auction_id).await;
    more_acks(&mut storm, &deployment, 200).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, persisted_now) = deployment.stored_auction(&auction_id).await;
    assert!(
        persisted_now <= persisted_then + BIDDERS as i64 * 2,
        "PostgreSQL took writes while read-only ({persisted_then} → {persisted_now})"
    );
    assert_eq!(deployment.dead_letters().await, 0, "a transient failure was dead-lettered");

    deployment.set_read_only(false).await;
    let ledger = storm.stop().await;
    let count = live_bid_count(&deployment.api(0), &auction_id).await;
    deployment.wait_until_persisted(&auction_id, count, CATCH_UP).await;
    deployment.assert_persisted_exactly(&auction_id, &ledger).await;
}
