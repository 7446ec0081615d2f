//! Cursor pagination under concurrent inserts: walking every page never repeats an item and
//! never skips one that existed when the walk began.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{
    Api, TestUser, expect_json, ids, int, minutes, query_string, rfc3339, spawn_app, string, time,
};

const INITIAL_AUCTIONS: usize = 60;
const PAGE_SIZE: &str = "7";
const CONCURRENT_INSERTS: usize = 40;

fn lot(title: String, price: i64, ends_at: DateTime<Utc>) -> Value {
    json!({
        "title": title,
        "description": "A lot in a big sale.",
        "starting_price": price,
        "min_increment": 1,
        "ends_at": rfc3339(ends_at),
    })
}

/// Creates auctions until `stop` is set (at most `CONCURRENT_INSERTS`, so a walk in creation
/// order still reaches its end); the n-th one ends between two initial lots, has a title
/// sorting between theirs and a price in their range.
async fn keep_creating(
    api: Api,
    seller: TestUser,
    base: DateTime<Utc>,
    stop: Arc<AtomicBool>,
    created: Arc<AtomicUsize>,
) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < CONCURRENT_INSERTS {
        let body = lot(
            format!("Lot {:03}b", n % INITIAL_AUCTIONS),
            1000 + (n as i64 % 5) * 10,
            base + minutes(10 + n as i64 % INITIAL_AUCTIONS as i64) + chrono::Duration::seconds(30),
        );
        expect_json(api.create_auction_request(&seller.access_token, &body).await, 201).await;
        created.fetch_add(1, Ordering::SeqCst);
        n += 1;
    }
}

/// The sort key of a summary, for the sorts whose key is in the summary.
fn key_of(sort: &str, item: &Value) -> Option<Value> {
    match sort.trim_start_matches('-') {
        "ends_at" => Some(json!(time(&item["ends_at"]).timestamp_millis())),
        "title" => Some(item["title"].clone()),
        "current_price" => Some(json!(int(&item["current_price"]))),
        _ => None,
    }
}

fn in_order(sort: &str, earlier: &Value, later: &Value) -> bool {
    let (Some(a), Some(b)) = (key_of(sort, earlier), key_of(sort, later)) else {
        return true;
    };
    let ordering = match (a.as_i64(), b.as_i64()) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => string(&a).cmp(&string(&b)),
    };
    if sort.starts_with('-') { ordering.is_ge() } else { ordering.is_le() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_all_pages_while_auctions_are_created_repeats_nothing_and_skips_nothing() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let base = app.now();
    let mut existing: HashSet<String> = HashSet::new();
    for n in 0..INITIAL_AUCTIONS {
        let body =
            lot(format!("Lot {n:03}"), 1000 + (n as i64 % 5) * 10, base + minutes(10 + n as i64));
        existing.insert(string(&app.create_auction(&seller, body).await["id"]));
    }

    for sort in ["ends_at", "-created_at", "title", "-current_price", "created_at"] {
        let stop = Arc::new(AtomicBool::new(false));
        let created = Arc::new(AtomicUsize::new(0));
        let creator = tokio::spawn(keep_creating(
            app.api.clone(),
            seller.clone(),
            base,
            stop.clone(),
            created.clone(),
        ));

        let mut seen: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut params = vec![("sort", sort), ("limit", PAGE_SIZE)];
            if let Some(cursor) = cursor.as_deref() {
                params.push(("cursor", cursor));
            }
            let page = app.search_page(&params).await;
            let items = page["items"].as_array().expect("items is a list");
            assert!(items.len() <= 7, "a page of {} with limit 7", items.len());
            seen.extend(items.iter().cloned());
            pages += 1;
            assert!(pages < 1000, "the walk never ends");
            // Make sure inserts land between page reads, not only around them.
            let extra = lot(
                format!("Lot {:03}c", pages % INITIAL_AUCTIONS),
                1005,
                base + minutes(10 + (pages % INITIAL_AUCTIONS) as i64)
                    + chrono::Duration::seconds(45),
            );
            app.create_auction(&seller, extra).await;
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(30), creator)
            .await
            .expect("the creator did not stop")
            .expect("the creator failed");
        assert!(created.load(Ordering::SeqCst) > 0, "nothing was created during the walk");

        let mut unique = HashSet::new();
        for id in ids(&seen) {
            assert!(unique.insert(id.clone()), "sort={sort}: {id} was listed twice");
        }
        let missing: Vec<&String> = existing.difference(&unique).collect();
        assert!(missing.is_empty(), "sort={sort}: skipped {missing:?}");
        for pair in seen.windows(2) {
            assert!(
                in_order(sort, &pair[0], &pair[1]),
                "sort={sort}: {} listed before {}",
                pair[0],
                pair[1]
            );
        }

        // Whatever exists now must be seen by the next walk.
        existing =
            ids(&app.walk_pages("/auctions", &[("limit", "100")]).await).into_iter().collect();
    }
}

#[tokio::test]
async fn filters_apply_on_every_page_even_when_sort_keys_tie() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let now = app.now();
    let mut wanted = HashSet::new();
    // Same price everywhere: the cursor has to break ties, and the filter must still hold.
    for n in 0..12 {
        let title = if n % 2 == 0 { format!("Red lot {n}") } else { format!("Blue lot {n}") };
        let auction = app.create_auction(&seller, lot(title.clone(), 500, now + minutes(30))).await;
        if title.starts_with("Red") {
            wanted.insert(string(&auction["id"]));
        }
    }

    for sort in ["current_price", "-current_price", "ends_at", "-ends_at"] {
        let items =
            app.walk_pages("/auctions", &[("q", "red"), ("sort", sort), ("limit", "2")]).await;
        let found: HashSet<String> = ids(&items).into_iter().collect();
        assert_eq!(found.len(), items.len(), "sort={sort}: duplicates");
        assert_eq!(found, wanted, "sort={sort}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_the_bid_history_while_bids_arrive_repeats_nothing_and_skips_nothing() {
    let app = spawn_app().await;
    let users = app.signup_many(3).await;
    let (seller, alice, bob) = (&users[0], &users[1], &users[2]);
    let auction =
        app.create_auction(seller, lot("Hot item".to_owned(), 1, app.now() + minutes(60))).await;
    let id = string(&auction["id"]);
    let mut amount = 1;
    let mut existing = HashSet::new();
    for n in 0..30 {
        let bidder = if n % 2 == 0 { alice } else { bob };
        existing.insert(string(&app.place_bid(bidder, &id, amount).await["bid"]["id"]));
        amount += 1;
    }

    let path = format!("/auctions/{id}/bids");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        assert!(round < 1000, "the walk never ends");
        let mut params = vec![("limit", PAGE_SIZE)];
        if let Some(cursor) = cursor.as_deref() {
            params.push(("cursor", cursor));
        }
        let page = app.get_json(&format!("{path}{}", query_string(&params))).await;
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        // New bids arrive between the page reads.
        let bidder = if round % 2 == 0 { alice } else { bob };
        app.place_bid(bidder, &id, amount).await;
        amount += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    let found: HashSet<String> = ids(&seen).into_iter().collect();
    assert_eq!(found.len(), seen.len(), "a bid was listed twice");
    assert!(existing.is_subset(&found), "a bid that existed at the start was skipped");
    for pair in seen.windows(2) {
        assert!(int(&pair[0]["seq"]) > int(&pair[1]["seq"]), "not newest first");
    }
}
