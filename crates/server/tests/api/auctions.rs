//! Auctions: create, read, status over time, winner, and search.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    EVENT_TIMEOUT, TestApp, TestUser, assert_same_instant, auction_body, expect_error, expect_json,
    header, ids, int, merged, minutes, rfc3339, spawn_app, status_and_json, string, time,
};

const AUCTION_FIELDS: [&str; 16] = [
    "id",
    "seller",
    "title",
    "description",
    "starting_price",
    "min_increment",
    "current_price",
    "high_bidder",
    "bid_count",
    "starts_at",
    "ends_at",
    "extend_seconds",
    "status",
    "winner",
    "images",
    "created_at",
];

const SUMMARY_FIELDS: [&str; 8] = [
    "id",
    "title",
    "current_price",
    "bid_count",
    "starts_at",
    "ends_at",
    "status",
    "thumbnail_url",
];

/// Waits (bounded) until the closer has recorded the end of an auction.
pub async fn wait_until_ended(app: &TestApp, auction_id: &str) -> Value {
    let wait = async {
        let mut poll = tokio::time::interval(Duration::from_millis(50));
        loop {
            poll.tick().await;
            let auction = app.auction(auction_id).await;
            if auction["status"] == "ended" && !auction["winner"].is_null() {
                return auction;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("the auction did not get a winner in time")
}

// ---- create ----

#[tokio::test]
async fn create_auction_returns_201_with_location_and_the_auction() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();
    let ends_at = now + minutes(90);
    let body = json!({
        "title": "Leica M6",
        "description": "Film camera.",
        "starting_price": 1500,
        "min_increment": 50,
        "ends_at": rfc3339(ends_at),
        "extend_seconds": 120,
    });

    let response = app.create_auction_request(&seller.access_token, &body).await;

    let location = header(&response, "location");
    let auction = expect_json(response, 201).await;
    for field in AUCTION_FIELDS {
        assert!(auction.get(field).is_some(), "auction without {field}: {auction}");
    }
    let id = string(&auction["id"]);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{auction}");
    assert!(
        location.ends_with(&format!("/api/v1/auctions/{id}")),
        "Location {location:?} does not point at the auction"
    );
    assert_eq!(auction["seller"], json!({"id": seller.id, "nickname": seller.nickname}));
    assert_eq!(auction["title"], "Leica M6");
    assert_eq!(auction["description"], "Film camera.");
    assert_eq!(auction["starting_price"], 1500);
    assert_eq!(auction["min_increment"], 50);
    assert_eq!(auction["current_price"], 1500);
    assert!(auction["high_bidder"].is_null());
    assert_eq!(auction["bid_count"], 0);
    assert_same_instant(time(&auction["ends_at"]), ends_at);
    assert_eq!(auction["extend_seconds"], 120);
    assert_eq!(auction["status"], "live");
    assert!(auction["winner"].is_null());
    assert_eq!(auction["images"], json!([]));

    assert_eq!(app.auction(&id).await, auction);
}

#[tokio::test]
async fn create_auction_applies_the_documented_defaults() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();

    let auction = app
        .create_auction(
            &seller,
            json!({
                "title": "Defaults",
                "description": "Only the required fields.",
                "starting_price": 0,
                "ends_at": rfc3339(now + minutes(30)),
            }),
        )
        .await;

    assert_eq!(auction["min_increment"], 1);
    assert_eq!(auction["extend_seconds"], 0);
    assert_eq!(auction["current_price"], 0);
    assert_eq!(auction["status"], "live");
    let starts_at = time(&auction["starts_at"]);
    assert!((starts_at - now).num_seconds().abs() <= 5, "starts_at {starts_at} is not now ({now})");
}

#[tokio::test]
async fn create_auction_stores_the_description_as_plain_text() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let description = "<b>Mint</b> & <script>alert('x')</script> \"boxed\"\nSecond line";

    let auction = app
        .create_auction(
            &seller,
            merged(auction_body(app.now()), json!({ "description": description })),
        )
        .await;

    assert_eq!(auction["description"], description);
    let read = app.auction(&string(&auction["id"])).await;
    assert_eq!(read["description"], description);
}

#[tokio::test]
async fn create_auction_accepts_the_boundary_values() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();
    let starts_at = now + minutes(60);

    let auction = app
        .create_auction(
            &seller,
            json!({
                "title": "t".repeat(120),
                "description": "d".repeat(5000),
                "starting_price": 0,
                "min_increment": 1,
                "starts_at": rfc3339(starts_at),
                "ends_at": rfc3339(starts_at + chrono::Duration::days(30)),
                "extend_seconds": 600,
                "image_ids": [],
            }),
        )
        .await;

    assert_eq!(auction["extend_seconds"], 600);
    assert_eq!(auction["status"], "upcoming");
}

#[tokio::test]
async fn create_auction_rejects_invalid_fields_with_422_naming_the_field() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();
    let later = now + minutes(120);
    let eleven_ids: Vec<String> = (0..11).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let cases = [
        ("title", json!({"title": ""})),
        ("title", json!({"title": "t".repeat(121)})),
        ("description", json!({"description": "d".repeat(5001)})),
        ("starting_price", json!({"starting_price": -1})),
        ("min_increment", json!({"min_increment": 0})),
        ("ends_at", json!({"ends_at": rfc3339(now - minutes(1))})),
        ("ends_at", json!({"starts_at": rfc3339(later), "ends_at": rfc3339(later - minutes(1))})),
        (
            "ends_at",
            json!({
                "starts_at": rfc3339(later),
                "ends_at": rfc3339(later + chrono::Duration::days(30) + minutes(1)),
            }),
        ),
        ("extend_seconds", json!({"extend_seconds": -1})),
        ("extend_seconds", json!({"extend_seconds": 601})),
        ("image_ids", json!({"image_ids": eleven_ids})),
        ("image_ids", json!({"image_ids": [uuid::Uuid::new_v4()]})),
    ];

    for (field, patch) in cases {
        let body = merged(auction_body(now), patch.clone());
        let response = app.create_auction_request(&seller.access_token, &body).await;
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 422, "{patch} was not rejected: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{body}");
        assert!(
            body["error"]["fields"][field].is_string(),
            "{patch}: expected fields.{field} in {body}"
        );
    }

    let page = app.search_page(&[]).await;
    assert_eq!(page["items"], json!([]), "a rejected auction was stored");
}

#[tokio::test]
async fn create_auction_without_a_token_is_rejected_with_401() {
    let app = spawn_app().await;
    let response = app.post_json("/auctions", None, &auction_body(app.now())).await;
    expect_error(response, 401, "unauthorized").await;
}

// ---- read ----

#[tokio::test]
async fn get_auction_of_an_unknown_id_is_404() {
    let app = spawn_app().await;
    let response = app.get(&format!("/auctions/{}", uuid::Uuid::new_v4())).await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn auction_status_moves_from_upcoming_to_live_to_ended_with_time() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();
    let auction = app
        .create_auction(
            &seller,
            merged(
                auction_body(now),
                json!({"starts_at": rfc3339(now + minutes(60)), "ends_at": rfc3339(now + minutes(120))}),
            ),
        )
        .await;
    let id = string(&auction["id"]);
    assert_eq!(auction["status"], "upcoming");

    app.advance(minutes(61));
    assert_eq!(app.auction(&id).await["status"], "live");

    app.advance(minutes(60));
    let ended = app.auction(&id).await;
    assert_eq!(ended["status"], "ended");
    assert!(ended["winner"].is_null(), "an auction without bids has no winner: {ended}");
    assert_eq!(ended["current_price"], ended["starting_price"]);
}

#[tokio::test]
async fn an_ended_auction_names_the_highest_bidder_as_winner() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let first = app.signup().await;
    let second = app.signup().await;
    let now = app.now();
    let auction = app
        .create_auction(
            &seller,
            merged(auction_body(now), json!({"ends_at": rfc3339(now + minutes(5))})),
        )
        .await;
    let id = string(&auction["id"]);
    app.place_bid(&first, &id, 1000).await;
    app.place_bid(&second, &id, 1500).await;
    let live = app.auction(&id).await;
    assert!(live["winner"].is_null(), "a live auction has no winner yet: {live}");

    app.advance(minutes(6));

    let ended = wait_until_ended(&app, &id).await;
    assert_eq!(ended["winner"], json!({"id": second.id, "nickname": second.nickname}));
    assert_eq!(ended["current_price"], 1500);
    assert_eq!(ended["bid_count"], 2);
}

// ---- search ----

async fn create_titled(app: &TestApp, seller: &TestUser, title: &str) -> String {
    let body = merged(auction_body(app.now()), json!({ "title": title }));
    string(&app.create_auction(seller, body).await["id"])
}

async fn search_ids(app: &TestApp, params: &[(&str, &str)]) -> Vec<String> {
    ids(app.search_page(params).await["items"].as_array().expect("items is a list"))
}

/// Search filters and sorts run on the stored copy, which on the distributed backend trails an
/// acknowledged bid by the persister's latency: waits (bounded) until the page is `expected`.
async fn search_ids_settling_on(
    app: &TestApp,
    params: &[(&str, &str)],
    expected: Vec<String>,
    message: &str,
) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let found = search_ids(app, params).await;
        if found == expected || tokio::time::Instant::now() >= deadline {
            assert_eq!(found, expected, "{message}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn search_returns_summaries_with_the_documented_fields() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let id = create_titled(&app, &seller, "Summary").await;

    let page = app.search_page(&[]).await;

    assert!(page["next_cursor"].is_null(), "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let item = &items[0];
    for field in SUMMARY_FIELDS {
        assert!(item.get(field).is_some(), "summary without {field}: {item}");
    }
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["title"], "Summary");
    assert_eq!(item["current_price"], 1000);
    assert_eq!(item["bid_count"], 0);
    assert_eq!(item["status"], "live");
    assert!(item["thumbnail_url"].is_null(), "no images, no thumbnail: {item}");
}

#[tokio::test]
async fn search_with_no_match_is_an_empty_page() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    create_titled(&app, &seller, "Camera").await;

    let page = app.search_page(&[("q", "bicycle")]).await;

    assert_eq!(page["items"], json!([]));
    assert!(page["next_cursor"].is_null());
}

#[tokio::test]
async fn search_q_is_a_case_insensitive_substring_of_the_title() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let vintage = create_titled(&app, &seller, "Vintage Leica camera").await;
    let lens = create_titled(&app, &seller, "leica lens").await;
    create_titled(&app, &seller, "Nikon body").await;

    let found = search_ids(&app, &[("q", "LEICA")]).await;
    assert_eq!(sorted(found), sorted(vec![vintage.clone(), lens]));

    let found = search_ids(&app, &[("q", "age lei")]).await;
    assert_eq!(found, vec![vintage]);
}

#[tokio::test]
async fn search_q_matches_non_ascii_titles_case_insensitively() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let dress = create_titled(&app, &seller, "Robe d'été bleue").await;
    create_titled(&app, &seller, "Manteau d'hiver").await;

    assert_eq!(search_ids(&app, &[("q", "ÉTÉ")]).await, vec![dress.clone()]);
    assert_eq!(search_ids(&app, &[("q", "été")]).await, vec![dress]);
}

#[tokio::test]
async fn search_treats_percent_and_underscore_in_q_literally() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let cotton = create_titled(&app, &seller, "100% cotton shirt").await;
    let snake = create_titled(&app, &seller, "snake_case poster").await;
    create_titled(&app, &seller, "Plain shirt").await;

    assert_eq!(search_ids(&app, &[("q", "%")]).await, vec![cotton]);
    assert_eq!(search_ids(&app, &[("q", "_")]).await, vec![snake]);
}

#[tokio::test]
async fn search_filters_by_status() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();
    let soon_over = app
        .create_auction(
            &seller,
            merged(auction_body(now), json!({"ends_at": rfc3339(now + minutes(10))})),
        )
        .await;
    app.advance(minutes(11));
    let now = app.now();
    let live = app.create_auction(&seller, auction_body(now)).await;
    let upcoming = app
        .create_auction(
            &seller,
            merged(
                auction_body(now),
                json!({"starts_at": rfc3339(now + minutes(30)), "ends_at": rfc3339(now + minutes(90))}),
            ),
        )
        .await;

    for (status, expected) in [("ended", &soon_over), ("live", &live), ("upcoming", &upcoming)] {
        let page = app.search_page(&[("status", status)]).await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(ids(items), vec![string(&expected["id"])], "status={status}");
        assert_eq!(items[0]["status"], status);
    }
}

#[tokio::test]
async fn search_filters_by_current_price_range() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let now = app.now();
    let cheap = app
        .create_auction(&seller, merged(auction_body(now), json!({"starting_price": 100})))
        .await;
    let middle = app
        .create_auction(&seller, merged(auction_body(now), json!({"starting_price": 500})))
        .await;
    let bid_up = app
        .create_auction(&seller, merged(auction_body(now), json!({"starting_price": 100})))
        .await;
    app.place_bid(&bidder, &string(&bid_up["id"]), 1000).await;

    let found = search_ids(&app, &[("min_price", "400"), ("max_price", "600")]).await;
    assert_eq!(found, vec![string(&middle["id"])]);

    let expected = vec![string(&bid_up["id"])];
    let message = "min_price is on the current price";
    search_ids_settling_on(&app, &[("min_price", "900")], expected, message).await;

    let expected = vec![string(&cheap["id"])];
    let message = "max_price is on the current price";
    search_ids_settling_on(&app, &[("max_price", "200")], expected, message).await;
}

#[tokio::test]
async fn search_sorts_by_every_documented_key() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();
    // Created in this order (a second apart); titles, prices and ends differ in other orders.
    let specs = [("Bravo", 300, 30), ("Charlie", 100, 10), ("Alpha", 200, 20)];
    let mut created = Vec::new();
    for (title, price, ends_in) in specs {
        let body = json!({
            "title": title,
            "description": "Sorted.",
            "starting_price": price,
            "ends_at": rfc3339(now + minutes(ends_in)),
        });
        created.push(string(&app.create_auction(&seller, body).await["id"]));
        app.advance(chrono::Duration::seconds(1));
    }
    let [bravo, charlie, alpha] = [created[0].clone(), created[1].clone(), created[2].clone()];
    let expectations = [
        ("ends_at", vec![&charlie, &alpha, &bravo]),
        ("-ends_at", vec![&bravo, &alpha, &charlie]),
        ("current_price", vec![&charlie, &alpha, &bravo]),
        ("-current_price", vec![&bravo, &alpha, &charlie]),
        ("created_at", vec![&bravo, &charlie, &alpha]),
        ("-created_at", vec![&alpha, &charlie, &bravo]),
        ("title", vec![&alpha, &bravo, &charlie]),
        ("-title", vec![&charlie, &bravo, &alpha]),
    ];

    for (sort, expected) in expectations {
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(search_ids(&app, &[("sort", sort)]).await, expected, "sort={sort}");
        // The same order holds across pages of one.
        let walked = ids(&app.walk_pages("/auctions", &[("sort", sort), ("limit", "1")]).await);
        assert_eq!(walked, expected, "sort={sort}, limit=1");
    }
    assert_eq!(
        search_ids(&app, &[]).await,
        vec![charlie, alpha, bravo],
        "the default sort is ends_at"
    );
}

#[tokio::test]
async fn search_pages_default_to_20_items() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    for n in 0..25 {
        create_titled(&app, &seller, &format!("Lot {n}")).await;
    }

    let first = app.search_page(&[]).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 20);
    let cursor = string(&first["next_cursor"]);

    let second = app.search_page(&[("cursor", &cursor)]).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 5);
    assert!(second["next_cursor"].is_null(), "{second}");

    let hundred = app.search_page(&[("limit", "100")]).await;
    assert_eq!(hundred["items"].as_array().unwrap().len(), 25);
}

#[tokio::test]
async fn search_rejects_bad_parameters_with_422() {
    let app = spawn_app().await;
    let cases: [&[(&str, &str)]; 7] = [
        &[("sort", "price")],
        &[("limit", "0")],
        &[("limit", "101")],
        &[("limit", "ten")],
        &[("cursor", "definitely-not-a-cursor")],
        &[("status", "sold")],
        &[("min_price", "cheap")],
    ];
    for params in cases {
        let (status, body) = status_and_json(app.search(params).await).await;
        assert_eq!(status, 422, "{params:?} was not rejected: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{params:?}: {body}");
    }
}

#[tokio::test]
async fn search_shows_the_current_price_and_bid_count_after_bids() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let id = create_titled(&app, &seller, "Popular").await;
    app.place_bid(&bidder, &id, 1000).await;
    app.place_bid(&bidder, &id, 1200).await;

    let page = app.search_page(&[("q", "Popular")]).await;

    let item = &page["items"][0];
    assert_eq!(item["current_price"], 1200);
    assert_eq!(int(&item["bid_count"]), 2);
}
