//! The closing-time rush across replicas: 2,000 buyers order one unit each of a 100-unit deal
//! through two replicas at once — and again with one replica SIGKILLed mid-rush and restarted.
//! Afterwards the database holds exactly what was answered: the confirmed units plus the
//! stock left are the quantity, and balances plus confirmed totals are the top-ups.

use std::collections::HashSet;

use futures_util::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::deployment::Deployment;
use crate::helpers::{Api, QuickUser, expect_json, rfc3339, string};

const BUYERS: usize = 2_000;
const UNITS: i64 = 100;
const PRICE: i64 = 500;

/// A store and a live deal of `UNITS` units, one per buyer, made through the first replica.
async fn deal(api: &Api) -> String {
    let owner = api.signup().await;
    let store = api
        .post_json(
            "/stores",
            Some(&owner.access_token),
            &json!({"name": "Rush bakery", "category": "dessert", "lat": 37.55, "lng": 126.9,
                "address": "Mangwon-ro 1"}),
        )
        .await;
    let store_id = string(&expect_json(store, 201).await["id"]);
    let body = json!({"title": "Last boxes", "original_price": 1000, "deal_price": PRICE,
        "quantity": UNITS, "per_user_limit": 1,
        "ends_at": rfc3339(chrono::Utc::now() + chrono::Duration::hours(1))});
    let deal =
        api.post_json(&format!("/stores/{store_id}/deals"), Some(&owner.access_token), &body).await;
    string(&expect_json(deal, 201).await["id"])
}

/// Buyers with points: every other one a point short of the price.
async fn buyers(deployment: &Deployment) -> Vec<QuickUser> {
    let buyers = deployment.quick_users(BUYERS).await;
    let apis = deployment.apis();
    futures_util::stream::iter(buyers.iter().enumerate())
        .for_each_concurrent(64, |(n, buyer)| {
            let api = apis[n % apis.len()].clone();
            async move {
                let amount = if n % 2 == 0 { PRICE } else { PRICE - 1 };
                let response = api
                    .post_json("/me/points/top-up", Some(&buyer.token), &json!({"amount": amount}))
                    .await;
                expect_json(response, 200).await;
            }
        })
        .await;
    buyers
}

/// What a rush was answered.
struct Rush {
    /// The order ids answered 201.
    placed: HashSet<Uuid>,
    /// Requests that got no answer at all (their replica died).
    unanswered: usize,
}

/// Every buyer orders once, through the replicas in turn.
async fn rush(apis: &[Api], buyers: &[QuickUser], deal_id: &str) -> Rush {
    let answers: Vec<Result<Option<Value>, ()>> =
        futures_util::stream::iter(buyers.iter().enumerate())
            .map(|(n, buyer)| {
                let api = apis[n % apis.len()].clone();
                let path = format!("/deals/{deal_id}/orders");
                async move {
                    let request = api
                        .client
                        .post(api.url(&path))
                        .bearer_auth(&buyer.token)
                        .json(&json!({"quantity": 1}));
                    // A replica killed mid-rush answers nothing: that order may or may not exist.
                    let response = request.send().await.map_err(drop)?;
                    if response.status().as_u16() != 201 {
                        return Ok(None);
                    }
                    Ok(response.json::<Value>().await.ok())
                }
            })
            .buffer_unordered(256)
            .collect()
            .await;
    let unanswered = answers.iter().filter(|answer| answer.is_err()).count();
    let placed = answers
        .into_iter()
        .flatten()
        .flatten()
        .map(|body| Uuid::parse_str(&string(&body["order"]["id"])).expect("an order id"))
        .collect();
    Rush { placed, unanswered }
}

/// What PostgreSQL holds of a deal and of the points.
struct Persisted {
    confirmed: HashSet<Uuid>,
    units: i64,
    remaining: i64,
    spent: i64,
    balances: i64,
    top_ups: i64,
}

async fn persisted(deployment: &Deployment, deal: Uuid) -> Persisted {
    let pool = &deployment.pool;
    let confirmed: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "select id, quantity, total from orders where deal_id = $1 and status = 'confirmed'",
    )
    .bind(deal)
    .fetch_all(pool)
    .await
    .unwrap();
    let (remaining,): (i64,) = sqlx::query_as("select remaining from deals where id = $1")
        .bind(deal)
        .fetch_one(pool)
        .await
        .unwrap();
    let (balances,): (i64,) =
        sqlx::query_as("select coalesce(sum(balance), 0)::bigint from point_accounts")
            .fetch_one(pool)
            .await
            .unwrap();
    let (top_ups,): (i64,) =
        sqlx::query_as("select coalesce(sum(amount), 0)::bigint from point_top_ups")
            .fetch_one(pool)
            .await
            .unwrap();
    Persisted {
        confirmed: confirmed.iter().map(|(id, _, _)| *id).collect(),
        units: confirmed.iter().map(|(_, quantity, _)| quantity).sum(),
        spent: confirmed.iter().map(|(_, _, total)| total).sum(),
        remaining,
        balances,
        top_ups,
    }
}

/// Waits until no order of the deal's shard is under way (the sweep has finished those of a
/// dead replica), at most 20 s.
async fn settled(deployment: &Deployment, deal_id: &str) {
    let under_way = deployment.keys().orders_under_way(deployment.shard_of(deal_id));
    let started = std::time::Instant::now();
    loop {
        let left: i64 = deployment.redis_query(redis::cmd("ZCARD").arg(&under_way)).await;
        if left == 0 {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{left} orders still under way; {}",
            deployment.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The invariants, from PostgreSQL once the persisters have caught up (polled, at most 20 s):
/// every answered order is confirmed there, confirmed units plus stock left are the quantity,
/// and balances plus confirmed totals are the top-ups.
async fn check(deployment: &Deployment, deal_id: &str, answered: &HashSet<Uuid>) -> i64 {
    settled(deployment, deal_id).await;
    let deal = Uuid::parse_str(deal_id).unwrap();
    let started = std::time::Instant::now();
    loop {
        let now = persisted(deployment, deal).await;
        let whole = answered.is_subset(&now.confirmed)
            && now.units + now.remaining == UNITS
            && now.balances + now.spent == now.top_ups;
        if whole || started.elapsed() > std::time::Duration::from_secs(20) {
            assert!(
                answered.is_subset(&now.confirmed),
                "an acknowledged order is missing from the database"
            );
            assert_eq!(now.units + now.remaining, UNITS, "stock: confirmed units + remaining");
            assert_eq!(
                now.balances + now.spent,
                now.top_ups,
                "points: balances + confirmed totals = top-ups"
            );
            return now.units;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_buyers_through_two_replicas_buy_exactly_the_stock() {
    let deployment = Deployment::start(2).await;
    let deal_id = deal(&deployment.api(0)).await;
    let buyers = buyers(&deployment).await;

    let answered = rush(&deployment.apis(), &buyers, &deal_id).await.placed;

    assert_eq!(answered.len() as i64, UNITS, "{}", deployment.logs());
    assert_eq!(check(&deployment, &deal_id, &answered).await, UNITS);
    for api in deployment.apis() {
        assert_eq!(api.get_json(&format!("/deals/{deal_id}")).await["remaining"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_rush_leaves_every_order_whole() {
    let mut deployment = Deployment::start(2).await;
    let deal_id = deal(&deployment.api(0)).await;
    let buyers = buyers(&deployment).await;
    let apis = deployment.apis();

    let replicas = &mut deployment.replicas;
    let (first, ()) = tokio::join!(rush(&apis, &buyers, &deal_id), async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        replicas[1].kill();
    });
    assert!(first.unanswered > 0, "the replica died after the rush, not during it");
    let answered = first.placed;
    let mut restarted = deployment.spawn("r1");
    restarted.wait_until_healthy().await;
    deployment.replicas[1] = restarted;

    // The sweep finishes what the dead replica left under way (confirmed if its points were
    // taken, else the units go back).
    let sold = check(&deployment, &deal_id, &answered).await;
    assert!(sold <= UNITS);
    // The survivors buy what is left: the deal sells out exactly.
    let late = rush(&[deployment.api(0)], &buyers, &deal_id).await.placed;
    let mut all = answered.clone();
    all.extend(late);
    assert_eq!(check(&deployment, &deal_id, &all).await, UNITS, "{}", deployment.logs());
}
