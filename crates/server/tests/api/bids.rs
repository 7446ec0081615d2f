//! Bids: the acceptance rules, anti-sniping, idempotency and the bid history.

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestUser, assert_same_instant, auction_body, expect_error, expect_error_status,
    expect_json, int, merged, minutes, rfc3339, seconds, spawn_app, string, time,
};

/// A seller, a live auction (starting 1000, increment 100, ends in an hour) and two bidders.
struct Setup {
    app: TestApp,
    seller: TestUser,
    alice: TestUser,
    bob: TestUser,
    auction_id: String,
}

async fn setup_with(patch: Value) -> Setup {
    let app = spawn_app().await;
    let mut users = app.signup_many(3).await.into_iter();
    let (seller, alice, bob) =
        (users.next().unwrap(), users.next().unwrap(), users.next().unwrap());
    let auction = app.create_auction(&seller, merged(auction_body(app.now()), patch)).await;
    let auction_id = string(&auction["id"]);
    Setup { app, seller, alice, bob, auction_id }
}

async fn setup() -> Setup {
    setup_with(json!({})).await
}

fn assert_bid_shape(body: &Value, bidder: &TestUser, auction_id: &str, amount: i64) {
    let bid = &body["bid"];
    assert!(uuid::Uuid::parse_str(&string(&bid["id"])).is_ok(), "{body}");
    assert_eq!(bid["auction_id"], auction_id, "{body}");
    assert_eq!(bid["bidder"], json!({"id": bidder.id, "nickname": bidder.nickname}), "{body}");
    assert_eq!(bid["amount"], amount, "{body}");
    time(&bid["placed_at"]);
    let auction = &body["auction"];
    assert_eq!(auction["current_price"], amount, "{body}");
    time(&auction["ends_at"]);
    assert!(auction["bid_count"].is_i64(), "{body}");
}

#[tokio::test]
async fn a_first_bid_at_the_starting_price_is_accepted_with_201_and_seq_1() {
    let s = setup().await;

    let body = expect_json(s.app.bid(&s.alice, &s.auction_id, 1000).await, 201).await;

    assert_bid_shape(&body, &s.alice, &s.auction_id, 1000);
    assert_eq!(body["bid"]["seq"], 1);
    assert_eq!(body["auction"]["bid_count"], 1);
}

/// JSON Schema's `integer` includes `1200.0`, so the server takes it as 1200; a fraction is
/// still refused, naming the field.
#[tokio::test]
async fn an_integral_amount_written_with_a_fraction_is_an_integer() {
    let s = setup().await;
    let path = format!("/auctions/{}/bids", s.auction_id);

    let placed =
        s.app.post_json(&path, Some(&s.alice.access_token), &json!({"amount": 1200.0})).await;
    let body = expect_json(placed, 201).await;
    assert_eq!(body["bid"]["amount"], 1200);

    let fraction =
        s.app.post_json(&path, Some(&s.bob.access_token), &json!({"amount": 1300.5})).await;
    let error = expect_error(fraction, 422, "validation_failed").await;
    assert!(error["fields"]["amount"].is_string(), "{error}");
}

#[tokio::test]
async fn a_first_bid_below_the_starting_price_is_rejected_with_409_bid_too_low() {
    let s = setup().await;

    let error =
        expect_error(s.app.bid(&s.alice, &s.auction_id, 999).await, 409, "bid_too_low").await;

    assert_eq!(error["min_amount"], 1000, "{error}");
    let auction = s.app.auction(&s.auction_id).await;
    assert_eq!(auction["bid_count"], 0);
    assert_eq!(auction["current_price"], 1000);
}

#[tokio::test]
async fn bid_below_min_increment_is_rejected_with_409() {
    let s = setup().await;
    s.app.place_bid(&s.alice, &s.auction_id, 1200).await;

    let error =
        expect_error(s.app.bid(&s.bob, &s.auction_id, 1299).await, 409, "bid_too_low").await;
    assert_eq!(error["min_amount"], 1300, "{error}");
    let error =
        expect_error(s.app.bid(&s.bob, &s.auction_id, 1200).await, 409, "bid_too_low").await;
    assert_eq!(error["min_amount"], 1300, "{error}");

    let body = s.app.place_bid(&s.bob, &s.auction_id, 1300).await;
    assert_eq!(body["bid"]["seq"], 2, "rejected bids take no seq");
    assert_eq!(body["auction"]["bid_count"], 2);
}

#[tokio::test]
async fn bidding_on_your_own_auction_is_rejected_with_403_own_auction() {
    let s = setup().await;

    expect_error(s.app.bid(&s.seller, &s.auction_id, 5000).await, 403, "own_auction").await;

    assert_eq!(s.app.auction(&s.auction_id).await["bid_count"], 0);
}

#[tokio::test]
async fn bidding_before_the_start_is_rejected_with_409_auction_not_started() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let now = app.now();
    let auction = app
        .create_auction(
            &seller,
            merged(
                auction_body(now),
                json!({"starts_at": rfc3339(now + minutes(10)), "ends_at": rfc3339(now + minutes(70))}),
            ),
        )
        .await;
    let id = string(&auction["id"]);

    expect_error(app.bid(&bidder, &id, 1000).await, 409, "auction_not_started").await;

    app.advance(minutes(11));
    let body = app.place_bid(&bidder, &id, 1000).await;
    assert_eq!(body["bid"]["seq"], 1);
}

#[tokio::test]
async fn bidding_after_the_end_is_rejected_with_410_auction_ended() {
    let s = setup().await;
    s.app.place_bid(&s.alice, &s.auction_id, 1000).await;

    s.app.advance(minutes(61));
    let bob = s.app.login_again(&s.bob).await;

    expect_error(s.app.bid(&bob, &s.auction_id, 5000).await, 410, "auction_ended").await;
    let auction = s.app.auction(&s.auction_id).await;
    assert_eq!(auction["current_price"], 1000);
    assert_eq!(auction["bid_count"], 1);
}

#[tokio::test]
async fn bidding_on_an_unknown_auction_is_404() {
    let app = spawn_app().await;
    let bidder = app.signup().await;

    let response = app.bid(&bidder, &uuid::Uuid::new_v4().to_string(), 1000).await;

    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn bidding_without_a_token_is_rejected_with_401() {
    let s = setup().await;

    let response = s
        .app
        .post_json(&format!("/auctions/{}/bids", s.auction_id), None, &json!({"amount": 1000}))
        .await;

    expect_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn each_accepted_bid_is_visible_in_the_auction_right_away() {
    let s = setup().await;

    for (n, (bidder, amount)) in
        [(&s.alice, 1000), (&s.bob, 1100), (&s.alice, 1500)].into_iter().enumerate()
    {
        let body = s.app.place_bid(bidder, &s.auction_id, amount).await;
        assert_bid_shape(&body, bidder, &s.auction_id, amount);
        assert_eq!(int(&body["bid"]["seq"]), n as i64 + 1);

        let auction = s.app.auction(&s.auction_id).await;
        assert_eq!(auction["current_price"], amount);
        assert_eq!(int(&auction["bid_count"]), n as i64 + 1);
        assert_eq!(auction["high_bidder"], json!({"id": bidder.id, "nickname": bidder.nickname}));
    }
}

#[tokio::test]
async fn a_bid_within_extend_seconds_of_the_end_moves_ends_at() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let now = app.now();
    let original_end = now + minutes(10);
    let auction = app
        .create_auction(
            &seller,
            merged(
                auction_body(now),
                json!({"ends_at": rfc3339(original_end), "extend_seconds": 300}),
            ),
        )
        .await;
    let id = string(&auction["id"]);

    // Ten minutes before the end is outside the window: nothing moves.
    let early = app.place_bid(&bidder, &id, 1000).await;
    assert_same_instant(time(&early["auction"]["ends_at"]), original_end);

    // Two minutes before the end is inside it.
    app.advance(minutes(8));
    let late = app.place_bid(&bidder, &id, 1100).await;
    let placed_at = time(&late["bid"]["placed_at"]);
    let new_end = time(&late["auction"]["ends_at"]);
    assert_same_instant(new_end, placed_at + seconds(300));
    assert!(new_end > original_end);
    assert_same_instant(time(&app.auction(&id).await["ends_at"]), new_end);

    // Past the original end but before the new one the auction is still live.
    app.advance(minutes(4));
    let auction = app.auction(&id).await;
    assert_eq!(auction["status"], "live");
    app.place_bid(&bidder, &id, 1200).await;
}

#[tokio::test]
async fn without_extend_seconds_a_last_second_bid_does_not_move_ends_at() {
    let s = setup_with(json!({"extend_seconds": 0})).await;
    let ends_at = s.app.auction(&s.auction_id).await["ends_at"].clone();

    // Fresh tokens first (the jump would expire the old ones), then to five seconds before the end.
    s.app.advance(minutes(50));
    let (alice, bob) = (s.app.login_again(&s.alice).await, s.app.login_again(&s.bob).await);
    s.app.advance(minutes(9) + seconds(55));
    let body = s.app.place_bid(&alice, &s.auction_id, 1000).await;

    assert_same_instant(time(&body["auction"]["ends_at"]), time(&ends_at));
    s.app.advance(seconds(10));
    expect_error(s.app.bid(&bob, &s.auction_id, 2000).await, 410, "auction_ended").await;
}

#[tokio::test]
async fn repeating_a_bid_with_the_same_idempotency_key_returns_the_first_response() {
    let s = setup().await;

    let first = s.app.bid_with_key(&s.alice, &s.auction_id, 1000, "bid-once").await;
    let first = expect_json(first, 201).await;
    let again = s.app.bid_with_key(&s.alice, &s.auction_id, 1000, "bid-once").await;
    let again = expect_json(again, 201).await;

    assert_eq!(again, first);
    let history = s.app.bid_history(&s.auction_id).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["id"], first["bid"]["id"]);
    assert_eq!(s.app.auction(&s.auction_id).await["bid_count"], 1);
}

#[tokio::test]
async fn reusing_an_idempotency_key_with_a_different_body_is_rejected_with_422() {
    let s = setup().await;
    let first = s.app.bid_with_key(&s.alice, &s.auction_id, 1000, "my-key").await;
    expect_json(first, 201).await;

    let other_body = s.app.bid_with_key(&s.alice, &s.auction_id, 1500, "my-key").await;

    expect_error(other_body, 422, "idempotency_key_reused").await;
    assert_eq!(s.app.bid_history(&s.auction_id).await.len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_is_forgotten_after_24_hours() {
    let s = setup_with(json!({"ends_at": rfc3339(chrono::Utc::now() + chrono::Duration::days(3))}))
        .await;
    expect_json(s.app.bid_with_key(&s.alice, &s.auction_id, 1000, "daily").await, 201).await;

    s.app.advance(chrono::Duration::hours(25));
    let alice = s.app.login_again(&s.alice).await;
    let later = s.app.bid_with_key(&alice, &s.auction_id, 1500, "daily").await;

    // A different body under the same key is a new request once the key has expired.
    let later = expect_json(later, 201).await;
    assert_eq!(later["bid"]["seq"], 2);
    assert_eq!(s.app.bid_history(&s.auction_id).await.len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_longer_than_64_characters_is_rejected_with_422() {
    let s = setup().await;

    let too_long = s.app.bid_with_key(&s.alice, &s.auction_id, 1000, &"k".repeat(65)).await;
    expect_error_status(too_long, 422).await;
    assert_eq!(s.app.auction(&s.auction_id).await["bid_count"], 0);

    let longest = s.app.bid_with_key(&s.alice, &s.auction_id, 1000, &"k".repeat(64)).await;
    expect_json(longest, 201).await;
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_user() {
    let s = setup().await;
    let alice = s.app.bid_with_key(&s.alice, &s.auction_id, 1000, "shared-key").await;
    let alice = expect_json(alice, 201).await;

    let bob = s.app.bid_with_key(&s.bob, &s.auction_id, 1100, "shared-key").await;
    let bob = expect_json(bob, 201).await;

    assert_ne!(bob["bid"]["id"], alice["bid"]["id"]);
    assert_eq!(bob["bid"]["seq"], 2);
}

#[tokio::test]
async fn an_idempotency_key_is_the_users_across_auctions_and_shards() {
    let s = setup().await;
    let first = s.app.bid_with_key(&s.alice, &s.auction_id, 1000, "one-key").await;
    expect_json(first, 201).await;
    // Another auction, in another shard of the distributed engine (16 by default).
    let shard = |id: &str| surge_core::sharding::shard_of(id.parse().unwrap(), 16);
    let mut other = String::new();
    for _ in 0..64 {
        let auction = s.app.create_auction(&s.seller, auction_body(s.app.now())).await;
        other = string(&auction["id"]);
        if shard(&other) != shard(&s.auction_id) {
            break;
        }
    }
    assert_ne!(shard(&other), shard(&s.auction_id));

    let elsewhere = s.app.bid_with_key(&s.alice, &other, 1000, "one-key").await;

    expect_error(elsewhere, 422, "idempotency_key_reused").await;
    assert_eq!(s.app.auction(&other).await["bid_count"], 0);
}

#[tokio::test]
async fn bid_history_lists_every_accepted_bid_newest_first_in_pages() {
    let s = setup().await;
    let mut placed = Vec::new();
    for (n, amount) in [1000, 1100, 1250, 1400, 1500].into_iter().enumerate() {
        let bidder = if n % 2 == 0 { &s.alice } else { &s.bob };
        placed.push(s.app.place_bid(bidder, &s.auction_id, amount).await["bid"].clone());
        // A rejected bid in between never shows up.
        expect_error(s.app.bid(&s.bob, &s.auction_id, amount).await, 409, "bid_too_low").await;
    }

    let first = s.app.get_json(&format!("/auctions/{}/bids?limit=2", s.auction_id)).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert!(first["next_cursor"].is_string());

    let walked =
        s.app.walk_pages(&format!("/auctions/{}/bids", s.auction_id), &[("limit", "2")]).await;
    placed.reverse();
    let summary = |bids: &[Value]| -> Vec<Value> {
        bids.iter()
            .map(|bid| {
                json!([bid["id"], bid["seq"], bid["amount"], bid["bidder"], bid["auction_id"]])
            })
            .collect()
    };
    assert_eq!(summary(&walked), summary(&placed), "history differs from the accepted bids");
    for (listed, accepted) in walked.iter().zip(&placed) {
        assert_same_instant(time(&listed["placed_at"]), time(&accepted["placed_at"]));
    }
    let seqs: Vec<i64> = walked.iter().map(|bid| int(&bid["seq"])).collect();
    assert_eq!(seqs, vec![5, 4, 3, 2, 1]);
}

#[tokio::test]
async fn bid_history_of_an_unknown_auction_is_404() {
    let app = spawn_app().await;
    let response = app.get(&format!("/auctions/{}/bids", uuid::Uuid::new_v4())).await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn a_bid_shows_the_bidders_current_nickname_after_a_profile_change() {
    let s = setup().await;
    let renamed = s.app.patch_me(&s.alice.access_token, &json!({"nickname": "Renamed"})).await;
    expect_json(renamed, 200).await;

    // Same access token as before the rename.
    let body = s.app.place_bid(&s.alice, &s.auction_id, 1000).await;

    assert_eq!(body["bid"]["bidder"]["nickname"], "Renamed");
    let history = s.app.bid_history(&s.auction_id).await;
    assert_eq!(history[0]["bidder"]["nickname"], "Renamed");
    assert_eq!(s.app.auction(&s.auction_id).await["high_bidder"]["nickname"], "Renamed");
}
