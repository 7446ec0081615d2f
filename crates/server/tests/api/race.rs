//! Many users racing for one auction: the accepted bids form one gap-free, strictly increasing
//! sequence, and the auction and its history agree with the responses.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{auction_body, int, merged, spawn_app, status_and_json, string};

const BIDDERS: usize = 50;
const BIDS_PER_BIDDER: usize = 20;
const STARTING_PRICE: i64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_bids_get_gap_free_seqs_and_strictly_increasing_amounts() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let auction = app
        .create_auction(
            &seller,
            merged(
                auction_body(app.now()),
                json!({"starting_price": STARTING_PRICE, "min_increment": 1}),
            ),
        )
        .await;
    let auction_id = string(&auction["id"]);
    let bidders = app.signup_many(BIDDERS).await;

    // Every request takes the next amount when it starts, so each bidder bids ever higher
    // amounts, and requests arrive out of order: some win, some are too low.
    let next_amount = Arc::new(AtomicI64::new(STARTING_PRICE));
    let mut requests = JoinSet::new();
    for bidder in &bidders {
        for _ in 0..BIDS_PER_BIDDER {
            let (api, bidder, auction_id) = (app.api.clone(), bidder.clone(), auction_id.clone());
            let next_amount = next_amount.clone();
            requests.spawn(async move {
                let amount = next_amount.fetch_add(1, Ordering::SeqCst);
                let response = api.bid(&bidder, &auction_id, amount).await;
                let (status, body) = status_and_json(response).await;
                (bidder.id, amount, status, body)
            });
        }
    }
    let outcomes = tokio::time::timeout(Duration::from_secs(180), requests.join_all())
        .await
        .expect("the bids did not all complete in time");
    assert_eq!(outcomes.len(), BIDDERS * BIDS_PER_BIDDER);

    let mut accepted: Vec<Value> = Vec::new();
    for (bidder_id, amount, status, body) in outcomes {
        match status {
            201 => {
                assert_eq!(body["bid"]["amount"], amount, "{body}");
                assert_eq!(body["bid"]["bidder"]["id"], bidder_id.as_str(), "{body}");
                accepted.push(body["bid"].clone());
            }
            409 => {
                assert_eq!(body["error"]["code"], "bid_too_low", "{body}");
                let min_amount = int(&body["error"]["min_amount"]);
                assert!(
                    min_amount > amount,
                    "{amount} refused although the minimum was {min_amount}"
                );
            }
            other => panic!("a bid of {amount} got {other}: {body}"),
        }
    }
    assert!(!accepted.is_empty(), "no bid was accepted");
    accepted.sort_by_key(|bid| int(&bid["seq"]));

    let seqs: Vec<i64> = accepted.iter().map(|bid| int(&bid["seq"])).collect();
    let expected: Vec<i64> = (1..=accepted.len() as i64).collect();
    assert_eq!(seqs, expected, "accepted bids must be numbered 1..N without gaps");
    for pair in accepted.windows(2) {
        assert!(
            int(&pair[1]["amount"]) > int(&pair[0]["amount"]),
            "seq {} has amount {} after {}",
            pair[1]["seq"],
            pair[1]["amount"],
            pair[0]["amount"]
        );
    }

    let highest = accepted.last().unwrap();
    let auction = app.auction(&auction_id).await;
    assert_eq!(auction["current_price"], highest["amount"]);
    assert_eq!(int(&auction["bid_count"]), accepted.len() as i64);
    assert_eq!(auction["high_bidder"]["id"], highest["bidder"]["id"]);

    let history = app.bid_history(&auction_id).await;
    let listed: Vec<(String, i64, i64)> = history
        .iter()
        .map(|bid| (string(&bid["id"]), int(&bid["seq"]), int(&bid["amount"])))
        .collect();
    let mut acknowledged: Vec<(String, i64, i64)> = accepted
        .iter()
        .map(|bid| (string(&bid["id"]), int(&bid["seq"]), int(&bid["amount"])))
        .collect();
    acknowledged.reverse();
    assert_eq!(
        listed, acknowledged,
        "the history must list exactly the accepted bids, newest first"
    );

    // Each listed bid names the bidder whose request it was.
    let bidder_of: HashMap<String, String> =
        accepted.iter().map(|bid| (string(&bid["id"]), string(&bid["bidder"]["id"]))).collect();
    for bid in &history {
        assert_eq!(bidder_of[&string(&bid["id"])], string(&bid["bidder"]["id"]));
    }
}
