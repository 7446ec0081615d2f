//! The deals' live streams across replicas: an owner watching on one replica sees the orders
//! placed through another, a user sees the deals posted through another, and a replica that
//! loses its notice connection catches its streams up from the database.

use serde_json::{Value, json};

use super::deployment::Deployment;
use crate::helpers::{Api, TestUser, expect_json, rfc3339, string};

async fn store(api: &Api, owner: &TestUser) -> String {
    let body = json!({"name": "Relay bakery", "category": "dessert", "lat": 37.55, "lng": 126.9,
        "address": "Mangwon-ro 1"});
    string(
        &expect_json(api.post_json("/stores", Some(&owner.access_token), &body).await, 201).await["id"],
    )
}

async fn post_deal(api: &Api, owner: &TestUser, store_id: &str) -> Value {
    let body = json!({"title": "Last boxes", "original_price": 1000, "deal_price": 500,
        "quantity": 50, "per_user_limit": 5,
        "ends_at": rfc3339(chrono::Utc::now() + chrono::Duration::hours(1))});
    let response =
        api.post_json(&format!("/stores/{store_id}/deals"), Some(&owner.access_token), &body).await;
    expect_json(response, 201).await
}

async fn order(api: &Api, buyer: &TestUser, deal_id: &str) -> String {
    let response = api
        .post_json(
            &format!("/deals/{deal_id}/orders"),
            Some(&buyer.access_token),
            &json!({"quantity": 1}),
        )
        .await;
    string(&expect_json(response, 201).await["order"]["id"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_on_one_replica_show_what_was_done_through_another() {
    let deployment = Deployment::start(2).await;
    let (writer, watcher) = (deployment.api(0), deployment.api(1));
    let (owner, fan, buyer) = (writer.signup().await, writer.signup().await, writer.signup().await);
    let store_id = store(&writer, &owner).await;
    let favorite = writer
        .send(
            writer
                .client
                .put(writer.url(&format!("/stores/{store_id}/favorite")))
                .bearer_auth(&fan.access_token),
        )
        .await;
    assert_eq!(favorite.status().as_u16(), 204);
    let mut owner_events = watcher
        .stream(&format!("/stores/{store_id}/events"), Some(&owner.access_token), None)
        .await;
    let mut fan_events = watcher.stream("/me/events", Some(&fan.access_token), None).await;

    let deal = post_deal(&writer, &owner, &store_id).await;
    assert_eq!(fan_events.next_named("deal_created").await.json()["deal_id"], deal["id"]);

    let deal_id = string(&deal["id"]);
    expect_json(
        writer
            .post_json("/me/points/top-up", Some(&buyer.access_token), &json!({"amount": 5000}))
            .await,
        200,
    )
    .await;
    let order_id = order(&writer, &buyer, &deal_id).await;
    let event = owner_events.next_named("order_created").await;
    assert_eq!(event.seq(), 1);
    assert_eq!(event.json()["order_id"], order_id.as_str());

    // The watching replica loses its notice connection; orders placed meanwhile still arrive,
    // in order and once each.
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_all(&deployment.pool)
    .await
    .unwrap();
    assert!(!terminated.is_empty(), "no replica was listening");
    let mut placed = Vec::new();
    for _ in 0..3 {
        placed.push(order(&writer, &buyer, &deal_id).await);
    }
    for (n, order_id) in placed.iter().enumerate() {
        let event = owner_events.next_named("order_created").await;
        assert_eq!(event.seq(), n as i64 + 2, "{}", deployment.logs());
        assert_eq!(event.json()["order_id"], order_id.as_str());
    }
}
