//! The deals' live streams: a store's orders for its owner and the favourite stores' new deals
//! for a user — the frames, who may watch, and replay after a reconnect (`Last-Event-ID`).

use serde_json::{Value, json};

use crate::deals::{home, live_deal, open_store, order, post_deal, top_up};
use crate::helpers::{
    EventStream, TestApp, TestUser, expect_error, expect_json, rfc3339, spawn_app, string,
};

async fn store_of_deal(app: &TestApp, deal_id: &str) -> String {
    string(&app.get_json(&format!("/deals/{deal_id}")).await["store_id"])
}

async fn owner_stream(
    app: &TestApp,
    owner: &TestUser,
    store_id: &str,
    last_event_id: Option<&str>,
) -> EventStream {
    app.stream(&format!("/stores/{store_id}/events"), Some(&owner.access_token), last_event_id)
        .await
}

async fn place(app: &TestApp, buyer: &TestUser, deal_id: &str) -> Value {
    expect_json(order(app, &buyer.access_token, deal_id, json!(1)).await, 201).await
}

#[tokio::test]
async fn the_owner_sees_orders_placed_and_cancelled_live_with_numbered_ids() {
    let app = spawn_app().await;
    let (owner, buyer) = (app.signup().await, app.signup().await);
    let deal_id = live_deal(&app, &owner, json!({})).await;
    let store_id = store_of_deal(&app, &deal_id).await;
    top_up(&app, &buyer.access_token, 5_000).await;
    let mut events = owner_stream(&app, &owner, &store_id, None).await;

    let placed = expect_json(order(&app, &buyer.access_token, &deal_id, json!(2)).await, 201).await;
    let order_id = string(&placed["order"]["id"]);
    let created = events.next_named("order_created").await;
    assert_eq!(created.id.as_deref(), Some("1"));
    let data = created.json();
    assert_eq!(data["order_id"], order_id.as_str());
    assert_eq!(data["id"], order_id.as_str());
    assert_eq!(data["deal_id"], deal_id.as_str());
    assert_eq!(data["store_id"], store_id.as_str());
    assert_eq!(data["buyer_id"], buyer.id.as_str());
    assert_eq!(data["quantity"], 2);
    assert_eq!(data["total_price"], 1_000);
    assert_eq!(data["status"], "confirmed");

    let cancel = app
        .post_json(&format!("/orders/{order_id}/cancel"), Some(&buyer.access_token), &json!({}))
        .await;
    expect_json(cancel, 200).await;
    let cancelled = events.next_named("order_cancelled").await;
    assert_eq!(cancelled.id.as_deref(), Some("2"));
    assert_eq!(cancelled.json()["order_id"], order_id.as_str());
    assert_eq!(cancelled.json()["status"], "cancelled");
}

#[tokio::test]
async fn a_reconnecting_owner_gets_the_missed_orders_first_then_live_ones() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let deal_id = live_deal(&app, &owner, json!({"per_user_limit": 1})).await;
    let store_id = store_of_deal(&app, &deal_id).await;
    let buyers = app.signup_many(4).await;
    let mut orders = Vec::new();
    for buyer in &buyers[..3] {
        top_up(&app, &buyer.access_token, 500).await;
        orders.push(string(&place(&app, buyer, &deal_id).await["order"]["id"]));
    }

    let mut events = owner_stream(&app, &owner, &store_id, Some("1")).await;
    for (seq, order_id) in [(2, &orders[1]), (3, &orders[2])] {
        let event = events.next_named("order_created").await;
        assert_eq!(event.seq(), seq);
        assert_eq!(event.json()["order_id"], order_id.as_str());
    }
    top_up(&app, &buyers[3].access_token, 500).await;
    let late = string(&place(&app, &buyers[3], &deal_id).await["order"]["id"]);
    let event = events.next_named("order_created").await;
    assert_eq!(event.seq(), 4);
    assert_eq!(event.json()["order_id"], late.as_str());

    // `after_seq` does the same as the header.
    let mut replay = app
        .stream(&format!("/stores/{store_id}/events?after_seq=3"), Some(&owner.access_token), None)
        .await;
    assert_eq!(replay.next_named("order_created").await.json()["order_id"], late.as_str());
}

#[tokio::test]
async fn only_the_owner_may_watch_a_store() {
    let app = spawn_app().await;
    let (owner, stranger) = (app.signup().await, app.signup().await);
    let store_id = string(&open_store(&app, &owner, home(), "snack").await["id"]);
    let path = format!("/stores/{store_id}/events");

    expect_error(
        app.open_stream(&path, Some(&stranger.access_token), None).await,
        403,
        "not_store_owner",
    )
    .await;
    expect_error(app.open_stream(&path, None, None).await, 401, "unauthorized").await;
    let unknown = format!("/stores/{}/events", uuid::Uuid::new_v4());
    expect_error(
        app.open_stream(&unknown, Some(&owner.access_token), None).await,
        404,
        "not_found",
    )
    .await;
}

fn deal_body(title: &str) -> Value {
    json!({"title": title, "original_price": 1000, "deal_price": 400, "quantity": 5,
        "ends_at": rfc3339(chrono::Utc::now() + chrono::Duration::hours(1))})
}

async fn post(app: &TestApp, owner: &TestUser, store_id: &str, title: &str) -> Value {
    expect_json(post_deal(app, owner, store_id, &deal_body(title)).await, 201).await
}

async fn favorite(app: &TestApp, user: &TestUser, store_id: &str, on: bool) {
    let request = if on {
        app.client.put(app.url(&format!("/stores/{store_id}/favorite")))
    } else {
        app.client.delete(app.url(&format!("/stores/{store_id}/favorite")))
    };
    let response = app.send(request.bearer_auth(&user.access_token)).await;
    assert_eq!(response.status().as_u16(), 204);
}

#[tokio::test]
async fn my_stream_shows_the_deals_of_my_favourite_stores_only_as_they_change() {
    let app = spawn_app().await;
    let (owner, fan) = (app.signup().await, app.signup().await);
    let liked = string(&open_store(&app, &owner, home(), "dessert").await["id"]);
    let other = string(&open_store(&app, &owner, home(), "dessert").await["id"]);
    favorite(&app, &fan, &liked, true).await;
    let mut events = app.stream("/me/events", Some(&fan.access_token), None).await;

    post(&app, &owner, &other, "not followed").await;
    let first = post(&app, &owner, &liked, "followed").await;
    let event = events.next_named("deal_created").await;
    let data = event.json();
    assert_eq!(data["deal_id"], first["id"]);
    assert_eq!(data["id"], first["id"]);
    assert_eq!(data["store_id"], liked.as_str());
    assert_eq!(data["title"], "followed");
    assert_eq!(data["remaining"], 5);

    // A favourite added while the stream is open counts at once; one removed stops.
    favorite(&app, &fan, &other, true).await;
    favorite(&app, &fan, &liked, false).await;
    post(&app, &owner, &liked, "no longer followed").await;
    let second = post(&app, &owner, &other, "now followed").await;
    let event = events.next_named("deal_created").await;
    assert_eq!(event.json()["deal_id"], second["id"]);
    assert!(event.seq() > data["seq"].as_i64().unwrap());

    expect_error(app.open_stream("/me/events", None, None).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn my_stream_replays_the_favourite_deals_posted_after_the_last_event_id() {
    let app = spawn_app().await;
    let (owner, fan) = (app.signup().await, app.signup().await);
    let store_id = string(&open_store(&app, &owner, home(), "meat").await["id"]);
    favorite(&app, &fan, &store_id, true).await;
    let deals =
        [post(&app, &owner, &store_id, "one").await, post(&app, &owner, &store_id, "two").await];

    let mut all = app.stream("/me/events?after_seq=0", Some(&fan.access_token), None).await;
    let first = all.next_named("deal_created").await;
    assert_eq!(first.json()["deal_id"], deals[0]["id"]);
    assert_eq!(all.next_named("deal_created").await.json()["deal_id"], deals[1]["id"]);

    let first_id = first.id.clone().unwrap();
    let mut resumed = app.stream("/me/events", Some(&fan.access_token), Some(&first_id)).await;
    assert_eq!(resumed.next_named("deal_created").await.json()["deal_id"], deals[1]["id"]);
    let third = post(&app, &owner, &store_id, "three").await;
    assert_eq!(resumed.next_named("deal_created").await.json()["deal_id"], third["id"]);
}
