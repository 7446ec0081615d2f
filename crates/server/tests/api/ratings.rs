//! Ratings: lookups by slug against a stand-in LeetCode the test starts and switches between
//! normal, slow, down and garbage — one upstream call per slug however many requests miss,
//! "no such problem" remembered, "pending" while the upstream fails and a durable job that
//! fetches it meanwhile — plus batches and the problem list.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use surge::demo::leetcode::{MockLeetCode, Mode};
use surge_core::ratings::rating;

use crate::helpers::{
    EVENT_TIMEOUT, TestApp, expect_error, expect_field_error, expect_json, header, minutes,
    spawn_app_with,
};

/// The upstream timeout the tests run with.
const TIMEOUT_MS: u64 = 300;

async fn stand_in() -> MockLeetCode {
    MockLeetCode::start(([127, 0, 0, 1], 0).into()).await.expect("cannot start the stand-in")
}

async fn ratings_app(stand: &MockLeetCode, max_attempts: u32) -> TestApp {
    let url = stand.url();
    spawn_app_with(move |settings| {
        settings.ratings.upstream_url = url;
        settings.ratings.upstream_timeout_ms = TIMEOUT_MS;
        settings.ratings.retry_base_ms = 100;
        settings.ratings.max_attempts = max_attempts;
        settings.ratings.upstream_per_second = 10_000;
    })
    .await
}

/// Waits until the database holds `slug` (a job fetched it), without asking the API.
async fn until_stored(app: &TestApp, slug: &str) {
    let started = Instant::now();
    while app.state.ratings.0.store().get(slug).await.unwrap().is_none() {
        assert!(started.elapsed() < EVENT_TIMEOUT * 2, "no job stored {slug}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status of the fetch jobs for `slug`, newest first.
async fn job_statuses(app: &TestApp, slug: &str) -> Vec<String> {
    let queue = app.state.ratings.0.jobs().queue().clone();
    let jobs = queue.find("ratings.fetch", slug).await.unwrap();
    jobs.into_iter().map(|job| job.status).collect()
}

#[tokio::test]
async fn a_problem_is_fetched_once_then_served_from_the_cache() {
    let stand = stand_in().await;
    let app = ratings_app(&stand, 5).await;
    let problem = expect_json(app.get("/problems/two-sum").await, 200).await;
    assert_eq!(problem["slug"], "two-sum");
    assert_eq!(problem["title"], "Two Sum");
    assert_eq!(problem["difficulty"], "Easy");
    let ac_rate = problem["ac_rate"].as_f64().unwrap();
    assert!(ac_rate > 0.0 && ac_rate < 1.0, "a fraction: {ac_rate}");
    assert_eq!(problem["rating"].as_i64(), rating(ac_rate).map(i64::from));
    let tags = problem["tags"].as_array().unwrap();
    assert!(
        !tags.is_empty()
            && tags.iter().all(|tag| tag["name"].is_string() && tag["slug"].is_string())
    );
    assert!(problem["fetched_at"].is_string());
    for _ in 0..3 {
        assert_eq!(expect_json(app.get("/problems/two-sum").await, 200).await, problem);
    }
    assert_eq!(stand.calls_for("two-sum"), 1);
}

#[tokio::test]
async fn a_problem_is_fetched_again_once_its_hour_is_over() {
    let stand = stand_in().await;
    let app = ratings_app(&stand, 5).await;
    let first = expect_json(app.get("/problems/two-sum").await, 200).await;
    app.advance(minutes(59));
    expect_json(app.get("/problems/two-sum").await, 200).await;
    assert_eq!(stand.calls_for("two-sum"), 1, "fresh for an hour");
    app.advance(minutes(2));
    let refetched = expect_json(app.get("/problems/two-sum").await, 200).await;
    assert_eq!(stand.calls_for("two-sum"), 2, "asked again after the hour");
    assert_ne!(refetched["fetched_at"], first["fetched_at"]);
}

#[tokio::test]
async fn fifty_concurrent_misses_of_one_slug_make_one_upstream_call() {
    let stand = stand_in().await;
    stand.set(Mode::Normal, Duration::from_millis(100));
    let app = ratings_app(&stand, 5).await;
    let requests = (0..50).map(|_| app.get("/problems/3sum"));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(expect_json(response, 200).await["slug"], "3sum");
    }
    assert_eq!(stand.calls_for("3sum"), 1);
}

#[tokio::test]
async fn an_unknown_slug_is_404_and_not_asked_again_for_ten_minutes() {
    let stand = stand_in().await;
    let app = ratings_app(&stand, 5).await;
    expect_error(app.get("/problems/no-such-problem").await, 404, "problem_not_found").await;
    app.advance(minutes(9));
    expect_error(app.get("/problems/no-such-problem").await, 404, "problem_not_found").await;
    assert_eq!(stand.calls_for("no-such-problem"), 1, "remembered, not asked again");
    app.advance(minutes(2));
    expect_error(app.get("/problems/no-such-problem").await, 404, "problem_not_found").await;
    assert_eq!(stand.calls_for("no-such-problem"), 2, "asked again once forgotten");
}

#[tokio::test]
async fn a_bad_slug_is_422_and_never_sent_upstream() {
    let stand = stand_in().await;
    let app = ratings_app(&stand, 5).await;
    let long = "x".repeat(101);
    for slug in ["Two-Sum", "two_sum", "two%20sum", long.as_str()] {
        expect_field_error(app.get(&format!("/problems/{slug}")).await, "slug").await;
    }
    assert_eq!(stand.calls(), 0);
}

#[tokio::test]
async fn a_slow_upstream_answers_pending_within_twice_the_timeout_and_a_job_fetches_it() {
    let stand = stand_in().await;
    stand.set(Mode::Slow, Duration::ZERO);
    let app = ratings_app(&stand, 10).await;
    let started = Instant::now();
    let response = app.get("/problems/climbing-stairs").await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(2 * TIMEOUT_MS), "answered after {waited:?}");
    assert!(header(&response, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(expect_json(response, 202).await, json!({ "status": "pending" }));

    stand.set(Mode::Normal, Duration::ZERO);
    until_stored(&app, "climbing-stairs").await;
    let calls = stand.calls_for("climbing-stairs");
    let problem = expect_json(app.get("/problems/climbing-stairs").await, 200).await;
    assert_eq!(problem["title"], "Climbing Stairs");
    assert_eq!(stand.calls_for("climbing-stairs"), calls, "the job's answer was served");
    // The job deletes its row a moment after storing the problem.
    let started = Instant::now();
    while !job_statuses(&app, "climbing-stairs").await.is_empty() {
        assert!(started.elapsed() < EVENT_TIMEOUT, "the job never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_down_upstream_then_back_gives_200_without_the_client_asking_again() {
    let stand = stand_in().await;
    stand.set(Mode::Down, Duration::ZERO);
    let app = ratings_app(&stand, 10).await;
    expect_json(app.get("/problems/house-robber").await, 202).await;
    expect_json(app.get("/problems/house-robber").await, 202).await;
    assert_eq!(job_statuses(&app, "house-robber").await.len(), 1, "one job per slug");
    stand.set(Mode::Normal, Duration::ZERO);
    until_stored(&app, "house-robber").await;
    expect_json(app.get("/problems/house-robber").await, 200).await;
}

#[tokio::test]
async fn garbage_from_the_upstream_is_pending_never_500() {
    let stand = stand_in().await;
    stand.set(Mode::Garbage, Duration::ZERO);
    let app = ratings_app(&stand, 10).await;
    for _ in 0..3 {
        assert_eq!(
            expect_json(app.get("/problems/word-break").await, 202).await["status"],
            "pending"
        );
    }
    let batch = app.post_json("/problems/batch", None, &json!({ "slugs": ["word-break"] })).await;
    assert_eq!(expect_json(batch, 200).await["items"][0]["status"], "pending");
}

#[tokio::test]
async fn a_fetch_that_keeps_failing_is_dead_after_its_attempts_and_a_later_lookup_tries_again() {
    let stand = stand_in().await;
    stand.set(Mode::Down, Duration::ZERO);
    let app = ratings_app(&stand, 2).await;
    expect_json(app.get("/problems/min-stack").await, 202).await;
    let started = Instant::now();
    while job_statuses(&app, "min-stack").await != ["dead"] {
        assert!(
            started.elapsed() < EVENT_TIMEOUT * 2,
            "{:?}",
            job_statuses(&app, "min-stack").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = app.send(app.client.get(app.root_url("/metrics"))).await.text().await.unwrap();
    assert!(metrics.contains("surge_jobs_dead_total"), "{metrics}");
    stand.set(Mode::Normal, Duration::ZERO);
    expect_json(app.get("/problems/min-stack").await, 200).await;
}

#[tokio::test]
async fn a_batch_answers_each_slug_on_its_own() {
    let stand = stand_in().await;
    let app = ratings_app(&stand, 5).await;
    let body = json!({ "slugs": ["two-sum", "no-such-problem", "Bad Slug", 42, "two-sum"] });
    let answer = expect_json(app.post_json("/problems/batch", None, &body).await, 200).await;
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["title"], "Two Sum");
    assert_eq!(
        items[1],
        json!({ "slug": "no-such-problem", "error": { "code": "problem_not_found", "message": "LeetCode has no problem `no-such-problem`" } })
    );
    assert_eq!(items[2]["error"]["code"], "invalid_slug");
    assert_eq!(items[2]["slug"], "Bad Slug");
    assert_eq!(items[3]["error"]["code"], "invalid_slug");
    assert_eq!(items[4], items[0]);
    assert_eq!(stand.calls_for("two-sum"), 1);

    let empty = app.post_json("/problems/batch", None, &json!({ "slugs": [] })).await;
    assert_eq!(expect_json(empty, 200).await, json!({ "items": [] }));
    let fifty: Vec<String> = (0..50).map(|i| format!("p-{i}")).collect();
    expect_json(app.post_json("/problems/batch", None, &json!({ "slugs": fifty })).await, 200)
        .await;
    let too_many: Vec<String> = (0..51).map(|i| format!("p-{i}")).collect();
    let refused = app.post_json("/problems/batch", None, &json!({ "slugs": too_many })).await;
    expect_field_error(refused, "slugs").await;
    expect_error(
        app.post_json("/problems/batch", None, &json!({ "slugs": "two-sum" })).await,
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn known_problems_are_listed_by_rating_with_tag_range_and_cursor_pages() {
    let stand = stand_in().await;
    let app = ratings_app(&stand, 5).await;
    let slugs: Vec<String> = stand.slugs().into_iter().take(40).collect();
    let answer =
        expect_json(app.post_json("/problems/batch", None, &json!({ "slugs": slugs })).await, 200)
            .await;
    let mut known: Vec<(i64, String, Value)> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["rating"].as_i64().unwrap(), p["slug"].as_str().unwrap().to_owned(), p.clone()))
        .collect();
    known.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let order = |items: &[Value]| -> Vec<String> {
        items.iter().map(|p| p["slug"].as_str().unwrap().to_owned()).collect()
    };
    let ascending = app.walk_pages("/problems", &[("limit", "7")]).await;
    assert_eq!(order(&ascending), known.iter().map(|k| k.1.clone()).collect::<Vec<_>>());
    let descending = app.walk_pages("/problems", &[("limit", "6"), ("sort", "-rating")]).await;
    assert_eq!(order(&descending), known.iter().rev().map(|k| k.1.clone()).collect::<Vec<_>>());

    let (low, high) = (known[10].0, known[30].0);
    let (low_text, high_text) = (low.to_string(), high.to_string());
    let ranged = app
        .walk_pages(
            "/problems",
            &[("min_rating", &low_text), ("max_rating", &high_text), ("limit", "5")],
        )
        .await;
    let expected: Vec<String> =
        known.iter().filter(|k| k.0 >= low && k.0 <= high).map(|k| k.1.clone()).collect();
    assert_eq!(order(&ranged), expected);

    let tag = known[0].2["tags"][0]["slug"].as_str().unwrap().to_owned();
    let tagged = app.walk_pages("/problems", &[("tag", &tag), ("limit", "3")]).await;
    let expected: Vec<String> = known
        .iter()
        .filter(|k| k.2["tags"].as_array().unwrap().iter().any(|t| t["slug"] == tag.as_str()))
        .map(|k| k.1.clone())
        .collect();
    assert_eq!(order(&tagged), expected);

    for bad in ["sort=difficulty", "min_rating=-1", "limit=0", "cursor=nope", "tag=Not%20A%20Tag"] {
        expect_error(app.get(&format!("/problems?{bad}")).await, 422, "validation_failed").await;
    }
}

#[tokio::test]
async fn under_the_outbound_limit_lookups_and_jobs_still_make_one_call_per_slug() {
    let stand = stand_in().await;
    let url = stand.url();
    let app = spawn_app_with(move |settings| {
        settings.ratings.upstream_url = url;
        settings.ratings.upstream_timeout_ms = TIMEOUT_MS;
        settings.ratings.retry_base_ms = 100;
        settings.ratings.max_attempts = 30;
        settings.ratings.upstream_per_second = 4;
    })
    .await;
    let slugs: Vec<String> = stand.slugs().into_iter().take(12).collect();
    let clients = slugs.iter().cycle().take(36).map(|slug| {
        let app = &app;
        async move {
            let started = Instant::now();
            loop {
                let response = app.get(&format!("/problems/{slug}")).await;
                match response.status().as_u16() {
                    200 => return,
                    202 => tokio::time::sleep(Duration::from_millis(50)).await,
                    other => panic!("{slug}: {other}"),
                }
                assert!(started.elapsed() < Duration::from_secs(20), "{slug} never arrived");
            }
        }
    });
    futures_util::future::join_all(clients).await;
    for slug in &slugs {
        assert_eq!(stand.calls_for(slug), 1, "{slug}");
    }
}
