//! Deals: stores, nearby search, deals, favourites and points, through the HTTP API (on every
//! backend `scripts/test.sh` runs the suite on).

use chrono::{Duration, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestUser, expect_error, expect_field_error, expect_json, header, merged, rfc3339,
    spawn_app, string,
};

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A place of this test's own, far from every other test's stores (the suite may share one
/// database): somewhere between 60° S and 60° N.
pub(crate) fn home() -> (f64, f64) {
    let bits = uuid::Uuid::new_v4().as_u128();
    let lat = (bits % 120_000) as f64 / 1000.0 - 60.0;
    let lng = ((bits >> 32) % 340_000) as f64 / 1000.0 - 170.0;
    (lat, lng)
}

/// The place `distance` metres from `(lat, lng)` along `bearing` degrees from north.
fn destination((lat, lng): (f64, f64), bearing: f64, distance: f64) -> (f64, f64) {
    let angular = distance / EARTH_RADIUS_M;
    let (lat1, lng1, bearing) = (lat.to_radians(), lng.to_radians(), bearing.to_radians());
    let lat2 = (lat1.sin() * angular.cos() + lat1.cos() * angular.sin() * bearing.cos()).asin();
    let lng2 = lng1
        + (bearing.sin() * angular.sin() * lat1.cos())
            .atan2(angular.cos() - lat1.sin() * lat2.sin());
    (lat2.to_degrees(), lng2.to_degrees())
}

/// The reference distance: haversine, written out here independently of the server's.
fn haversine((lat1, lng1): (f64, f64), (lat2, lng2): (f64, f64)) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let a = ((p2 - p1) / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((lng2 - lng1).to_radians() / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

fn store_body((lat, lng): (f64, f64), category: &str) -> Value {
    json!({"name": "Mangwon Bakery", "category": category, "lat": lat, "lng": lng,
        "address": "Mangwon-ro 1, Seoul"})
}

pub(crate) async fn open_store(
    app: &TestApp,
    owner: &TestUser,
    place: (f64, f64),
    category: &str,
) -> Value {
    let response =
        app.post_json("/stores", Some(&owner.access_token), &store_body(place, category)).await;
    expect_json(response, 201).await
}

fn deal_body() -> Value {
    json!({"title": "Last ten boxes", "original_price": 12000, "deal_price": 6000,
        "quantity": 10, "ends_at": rfc3339(Utc::now() + Duration::hours(2))})
}

pub(crate) async fn post_deal(
    app: &TestApp,
    owner: &TestUser,
    store_id: &str,
    body: &Value,
) -> reqwest::Response {
    app.post_json(&format!("/stores/{store_id}/deals"), Some(&owner.access_token), body).await
}

async fn nearby(app: &TestApp, params: &[(&str, String)]) -> reqwest::Response {
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.get(&format!("/stores/nearby{}", crate::helpers::query_string(&params))).await
}

#[tokio::test]
async fn opening_a_store_returns_201_and_the_caller_owns_it() {
    let app = spawn_app().await;
    let owner = app.signup().await;

    let response = app
        .post_json(
            "/stores",
            Some(&owner.access_token),
            &store_body((37.5558, 126.9014), "dessert"),
        )
        .await;
    let location = header(&response, "location");
    let store = expect_json(response, 201).await;

    assert_eq!(store["owner_id"], owner.id.as_str());
    assert_eq!(store["category"], "dessert");
    assert_eq!(store["lat"], 37.5558);
    assert_eq!(location, format!("/api/v1/stores/{}", string(&store["id"])));
    let fetched =
        expect_json(app.get(&format!("/stores/{}", string(&store["id"]))).await, 200).await;
    assert_eq!(fetched["name"], "Mangwon Bakery");
    assert_eq!(fetched["deals"], json!([]));
}

#[tokio::test]
async fn a_store_with_a_bad_field_is_refused_with_422_naming_it() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let base = store_body((37.0, 127.0), "dessert");
    for (patch, field) in [
        (json!({"category": "bakery"}), "category"),
        (json!({"lat": 90.5}), "lat"),
        (json!({"lng": -180.5}), "lng"),
        (json!({"name": "   "}), "name"),
        (json!({"address": "x".repeat(201)}), "address"),
    ] {
        let body = merged(base.clone(), patch);
        expect_field_error(app.post_json("/stores", Some(&owner.access_token), &body).await, field)
            .await;
    }
    let anonymous = app.post_json("/stores", None, &base).await;
    expect_error(anonymous, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_unknown_store_or_deal_is_404() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::now_v7();
    expect_error(app.get(&format!("/stores/{unknown}")).await, 404, "not_found").await;
    expect_error(app.get(&format!("/deals/{unknown}")).await, 404, "not_found").await;
    let owner = app.signup().await;
    expect_error(
        post_deal(&app, &owner, &unknown.to_string(), &deal_body()).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_owner_posts_a_deal_and_the_store_lists_it_while_it_is_live() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let store = open_store(&app, &owner, home(), "dessert").await;
    let store_id = string(&store["id"]);

    let response = post_deal(&app, &owner, &store_id, &deal_body()).await;
    let location = header(&response, "location");
    let deal = expect_json(response, 201).await;
    assert_eq!(deal["remaining"], 10);
    assert_eq!(deal["per_user_limit"], 10, "defaults to the quantity");
    assert_eq!(deal["live"], true);
    assert_eq!(location, format!("/api/v1/deals/{}", string(&deal["id"])));

    // One that starts tomorrow is not live yet.
    let later = merged(
        deal_body(),
        json!({
            "starts_at": rfc3339(Utc::now() + Duration::days(1)),
            "ends_at": rfc3339(Utc::now() + Duration::days(1) + Duration::hours(2)),
        }),
    );
    let upcoming = expect_json(post_deal(&app, &owner, &store_id, &later).await, 201).await;
    assert_eq!(upcoming["live"], false);

    let listed = expect_json(app.get(&format!("/stores/{store_id}")).await, 200).await;
    let ids: Vec<Value> =
        listed["deals"].as_array().unwrap().iter().map(|d| d["id"].clone()).collect();
    assert_eq!(ids, vec![deal["id"].clone()]);
    let fetched = expect_json(app.get(&format!("/deals/{}", string(&deal["id"]))).await, 200).await;
    assert_eq!(fetched["remaining"], 10);
    assert_eq!(fetched["deal_price"], 6000);
}

#[tokio::test]
async fn only_the_owner_may_post_a_deal() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let stranger = app.signup().await;
    let store = open_store(&app, &owner, home(), "snack").await;
    let response = post_deal(&app, &stranger, &string(&store["id"]), &deal_body()).await;
    expect_error(response, 403, "not_store_owner").await;
}

#[tokio::test]
async fn a_deal_breaking_a_rule_is_refused_with_422_naming_the_field() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let store_id = string(&open_store(&app, &owner, home(), "korean").await["id"]);
    for (patch, field) in [
        (json!({"deal_price": 12000}), "deal_price"),
        (json!({"deal_price": 0}), "deal_price"),
        (json!({"quantity": 0}), "quantity"),
        (json!({"quantity": 10001}), "quantity"),
        (json!({"per_user_limit": 11}), "per_user_limit"),
        (json!({"per_user_limit": 0}), "per_user_limit"),
        (json!({"starts_at": rfc3339(Utc::now() + Duration::hours(3))}), "ends_at"),
        (json!({"ends_at": rfc3339(Utc::now() - Duration::minutes(1))}), "ends_at"),
        (json!({"title": ""}), "title"),
    ] {
        let body = merged(deal_body(), patch.clone());
        expect_field_error(post_deal(&app, &owner, &store_id, &body).await, field).await;
    }
}

/// Stores at known distances from the centre, in every direction: the search returns exactly
/// those within the radius, nearest first, with the reference haversine distance.
#[tokio::test]
async fn nearby_stores_come_nearest_first_within_the_radius_by_great_circle_distance() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let center = home();
    let placed = [
        (100.0, 10.0),
        (250.0, 100.0),
        (500.0, 200.0),
        (999.0, 300.0),
        (1001.0, 45.0),
        (1500.0, 0.0),
        (4.9, 270.0),
    ];
    let mut expected = Vec::new();
    for (distance, bearing) in placed {
        let place = destination(center, bearing, distance);
        let store = open_store(&app, &owner, place, "chicken").await;
        expected.push((haversine(center, place), string(&store["id"])));
    }
    expected.sort_by(|a, b| a.0.total_cmp(&b.0));
    let within: Vec<&(f64, String)> = expected.iter().filter(|(d, _)| *d <= 1000.0).collect();

    let params = [("lat", center.0.to_string()), ("lng", center.1.to_string())];
    let page = expect_json(nearby(&app, &params).await, 200).await;
    let items = page["items"].as_array().unwrap();
    let ids: Vec<String> = items.iter().map(|item| string(&item["id"])).collect();
    assert_eq!(ids, within.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), "{page}");
    for (item, (distance, _)) in items.iter().zip(&within) {
        let shown = item["distance_m"].as_f64().unwrap();
        assert!((shown - distance).abs() < 0.01, "{shown} against {distance}");
        assert_eq!(item["active_deals"], 0);
    }

    // The radius edge, both ways.
    let wide = [params[0].clone(), params[1].clone(), ("radius_m", "1002".to_owned())];
    let page = expect_json(nearby(&app, &wide).await, 200).await;
    assert_eq!(page["items"].as_array().unwrap().len(), within.len() + 1);
    let tight = [params[0].clone(), params[1].clone(), ("radius_m", "5".to_owned())];
    let page = expect_json(nearby(&app, &tight).await, 200).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "only the store 4.9 m away");
}

#[tokio::test]
async fn nearby_pages_neither_skip_nor_repeat_and_filter_by_category() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let center = home();
    let mut all = Vec::new();
    for n in 0..11 {
        let category = if n % 3 == 0 { "meat" } else { "snack" };
        // Two stores at each distance: the id breaks the tie.
        let place = destination(center, f64::from(n) * 33.0, f64::from(100 + (n / 2) * 50));
        all.push((string(&open_store(&app, &owner, place, category).await["id"]), category));
    }
    let base = vec![
        ("lat", center.0.to_string()),
        ("lng", center.1.to_string()),
        ("limit", "3".to_owned()),
    ];
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = base.clone();
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor.clone()));
        }
        let page = expect_json(nearby(&app, &params).await, 200).await;
        let distances: Vec<f64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["distance_m"].as_f64().unwrap())
            .collect();
        assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
        seen.extend(page["items"].as_array().unwrap().iter().map(|i| string(&i["id"])));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a store came twice: {seen:?}");
    assert_eq!(seen.len(), all.len());

    let mut meat = base.clone();
    meat.push(("category", "meat".to_owned()));
    meat[2].1 = "100".to_owned();
    let page = expect_json(nearby(&app, &meat).await, 200).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        all.iter().filter(|(_, c)| *c == "meat").count()
    );
    assert!(page["items"].as_array().unwrap().iter().all(|i| i["category"] == "meat"));
}

#[tokio::test]
async fn nearby_counts_the_live_deals_of_each_store() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let center = home();
    let store_id =
        string(&open_store(&app, &owner, destination(center, 0.0, 50.0), "western").await["id"]);
    for _ in 0..2 {
        expect_json(post_deal(&app, &owner, &store_id, &deal_body()).await, 201).await;
    }
    let tomorrow = merged(
        deal_body(),
        json!({
            "starts_at": rfc3339(Utc::now() + Duration::days(1)),
            "ends_at": rfc3339(Utc::now() + Duration::days(1) + Duration::hours(1)),
        }),
    );
    expect_json(post_deal(&app, &owner, &store_id, &tomorrow).await, 201).await;
    let params = [("lat", center.0.to_string()), ("lng", center.1.to_string())];
    let page = expect_json(nearby(&app, &params).await, 200).await;
    assert_eq!(page["items"][0]["active_deals"], 2, "{page}");
}

#[tokio::test]
async fn nearby_refuses_bad_parameters_with_422() {
    let app = spawn_app().await;
    let at = |extra: (&'static str, &str)| {
        vec![("lat", "37.5".to_owned()), ("lng", "127.0".to_owned()), (extra.0, extra.1.to_owned())]
    };
    for (params, field) in [
        (at(("radius_m", "0")), "radius_m"),
        (at(("radius_m", "20001")), "radius_m"),
        (at(("category", "bakery")), "category"),
        (at(("limit", "101")), "limit"),
        (vec![("lat", "91".to_owned()), ("lng", "0".to_owned())], "lat"),
        (vec![("lat", "0".to_owned()), ("lng", "181".to_owned())], "lng"),
    ] {
        expect_field_error(nearby(&app, &params).await, field).await;
    }
    let missing = app.get("/stores/nearby?lat=1").await;
    expect_field_error(missing, "lng").await;
}

#[tokio::test]
async fn favourites_are_idempotent_and_need_a_known_store() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let fan = app.signup().await;
    let store_id = string(&open_store(&app, &owner, home(), "japanese").await["id"]);
    let path = app.url(&format!("/stores/{store_id}/favorite"));
    for _ in 0..2 {
        let response = app.send(app.client.put(&path).bearer_auth(&fan.access_token)).await;
        assert_eq!(response.status().as_u16(), 204);
    }
    for _ in 0..2 {
        let response = app.send(app.client.delete(&path).bearer_auth(&fan.access_token)).await;
        assert_eq!(response.status().as_u16(), 204);
    }
    let unknown = app.url(&format!("/stores/{}/favorite", uuid::Uuid::now_v7()));
    let response = app.send(app.client.put(&unknown).bearer_auth(&fan.access_token)).await;
    expect_error(response, 404, "not_found").await;
    let response = app.send(app.client.put(&path)).await;
    expect_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn points_start_at_zero_and_top_ups_add_up() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let balance = expect_json(app.get_authed("/me/points", &user.access_token).await, 200).await;
    assert_eq!(balance, json!({"balance": 0}));
    let top_up = |amount: Value| {
        let (app, token) = (&app, user.access_token.clone());
        async move { app.post_json("/me/points/top-up", Some(&token), &json!({"amount": amount})).await }
    };
    assert_eq!(expect_json(top_up(json!(500)).await, 200).await["balance"], 500);
    assert_eq!(expect_json(top_up(json!(1_000_000)).await, 200).await["balance"], 1_000_500);
    for amount in [json!(0), json!(-5), json!(1_000_001)] {
        expect_field_error(top_up(amount).await, "amount").await;
    }
    let balance = expect_json(app.get_authed("/me/points", &user.access_token).await, 200).await;
    assert_eq!(balance["balance"], 1_000_500);
    expect_error(app.get("/me/points").await, 401, "unauthorized").await;
}

// ---- orders ----

/// A store of `owner`'s with one live deal (price 500, 10 units, 2 per buyer unless patched).
pub(crate) async fn live_deal(app: &TestApp, owner: &TestUser, patch: Value) -> String {
    let store_id = string(&open_store(app, owner, home(), "dessert").await["id"]);
    let body = merged(
        json!({"title": "Boxes", "original_price": 1000, "deal_price": 500, "quantity": 10,
            "per_user_limit": 2, "ends_at": rfc3339(Utc::now() + Duration::hours(1))}),
        patch,
    );
    string(&expect_json(post_deal(app, owner, &store_id, &body).await, 201).await["id"])
}

pub(crate) async fn top_up(app: &TestApp, token: &str, amount: i64) -> Value {
    let response =
        app.post_json("/me/points/top-up", Some(token), &json!({"amount": amount})).await;
    expect_json(response, 200).await
}

pub(crate) async fn order(
    app: &TestApp,
    token: &str,
    deal_id: &str,
    quantity: Value,
) -> reqwest::Response {
    app.post_json(&format!("/deals/{deal_id}/orders"), Some(token), &json!({"quantity": quantity}))
        .await
}

async fn balance(app: &TestApp, token: &str) -> i64 {
    expect_json(app.get_authed("/me/points", token).await, 200).await["balance"].as_i64().unwrap()
}

#[tokio::test]
async fn an_order_takes_stock_and_points_at_the_servers_price() {
    let app = spawn_app().await;
    let (owner, buyer) = (app.signup().await, app.signup().await);
    let deal_id = live_deal(&app, &owner, json!({})).await;
    top_up(&app, &buyer.access_token, 1_200).await;

    let response = order(&app, &buyer.access_token, &deal_id, json!(2)).await;
    let location = header(&response, "location");
    let placed = expect_json(response, 201).await;
    assert_eq!(placed["order"]["deal_id"], deal_id.as_str());
    assert_eq!(placed["order"]["quantity"], 2);
    assert_eq!(placed["order"]["total_price"], 1_000);
    assert_eq!(placed["order"]["status"], "confirmed");
    assert_eq!(placed["remaining"], 8);
    assert_eq!(placed["points_balance"], 200);
    assert_eq!(location, format!("/api/v1/orders/{}", string(&placed["order"]["id"])));
    assert_eq!(expect_json(app.get(&format!("/deals/{deal_id}")).await, 200).await["remaining"], 8);
    assert_eq!(balance(&app, &buyer.access_token).await, 200);
}

#[tokio::test]
async fn my_orders_are_mine_newest_first_in_pages() {
    let app = spawn_app().await;
    let (owner, buyer, other) = (app.signup().await, app.signup().await, app.signup().await);
    let deal_id = live_deal(&app, &owner, json!({"per_user_limit": 10})).await;
    top_up(&app, &buyer.access_token, 10_000).await;
    top_up(&app, &other.access_token, 10_000).await;
    let mut placed = Vec::new();
    for quantity in 1..=3 {
        let response = order(&app, &buyer.access_token, &deal_id, json!(quantity)).await;
        placed.push(string(&expect_json(response, 201).await["order"]["id"]));
    }
    expect_json(order(&app, &other.access_token, &deal_id, json!(1)).await, 201).await;
    placed.reverse();

    // The distributed backend persists orders a moment after it confirms them.
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < crate::helpers::EVENT_TIMEOUT {
        let first =
            expect_json(app.get_authed("/me/orders?limit=2", &buyer.access_token).await, 200).await;
        seen = first["items"].as_array().unwrap().iter().map(|o| string(&o["id"])).collect();
        if let Some(cursor) = first["next_cursor"].as_str() {
            let path = format!("/me/orders?limit=2&cursor={cursor}");
            let next = expect_json(app.get_authed(&path, &buyer.access_token).await, 200).await;
            seen.extend(next["items"].as_array().unwrap().iter().map(|o| string(&o["id"])));
            assert!(next["next_cursor"].is_null());
        }
        if seen == placed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, placed, "the buyer's three orders, newest first, and only theirs");
    let unauthenticated = app.get("/me/orders").await;
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn a_refused_order_takes_nothing_and_says_why() {
    let app = spawn_app().await;
    let (owner, buyer) = (app.signup().await, app.signup().await);
    let deal_id = live_deal(&app, &owner, json!({"quantity": 3, "per_user_limit": 3})).await;

    let poor = expect_error(
        order(&app, &buyer.access_token, &deal_id, json!(1)).await,
        402,
        "insufficient_points",
    )
    .await;
    assert_eq!(poor["balance"], 0, "{poor}");
    top_up(&app, &buyer.access_token, 10_000).await;
    let short = expect_error(
        order(&app, &buyer.access_token, &deal_id, json!(4)).await,
        409,
        "insufficient_stock",
    )
    .await;
    assert_eq!(short["remaining"], 3, "{short}");
    expect_json(order(&app, &buyer.access_token, &deal_id, json!(3)).await, 201).await;
    let other = app.signup().await;
    top_up(&app, &other.access_token, 10_000).await;
    let gone = expect_error(
        order(&app, &other.access_token, &deal_id, json!(1)).await,
        409,
        "insufficient_stock",
    )
    .await;
    assert_eq!(gone["remaining"], 0);

    let limited = live_deal(&app, &owner, json!({})).await;
    expect_json(order(&app, &buyer.access_token, &limited, json!(2)).await, 201).await;
    let over = expect_error(
        order(&app, &buyer.access_token, &limited, json!(1)).await,
        409,
        "per_user_limit",
    )
    .await;
    assert_eq!(over["limit"], 2, "{over}");

    let tomorrow = live_deal(
        &app,
        &owner,
        json!({
            "starts_at": rfc3339(Utc::now() + Duration::days(1)),
            "ends_at": rfc3339(Utc::now() + Duration::days(1) + Duration::hours(1)),
        }),
    )
    .await;
    expect_error(
        order(&app, &buyer.access_token, &tomorrow, json!(1)).await,
        409,
        "deal_not_active",
    )
    .await;

    for quantity in [json!(0), json!(-1)] {
        expect_field_error(order(&app, &buyer.access_token, &limited, quantity).await, "quantity")
            .await;
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    expect_error(order(&app, &buyer.access_token, &unknown, json!(1)).await, 404, "not_found")
        .await;
    expect_error(
        app.post_json(&format!("/deals/{limited}/orders"), None, &json!({"quantity": 1})).await,
        401,
        "unauthorized",
    )
    .await;
    // 10,000 − 1,500 − 1,000: the refusals took nothing.
    assert_eq!(balance(&app, &buyer.access_token).await, 7_500);
}

#[tokio::test]
async fn a_repeated_order_with_its_key_has_one_effect() {
    let app = spawn_app().await;
    let (owner, buyer) = (app.signup().await, app.signup().await);
    let deal_id = live_deal(&app, &owner, json!({})).await;
    top_up(&app, &buyer.access_token, 5_000).await;
    let keyed = |quantity: i64| {
        let request = app
            .client
            .post(app.url(&format!("/deals/{deal_id}/orders")))
            .bearer_auth(&buyer.access_token)
            .header("idempotency-key", "order-1")
            .json(&json!({"quantity": quantity}));
        app.send(request)
    };
    let first = expect_json(keyed(1).await, 201).await;
    let again = expect_json(keyed(1).await, 201).await;
    assert_eq!(first, again);
    expect_error(keyed(2).await, 422, "idempotency_key_reused").await;
    assert_eq!(balance(&app, &buyer.access_token).await, 4_500);
}

#[tokio::test]
async fn cancel_returns_stock_and_points_and_pickup_is_the_owners() {
    let app = spawn_app().await;
    let (owner, buyer, stranger) = (app.signup().await, app.signup().await, app.signup().await);
    let deal_id = live_deal(&app, &owner, json!({})).await;
    top_up(&app, &buyer.access_token, 2_000).await;
    let post = |path: String, token: String| {
        let app = &app;
        async move { app.post_json(&path, Some(&token), &json!({})).await }
    };

    let first = string(
        &expect_json(order(&app, &buyer.access_token, &deal_id, json!(2)).await, 201).await["order"]
            ["id"],
    );
    expect_error(
        post(format!("/orders/{first}/cancel"), stranger.access_token.clone()).await,
        404,
        "not_found",
    )
    .await;
    let cancelled =
        expect_json(post(format!("/orders/{first}/cancel"), buyer.access_token.clone()).await, 200)
            .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(balance(&app, &buyer.access_token).await, 2_000);
    assert_eq!(
        expect_json(app.get(&format!("/deals/{deal_id}")).await, 200).await["remaining"],
        10
    );
    expect_error(
        post(format!("/orders/{first}/cancel"), buyer.access_token.clone()).await,
        409,
        "already_cancelled",
    )
    .await;

    // The limit counts live orders only: two more units may be bought again.
    let second = string(
        &expect_json(order(&app, &buyer.access_token, &deal_id, json!(2)).await, 201).await["order"]
            ["id"],
    );
    expect_error(
        post(format!("/orders/{second}/pickup"), buyer.access_token.clone()).await,
        403,
        "not_store_owner",
    )
    .await;
    let picked = expect_json(
        post(format!("/orders/{second}/pickup"), owner.access_token.clone()).await,
        200,
    )
    .await;
    assert_eq!(picked["status"], "picked_up");
    expect_error(
        post(format!("/orders/{second}/cancel"), buyer.access_token.clone()).await,
        409,
        "already_picked_up",
    )
    .await;
    expect_error(
        post(format!("/orders/{second}/pickup"), owner.access_token.clone()).await,
        409,
        "already_picked_up",
    )
    .await;
    let unknown = uuid::Uuid::now_v7();
    expect_error(
        post(format!("/orders/{unknown}/cancel"), buyer.access_token.clone()).await,
        404,
        "not_found",
    )
    .await;

    // The owner sees the store's orders, newest first; nobody else does.
    let store_id =
        string(&expect_json(app.get(&format!("/deals/{deal_id}")).await, 200).await["store_id"]);
    let page = expect_json(
        app.get_authed(&format!("/stores/{store_id}/orders"), &owner.access_token).await,
        200,
    )
    .await;
    let ids: Vec<String> =
        page["items"].as_array().unwrap().iter().map(|o| string(&o["id"])).collect();
    assert_eq!(ids, vec![second.clone(), first.clone()]);
    expect_error(
        app.get_authed(&format!("/stores/{store_id}/orders"), &buyer.access_token).await,
        403,
        "not_store_owner",
    )
    .await;

    // Once the deal has ended, an order can no longer be cancelled.
    let later_deal = live_deal(&app, &owner, json!({})).await;
    let placed =
        expect_json(order(&app, &buyer.access_token, &later_deal, json!(1)).await, 201).await;
    let third = string(&placed["order"]["id"]);
    app.advance(Duration::hours(2));
    let buyer = app.login_again(&buyer).await; // the old access token has expired too
    expect_error(
        post(format!("/orders/{third}/cancel"), buyer.access_token.clone()).await,
        409,
        "deal_ended",
    )
    .await;
}

/// The closing-time rush: 2,000 buyers tap "order" at once on 100 units, one each. Exactly
/// 100 orders are confirmed, nothing is left, and every point is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rush_of_two_thousand_buyers_on_a_hundred_units_sells_exactly_a_hundred() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let deal_id = live_deal(&app, &owner, json!({"quantity": 100, "per_user_limit": 1})).await;
    let buyers = app.quick_users(2_000).await;
    // Half can pay, half are 1 point short.
    let mut topped = 0;
    for (n, buyer) in buyers.iter().enumerate() {
        let amount = if n % 2 == 0 { 500 } else { 499 };
        top_up(&app, &buyer.token, amount).await;
        topped += amount;
    }

    let answers: Vec<(u16, Value)> = futures_util::stream::iter(buyers.iter())
        .map(|buyer| {
            let app = &app;
            let deal_id = deal_id.clone();
            async move {
                let response = order(app, &buyer.token, &deal_id, json!(1)).await;
                crate::helpers::status_and_json(response).await
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;

    let confirmed = answers.iter().filter(|(status, _)| *status == 201).count();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for (status, _) in &answers {
        *statuses.entry(*status).or_default() += 1;
    }
    assert_eq!(confirmed, 100, "{statuses:?}");
    for (status, body) in &answers {
        let code = body["error"]["code"].as_str().unwrap_or("");
        assert!(
            matches!(
                (status, code),
                (201, _) | (409, "insufficient_stock") | (402, "insufficient_points")
            ),
            "{status} {body}"
        );
    }
    let deal = expect_json(app.get(&format!("/deals/{deal_id}")).await, 200).await;
    assert_eq!(deal["remaining"], 0);
    let mut left = 0;
    for buyer in &buyers {
        left += balance(&app, &buyer.token).await;
    }
    assert_eq!(left + 100 * 500, topped, "points: balances + confirmed totals = top-ups");
}
