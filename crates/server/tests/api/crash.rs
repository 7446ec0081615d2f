//! The real `surge` binary is killed with SIGKILL in the middle of a bidding storm and started
//! again on the same data dir: every acknowledged bid survives with its seq and amount, and
//! nothing that was refused shows up.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{auction_body, int, merged, string};
use crate::process::ServerProcess;
use crate::storm::{Storm, by_amount};
use surge::demo::leetcode::{MockLeetCode, Mode};

/// Bidding tasks running against the server when it is killed.
const BIDDING_TASKS: usize = 8;
/// Acknowledged bids to wait for before pulling the plug.
const ACKS_BEFORE_KILL: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bids_survive_a_sigkill_and_refused_ones_never_appear() {
    let data_dir = tempfile::Builder::new().prefix("surge-crash-data-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-crash-logs-").tempdir().unwrap();

    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "first");
    server.wait_until_healthy().await;
    let api = server.api.clone();
    let seller = api.signup().await;
    let bidders = api.signup_many(4).await;
    let auction = api
        .create_auction(
            &seller,
            merged(
                auction_body(chrono::Utc::now()),
                json!({"starting_price": 1, "min_increment": 1}),
            ),
        )
        .await;
    let auction_id = string(&auction["id"]);

    // A bidding storm: 8 tasks, each bidder in two of them, amounts from one counter.
    let mut storm = Storm::start(std::slice::from_ref(&api), &bidders, &auction_id, BIDDING_TASKS);
    let acked = storm.wait_for_acks(ACKS_BEFORE_KILL, Duration::from_secs(60)).await;
    assert!(acked, "too few bids were acknowledged\n{}", server.logs());

    // Pull the plug while requests are in flight.
    server.kill();
    let ledger = storm.stop().await;
    assert!(ledger.acknowledged.len() >= ACKS_BEFORE_KILL);

    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "second");
    server.wait_until_healthy().await;
    let api = server.api.clone();
    let history = api.bid_history(&auction_id).await;
    ledger.assert_matches(&by_amount(&history));

    // The auction agrees with its history and carries on from the last seq.
    let recovered = api.auction(&auction_id).await;
    let top = &history[0];
    assert_eq!(recovered["current_price"], top["amount"]);
    assert_eq!(int(&recovered["bid_count"]), history.len() as i64);
    // Log in again: nothing says a token must outlive a crash.
    let bidder = api.login_again(&bidders[0]).await;
    let next = api.place_bid(&bidder, &auction_id, int(&top["amount"]) + 1).await;
    assert_eq!(int(&next["bid"]["seq"]), history.len() as i64 + 1);

    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_event_streams_keeps_every_acknowledged_bid_and_exits_cleanly() {
    let data_dir = tempfile::Builder::new().prefix("surge-term-data-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-term-logs-").tempdir().unwrap();
    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "first");
    server.wait_until_healthy().await;
    let seller = server.api.signup().await;
    let bidder = server.api.signup().await;
    let auction = server.api.create_auction(&seller, auction_body(chrono::Utc::now())).await;
    let auction_id = string(&auction["id"]);
    let mut events = server.api.events(&auction_id, "", None).await;
    let amounts: Vec<i64> = (0..20).map(|i| 1000 + 100 * i).collect();
    for &amount in &amounts {
        server.api.place_bid(&bidder, &auction_id, amount).await;
    }

    let status = server.terminate().await;
    assert!(status.success(), "surge exited with {status}\n{}", server.logs());
    // The stream delivers what was already sent, then ends instead of hanging.
    let mut seen = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            seen.extend(event.id);
        }
    })
    .await;
    assert!(drained.is_ok(), "the event stream did not end after SIGTERM");
    let expected: Vec<String> = (1..=20).map(|seq: i64| seq.to_string()).collect();
    assert_eq!(seen, expected);

    let mut restarted = ServerProcess::start(data_dir.path(), log_dir.path(), "second");
    restarted.wait_until_healthy().await;
    let history = restarted.api.bid_history(&auction_id).await;
    let stored: Vec<i64> = history.iter().rev().map(|bid| int(&bid["amount"])).collect();
    assert_eq!(stored, amounts);
    restarted.kill();
}

/// Starts the embedded binary on `data_dir` with its ratings upstream at `stand`.
fn ratings_server(
    data_dir: &std::path::Path,
    log_dir: &std::path::Path,
    run: &str,
    stand: &MockLeetCode,
) -> ServerProcess {
    ServerProcess::spawn(log_dir, run, |command| {
        command
            .arg("--data-dir")
            .arg(data_dir)
            .env("SURGE_RATINGS__UPSTREAM_URL", stand.url())
            .env("SURGE_RATINGS__UPSTREAM_TIMEOUT_MS", "300")
            .env("SURGE_RATINGS__RETRY_BASE_MS", "100")
            .env("SURGE_RATINGS__MAX_ATTEMPTS", "30");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_jobs_pending_at_a_sigkill_complete_after_the_restart() {
    let data_dir = tempfile::Builder::new().prefix("surge-jobs-data-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-jobs-logs-").tempdir().unwrap();
    let stand = MockLeetCode::start(([127, 0, 0, 1], 0).into()).await.unwrap();
    stand.set(Mode::Down, Duration::ZERO);
    let mut server = ratings_server(data_dir.path(), log_dir.path(), "first", &stand);
    server.wait_until_healthy().await;
    let slugs = ["rotate-image", "sort-colors", "edit-distance", "subsets"];
    for slug in slugs {
        assert_eq!(server.api.get(&format!("/problems/{slug}")).await.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();

    stand.set(Mode::Normal, Duration::ZERO);
    let before: Vec<u64> = slugs.iter().map(|slug| stand.calls_for(slug)).collect();
    let mut server = ratings_server(data_dir.path(), log_dir.path(), "second", &stand);
    server.wait_until_healthy().await;
    let started = std::time::Instant::now();
    while slugs.iter().zip(&before).any(|(slug, before)| stand.calls_for(slug) <= *before) {
        assert!(started.elapsed() < Duration::from_secs(20), "jobs never ran\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetched: Vec<u64> = slugs.iter().map(|slug| stand.calls_for(slug)).collect();
    for slug in slugs {
        let response = server.api.get(&format!("/problems/{slug}")).await;
        assert_eq!(response.status(), 200, "{slug}\n{}", server.logs());
    }
    let after: Vec<u64> = slugs.iter().map(|slug| stand.calls_for(slug)).collect();
    assert_eq!(after, fetched, "the jobs' answers were served, no new upstream call");
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_queued_before_a_sigkill_is_delivered_after_the_restart() {
    use crate::sms::{Behaviour, Webhook, unique_phone};
    let data_dir = tempfile::Builder::new().prefix("surge-sms-data-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-sms-logs-").tempdir().unwrap();
    let provider = Webhook::start(Behaviour::Fail).await;
    let start = |run: &str| {
        ServerProcess::spawn(log_dir.path(), run, |command| {
            command
                .arg("--data-dir")
                .arg(data_dir.path())
                .env("SURGE_SMS__PROVIDERS", provider.url())
                .env("SURGE_SMS__RETRY_BASE_MS", "100")
                .env("SURGE_SMS__MAX_ATTEMPTS", "50");
        })
    };
    let mut server = start("first");
    server.wait_until_healthy().await;
    let phone = unique_phone();
    let asked = server.api.post_json("/auth/sms/code", None, &json!({ "phone": phone })).await;
    assert_eq!(asked.status(), 202);
    // The first pass has failed (the SMS is queued for a retry) when the server is killed.
    let started = std::time::Instant::now();
    while provider.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "no first attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let tried: Vec<serde_json::Value> = provider.received();
    assert!(provider.delivered().is_empty());

    provider.set(Behaviour::Deliver);
    let mut server = start("second");
    server.wait_until_healthy().await;
    let code = provider.code_for(&phone, 1).await;
    assert_eq!(tried[0]["id"], provider.delivered()[0]["id"], "the same message id");
    let body = json!({ "phone": phone, "code": code });
    let session = server.api.post_json("/auth/sms/login", None, &body).await;
    assert_eq!(session.status(), 200, "{}", server.logs());
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_counted_more_than_a_second_before_a_sigkill_survive_it() {
    let data_dir = tempfile::Builder::new().prefix("surge-reads-data-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-reads-logs-").tempdir().unwrap();
    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "first");
    server.wait_until_healthy().await;
    let author = server.api.signup().await;
    let body = json!({ "title": "Counted", "content": "" });
    let created = server.api.post_json("/articles", Some(&author.access_token), &body).await;
    let id = string(&crate::helpers::expect_json(created, 201).await["id"]);
    let publish = format!("/articles/{id}/publish");
    server.api.post_json(&publish, Some(&author.access_token), &json!({})).await;
    for _ in 0..10 {
        server.api.get_json(&format!("/articles/{id}")).await;
    }
    // The flush runs every second: after two, these reads are in the database.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    server.kill();

    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "second");
    server.wait_until_healthy().await;
    let article = server.api.get_json(&format!("/articles/{id}")).await;
    assert_eq!(article["read_count"], 11, "{}", server.logs());
    server.kill();
}
