//! Ratings across replicas: one upstream call per slug whichever replicas the misses reach, an
//! answer (or a "no such problem") fetched through one replica served by the others without a
//! call, and fetch jobs left by a killed replica finished by another.

use std::time::{Duration, Instant};

use surge::demo::leetcode::{MockLeetCode, Mode};

use super::deployment::Deployment;
use crate::helpers::{expect_error, expect_json};

async fn deployment_on(stand: &MockLeetCode) -> Deployment {
    let mut deployment =
        Deployment::empty(surge_testkit::required(surge_testkit::REDIS_URL_VAR)).await;
    for _ in 0..2 {
        let url = stand.url();
        deployment
            .add_replica(move |command| {
                command
                    .env("SURGE_RATINGS__UPSTREAM_URL", url)
                    .env("SURGE_RATINGS__UPSTREAM_TIMEOUT_MS", "500")
                    .env("SURGE_RATINGS__RETRY_BASE_MS", "100")
                    .env("SURGE_RATINGS__MAX_ATTEMPTS", "30")
                    .env("SURGE_RATINGS__UPSTREAM_PER_SECOND", "10000");
            })
            .await;
    }
    deployment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_split_across_two_replicas_make_one_upstream_call() {
    let stand = MockLeetCode::start(([127, 0, 0, 1], 0).into()).await.unwrap();
    stand.set(Mode::Normal, Duration::from_millis(150));
    let deployment = deployment_on(&stand).await;
    let apis = deployment.apis();
    let requests = (0..50).map(|n| apis[n % 2].get("/problems/jump-game"));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(expect_json(response, 200).await["slug"], "jump-game", "{}", deployment.logs());
    }
    assert_eq!(stand.calls_for("jump-game"), 1);

    // Fetched through one replica, served by the other; the same for "no such problem".
    expect_json(apis[0].get("/problems/two-sum").await, 200).await;
    expect_json(apis[1].get("/problems/two-sum").await, 200).await;
    expect_error(apis[0].get("/problems/not-a-problem").await, 404, "problem_not_found").await;
    expect_error(apis[1].get("/problems/not-a-problem").await, 404, "problem_not_found").await;
    assert_eq!((stand.calls_for("two-sum"), stand.calls_for("not-a-problem")), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_jobs_left_by_a_killed_replica_are_finished_by_another() {
    let stand = MockLeetCode::start(([127, 0, 0, 1], 0).into()).await.unwrap();
    stand.set(Mode::Down, Duration::ZERO);
    let mut deployment = deployment_on(&stand).await;
    let slugs = ["coin-change", "word-search", "decode-ways"];
    for slug in slugs {
        expect_json(deployment.api(0).get(&format!("/problems/{slug}")).await, 202).await;
    }
    deployment.replicas[0].kill();
    stand.set(Mode::Normal, Duration::ZERO);
    let survivor = deployment.api(1);
    let started = Instant::now();
    while slugs.iter().any(|slug| stand.calls_for(slug) < 2) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "jobs never ran\n{}",
            deployment.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls: Vec<u64> = slugs.iter().map(|slug| stand.calls_for(slug)).collect();
    for slug in slugs {
        expect_json(survivor.get(&format!("/problems/{slug}")).await, 200).await;
    }
    assert_eq!(calls, slugs.iter().map(|slug| stand.calls_for(slug)).collect::<Vec<_>>());
}
