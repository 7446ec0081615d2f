//! The orders saga left half-way: a replica that dies between two steps leaves an order under
//! way, and the recovery sweep finishes it from what the buyer's shard says — confirmed when
//! the points were taken, the units given back (and a late debit refused) when they were not.
//! The half-way states are written here as the scripts leave them.

use serde_json::json;
use uuid::Uuid;

use super::deployment::Deployment;
use crate::helpers::{Api, TestUser, expect_json, rfc3339, string};

const PRICE: i64 = 500;
const UNITS: i64 = 10;

async fn deal(api: &Api, owner: &TestUser) -> String {
    let body = json!({"name": "Saga bakery", "category": "dessert", "lat": 37.55, "lng": 126.9,
        "address": "Mangwon-ro 1"});
    let store = api.post_json("/stores", Some(&owner.access_token), &body).await;
    let store_id = string(&expect_json(store, 201).await["id"]);
    let body = json!({"title": "Boxes", "original_price": 1000, "deal_price": PRICE,
        "quantity": UNITS, "ends_at": rfc3339(chrono::Utc::now() + chrono::Duration::hours(1))});
    let path = format!("/stores/{store_id}/deals");
    string(
        &expect_json(api.post_json(&path, Some(&owner.access_token), &body).await, 201).await["id"],
    )
}

/// An order id in the deal's shard, as the engine picks them.
fn order_in_shard_of(deployment: &Deployment, deal_id: &str) -> Uuid {
    let shard = deployment.shard_of(deal_id);
    std::iter::repeat_with(Uuid::now_v7)
        .find(|id| deployment.keys().shard_of(*id) == shard)
        .unwrap()
}

/// What `reserve_order.lua` leaves: one unit held for `order`, under way since a while ago.
async fn hold(deployment: &Deployment, deal_id: &str, buyer: &str, order: Uuid) {
    let keys = deployment.keys();
    let deal = keys.deal(Uuid::parse_str(deal_id).unwrap());
    let _: i64 =
        deployment.redis_query(redis::cmd("HINCRBY").arg(&deal).arg("remaining").arg(-1)).await;
    let _: i64 = deployment
        .redis_query(redis::cmd("HINCRBY").arg(&deal).arg(format!("taken:{buyer}")).arg(1))
        .await;
    let _: i64 = deployment
        .redis_query(
            redis::cmd("HSET")
                .arg(&deal)
                .arg(format!("hold:{order}"))
                .arg(format!("{buyer}|1|{PRICE}")),
        )
        .await;
    let past = chrono::Utc::now().timestamp_millis() - 1;
    let under_way = keys.orders_under_way(deployment.shard_of(deal_id));
    let _: i64 = deployment
        .redis_query(
            redis::cmd("ZADD").arg(under_way).arg(past).arg(format!("hold|{deal_id}|{order}")),
        )
        .await;
}

async fn remaining(api: &Api, deal_id: &str) -> i64 {
    api.get_json(&format!("/deals/{deal_id}")).await["remaining"].as_i64().unwrap()
}

async fn balance(api: &Api, buyer: &TestUser) -> i64 {
    expect_json(api.get_authed("/me/points", &buyer.access_token).await, 200).await["balance"]
        .as_i64()
        .unwrap()
}

/// Polls `check` every 100 ms for up to 15 s.
async fn eventually<F, Fut>(what: &str, deployment: &Deployment, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{what}; {}",
            deployment.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_confirms_a_debited_order_and_releases_one_whose_points_never_came() {
    let deployment = Deployment::start(1).await;
    let api = deployment.api(0);
    let (owner, buyer) = (api.signup().await, api.signup().await);
    let deal_id = deal(&api, &owner).await;
    let top_up = json!({"amount": 2_000});
    let response = api.post_json("/me/points/top-up", Some(&buyer.access_token), &top_up).await;
    expect_json(response, 200).await;
    // One whole order first: the deal's and the account's hot state exist.
    let path = format!("/deals/{deal_id}/orders");
    let response = api.post_json(&path, Some(&buyer.access_token), &json!({"quantity": 1})).await;
    expect_json(response, 201).await;
    assert_eq!((remaining(&api, &deal_id).await, balance(&api, &buyer).await), (UNITS - 1, 1_500));

    // A replica died after the debit: the hold and the buyer's debit mark are there.
    let keys = deployment.keys();
    let buyer_id = Uuid::parse_str(&buyer.id).unwrap();
    let debited = order_in_shard_of(&deployment, &deal_id);
    hold(&deployment, &deal_id, &buyer.id, debited).await;
    let _: i64 = deployment
        .redis_query(redis::cmd("HINCRBY").arg(keys.account(buyer_id)).arg("balance").arg(-PRICE))
        .await;
    let _: String = deployment
        .redis_query(redis::cmd("SET").arg(keys.points_mark(buyer_id, "debit", debited)).arg(PRICE))
        .await;
    // Another died right after the reserve: no debit.
    let stranded = order_in_shard_of(&deployment, &deal_id);
    hold(&deployment, &deal_id, &buyer.id, stranded).await;

    let pool = &deployment.pool;
    eventually("the debited order is confirmed in PostgreSQL", &deployment, || async {
        let status: Option<(String,)> = sqlx::query_as("select status from orders where id = $1")
            .bind(debited)
            .fetch_optional(pool)
            .await
            .unwrap();
        status.is_some_and(|(status,)| status == "confirmed")
    })
    .await;
    eventually("the stranded hold is released", &deployment, || async {
        remaining(&api, &deal_id).await == UNITS - 2
    })
    .await;
    // The stranded order can never take points now; nothing else was taken.
    let void: i64 = deployment
        .redis_query(redis::cmd("EXISTS").arg(keys.points_mark(buyer_id, "void", stranded)))
        .await;
    assert_eq!(void, 1);
    assert_eq!(balance(&api, &buyer).await, 1_000);
    let orders: Vec<(Uuid,)> =
        sqlx::query_as("select id from orders where deal_id = $1 and status = 'confirmed'")
            .bind(Uuid::parse_str(&deal_id).unwrap())
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(orders.len(), 2, "the whole order and the debited one");
    assert!(!orders.iter().any(|(id,)| *id == stranded));
    let store_id = string(&api.get_json(&format!("/deals/{deal_id}")).await["store_id"]);
    let listed = api.get_authed(&format!("/stores/{store_id}/orders"), &owner.access_token).await;
    assert_eq!(expect_json(listed, 200).await["items"].as_array().unwrap().len(), 2);
}
