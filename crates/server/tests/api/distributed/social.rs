//! Social across replicas: a like through one replica shows in the other's top-liked list
//! within a second; reads counted on both add up; a withdrawn article is gone on both.

use std::time::{Duration, Instant};

use serde_json::json;

use super::deployment::Deployment;
use crate::helpers::{expect_json, string};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_reads_and_withdrawals_are_seen_by_every_replica() {
    let deployment = Deployment::start(2).await;
    let (first, second) = (deployment.api(0), deployment.api(1));
    let users = deployment.quick_users(3).await;
    let author = &users[0];
    let mut ids = Vec::new();
    for title in ["One", "Two"] {
        let body = json!({ "title": title, "content": "…" });
        let created = first.post_json("/articles", Some(&author.token), &body).await;
        let id = string(&expect_json(created, 201).await["id"]);
        let url = format!("/articles/{id}/publish");
        expect_json(second.post_json(&url, Some(&author.token), &json!({})).await, 200).await;
        ids.push(id);
    }
    // Read once so both lists are cached, then like "Two" through the first replica.
    second.get_json("/articles/top-liked?n=2").await;
    let liked = first
        .send(
            first
                .client
                .put(first.url(&format!("/articles/{}/like", ids[1])))
                .bearer_auth(&users[1].token),
        )
        .await;
    expect_json(liked, 200).await;
    let started = Instant::now();
    loop {
        let top = second.get_json("/articles/top-liked?n=1").await;
        if top["items"][0]["id"] == ids[1].as_str() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "{top}\n{}", deployment.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for n in 1..=6 {
        let api = if n % 2 == 0 { &first } else { &second };
        let article = api.get_json(&format!("/articles/{}", ids[0])).await;
        assert_eq!(article["read_count"], n, "counted once each, on either replica");
    }

    let url = format!("/articles/{}/withdraw", ids[0]);
    expect_json(first.post_json(&url, Some(&author.token), &json!({})).await, 200).await;
    for api in [&first, &second] {
        let gone = api.get(&format!("/articles/{}", ids[0])).await;
        assert_eq!(gone.status(), 404);
    }
}
