//! Social on every backend: articles through their life (draft, published, withdrawn) with
//! visibility enforced on every path, idempotent likes and collects with exact counts under a
//! rush, reads counted in batches, and the top-liked and hot rankings.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use serde_json::{Value, json};
use surge_core::social::hot_score;

use crate::helpers::{
    EVENT_TIMEOUT, QuickUser, TestApp, expect_error, expect_field_error, expect_json, spawn_app,
    spawn_app_with, string,
};

impl TestApp {
    async fn write(&self, author: &QuickUser, title: &str) -> String {
        let body = json!({ "title": title, "content": format!("About {title}.") });
        let created = self.post_json("/articles", Some(&author.token), &body).await;
        string(&expect_json(created, 201).await["id"])
    }

    async fn publish(&self, author: &QuickUser, id: &str) -> Value {
        let published = self
            .post_json(&format!("/articles/{id}/publish"), Some(&author.token), &json!({}))
            .await;
        expect_json(published, 200).await
    }

    async fn read_as(&self, id: &str, reader: Option<&QuickUser>) -> reqwest::Response {
        let mut request = self.client.get(self.url(&format!("/articles/{id}")));
        if let Some(reader) = reader {
            request = request.bearer_auth(&reader.token);
        }
        self.send(request).await
    }

    async fn mark(&self, user: &QuickUser, id: &str, what: &str, on: bool) -> reqwest::Response {
        let url = self.url(&format!("/articles/{id}/{what}"));
        let request = if on { self.client.put(url) } else { self.client.delete(url) };
        self.send(request.bearer_auth(&user.token)).await
    }
}

#[tokio::test]
async fn an_article_is_a_draft_then_published_then_withdrawn() {
    let app = spawn_app().await;
    let users = app.quick_users(2).await;
    let (author, reader) = (&users[0], &users[1]);
    let body = json!({ "title": "  Flash traffic  ", "content": "Everyone at once." });
    let response = app.post_json("/articles", Some(&author.token), &body).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let draft = expect_json(response, 201).await;
    assert_eq!(draft["title"], "Flash traffic");
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["author"]["id"], author.id.as_str());
    assert!(draft["published_at"].is_null());
    let id = string(&draft["id"]);
    assert_eq!(location, format!("/api/v1/articles/{id}"));

    expect_error(app.read_as(&id, Some(reader)).await, 404, "not_found").await;
    expect_error(app.read_as(&id, None).await, 404, "not_found").await;
    expect_json(app.read_as(&id, Some(author)).await, 200).await;

    let edit = json!({ "title": "Flash traffic, again", "content": "Edited." });
    let url = app.url(&format!("/articles/{id}"));
    let edited = app.send(app.client.put(&url).bearer_auth(&author.token).json(&edit)).await;
    assert_eq!(expect_json(edited, 200).await["title"], "Flash traffic, again");
    let theirs = app.send(app.client.put(&url).bearer_auth(&reader.token).json(&edit)).await;
    expect_error(theirs, 404, "not_found").await;
    let blank = app
        .send(app.client.put(&url).bearer_auth(&author.token).json(&json!({ "title": " " })))
        .await;
    expect_field_error(blank, "title").await;

    let published = app.publish(author, &id).await;
    assert_eq!(published["status"], "published");
    assert!(published["published_at"].is_string());
    let seen = expect_json(app.read_as(&id, Some(reader)).await, 200).await;
    assert_eq!(seen["content"], "Edited.");
    let hijack =
        app.post_json(&format!("/articles/{id}/withdraw"), Some(&reader.token), &json!({})).await;
    expect_error(hijack, 404, "not_found").await;

    let withdrawn =
        app.post_json(&format!("/articles/{id}/withdraw"), Some(&author.token), &json!({})).await;
    assert_eq!(expect_json(withdrawn, 200).await["status"], "private");
    expect_error(app.read_as(&id, Some(reader)).await, 404, "not_found").await;
    expect_error(app.mark(reader, &id, "like", true).await, 404, "not_found").await;
    expect_error(app.mark(reader, &id, "collect", true).await, 404, "not_found").await;
    let republished = app.publish(author, &id).await;
    assert_eq!(republished["published_at"], published["published_at"], "first publication kept");
}

#[tokio::test]
async fn titles_and_contents_are_checked() {
    let app = spawn_app().await;
    let author = &app.quick_users(1).await[0];
    for body in [json!({ "title": "" }), json!({ "title": "x".repeat(201) })] {
        expect_field_error(app.post_json("/articles", Some(&author.token), &body).await, "title")
            .await;
    }
    let long = json!({ "title": "t", "content": "x".repeat(100_001) });
    expect_field_error(app.post_json("/articles", Some(&author.token), &long).await, "content")
        .await;
    let longest = json!({ "title": "長".repeat(200), "content": "\u{1F600}\"".repeat(50_000) });
    expect_json(app.post_json("/articles", Some(&author.token), &longest).await, 201).await;
    expect_error(
        app.post_json("/articles", None, &json!({ "title": "t" })).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn others_see_only_published_articles_in_an_authors_list() {
    let app = spawn_app().await;
    let users = app.quick_users(2).await;
    let (author, reader) = (&users[0], &users[1]);
    let mut published = Vec::new();
    for n in 0..7 {
        let id = app.write(author, &format!("Post {n}")).await;
        if n % 2 == 0 {
            app.publish(author, &id).await;
            published.push(id.clone());
        }
    }
    let path = format!("/users/{}/articles", author.id);
    let mine = app
        .send(app.client.get(app.url(&format!("{path}?limit=3"))).bearer_auth(&author.token))
        .await;
    assert_eq!(expect_json(mine, 200).await["items"].as_array().unwrap().len(), 3);
    let walk = |token: Option<String>| {
        let app = &app;
        let path = path.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut url = format!("{path}?limit=2");
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let mut request = app.client.get(app.url(&url));
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let page = expect_json(app.send(request).await, 200).await;
                seen.extend(page["items"].as_array().unwrap().iter().map(|a| string(&a["id"])));
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => return seen,
                }
            }
        }
    };
    assert_eq!(walk(Some(author.token.clone())).await.len(), 7);
    let theirs = walk(Some(reader.token.clone())).await;
    published.reverse();
    assert_eq!(theirs, published, "newest first, published only");
    assert_eq!(walk(None).await, published);
}

#[tokio::test]
async fn likes_and_collects_are_idempotent_and_marked_for_the_caller() {
    let app = spawn_app().await;
    let users = app.quick_users(3).await;
    let id = app.write(&users[0], "Likeable").await;
    app.publish(&users[0], &id).await;
    for _ in 0..2 {
        let liked = expect_json(app.mark(&users[1], &id, "like", true).await, 200).await;
        assert_eq!(liked, json!({ "liked": true, "like_count": 1 }));
    }
    expect_json(app.mark(&users[2], &id, "like", true).await, 200).await;
    let collected = expect_json(app.mark(&users[1], &id, "collect", true).await, 200).await;
    assert_eq!(collected, json!({ "collected": true, "collect_count": 1 }));
    let seen = expect_json(app.read_as(&id, Some(&users[1])).await, 200).await;
    assert_eq!((seen["liked"].clone(), seen["collected"].clone()), (json!(true), json!(true)));
    assert_eq!((seen["like_count"].clone(), seen["collect_count"].clone()), (json!(2), json!(1)));
    let anonymous = expect_json(app.read_as(&id, None).await, 200).await;
    assert_eq!(anonymous["liked"], false);
    for _ in 0..2 {
        let unliked = expect_json(app.mark(&users[2], &id, "like", false).await, 200).await;
        assert_eq!(unliked, json!({ "liked": false, "like_count": 1 }));
    }
    let never = expect_json(app.mark(&users[0], &id, "collect", false).await, 200).await;
    assert_eq!(never, json!({ "collected": false, "collect_count": 1 }));
    let unknown = uuid::Uuid::now_v7();
    expect_error(app.mark(&users[1], &unknown.to_string(), "like", true).await, 404, "not_found")
        .await;
    let anonymous_like = app.send(app.client.put(app.url(&format!("/articles/{id}/like")))).await;
    expect_error(anonymous_like, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_like_rush_ends_with_the_exact_count() {
    let app = spawn_app().await;
    let users = app.quick_users(2_000).await;
    let id = app.write(&users[0], "Viral").await;
    app.publish(&users[0], &id).await;
    // Everyone likes; every third likes twice; every fifth takes the like back afterwards.
    let rush = users.iter().enumerate().map(|(n, user)| {
        let (app, id) = (&app, &id);
        async move {
            assert_eq!(app.mark(user, id, "like", true).await.status(), 200);
            if n % 3 == 0 {
                assert_eq!(app.mark(user, id, "like", true).await.status(), 200);
            }
            if n % 5 == 0 {
                assert_eq!(app.mark(user, id, "like", false).await.status(), 200);
            }
        }
    });
    futures_util::stream::iter(rush).buffer_unordered(64).collect::<Vec<()>>().await;
    let expected = (0..2_000).filter(|n| n % 5 != 0).count();
    let article = expect_json(app.read_as(&id, None).await, 200).await;
    assert_eq!(article["like_count"], expected as i64);
}

#[tokio::test]
async fn every_read_counts_and_reaches_the_database_in_batches() {
    let app = spawn_app().await;
    let users = app.quick_users(2).await;
    let id = app.write(&users[0], "Read me").await;
    app.publish(&users[0], &id).await;
    for n in 1..=5 {
        let article = expect_json(app.read_as(&id, Some(&users[1])).await, 200).await;
        assert_eq!(article["read_count"], n);
    }
    // The author's list reads the database: the counts arrive within the flush interval.
    let started = Instant::now();
    loop {
        let page = app.get_json(&format!("/users/{}/articles", users[0].id)).await;
        if page["items"][0]["read_count"] == 5 {
            break;
        }
        assert!(started.elapsed() < EVENT_TIMEOUT, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let article = expect_json(app.read_as(&id, None).await, 200).await;
    assert_eq!(article["read_count"], 6, "counted once, never twice");
    expect_error(app.read_as(&uuid::Uuid::now_v7().to_string(), None).await, 404, "not_found")
        .await;
}

#[tokio::test]
async fn top_liked_lists_published_articles_by_likes_then_id() {
    let app = spawn_app().await;
    let users = app.quick_users(4).await;
    let mut ids = Vec::new();
    for likes in [1, 3, 0, 3] {
        let id = app.write(&users[0], &format!("{likes} likes")).await;
        app.publish(&users[0], &id).await;
        for user in &users[..likes] {
            expect_json(app.mark(user, &id, "like", true).await, 200).await;
        }
        ids.push(id);
    }
    let hidden = app.write(&users[0], "draft").await;
    expect_json(app.mark(&users[0], &hidden, "like", true).await, 200).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let top = app.get_json("/articles/top-liked?n=3").await;
    let order: Vec<String> =
        top["items"].as_array().unwrap().iter().map(|a| string(&a["id"])).collect();
    let (mut first, mut second) = (ids[1].clone(), ids[3].clone());
    if second < first {
        std::mem::swap(&mut first, &mut second);
    }
    assert_eq!(order, vec![first.clone(), second, ids[0].clone()]);
    assert_eq!(top["items"][0]["like_count"], 3);

    // A like shows within a second.
    expect_json(app.mark(&users[3], &ids[0], "like", true).await, 200).await;
    expect_json(app.mark(&users[2], &ids[0], "like", true).await, 200).await;
    expect_json(app.mark(&users[1], &ids[0], "like", true).await, 200).await;
    let started = Instant::now();
    loop {
        let top = app.get_json("/articles/top-liked?n=1").await;
        if top["items"][0]["id"] == ids[0].as_str() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "{top}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in ["0", "101", "x"] {
        let response = app.get(&format!("/articles/top-liked?n={n}")).await;
        assert_eq!(response.status(), 422, "n={n}");
    }
}

/// `users` with fresh access tokens (the clock jumped past the old ones' expiry).
fn refreshed(app: &TestApp, users: &[QuickUser]) -> Vec<QuickUser> {
    users
        .iter()
        .map(|u| QuickUser { id: u.id.clone(), token: app.token_for(u.id.parse().unwrap(), false) })
        .collect()
}

/// Waits until the hot list (recomputed every second here) lists `expected`, in order.
async fn until_hot(app: &TestApp, expected: &[String]) -> Value {
    let started = Instant::now();
    loop {
        let hot = app.get_json("/articles/hot?n=10").await;
        let order: Vec<String> =
            hot["items"].as_array().unwrap().iter().map(|a| string(&a["id"])).collect();
        if order == expected {
            return hot;
        }
        assert!(started.elapsed() < EVENT_TIMEOUT, "{hot} is not {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_hot_list_follows_the_formula_over_the_last_week() {
    let app = spawn_app_with(|settings| settings.social.hot_interval_secs = 1).await;
    let mut users = app.quick_users(6).await;
    let mut posted = Vec::new();
    // As liked but older, or newer and less liked: published 40, 30, 20 and 10 hours ago (the
    // newest, with fewer likes, comes first).
    for likes in [3_usize, 3, 3, 2] {
        let id = app.write(&users[0], &format!("{likes} likes")).await;
        app.publish(&users[0], &id).await;
        for user in &users[..likes] {
            expect_json(app.mark(user, &id, "like", true).await, 200).await;
        }
        posted.push((id, likes as i64, app.now()));
        app.advance(chrono::Duration::hours(10));
        users = refreshed(&app, &users);
    }
    let now = app.now();
    let mut expected: Vec<(f64, String)> = posted
        .iter()
        .map(|(id, likes, at)| {
            let age = (now - *at).num_milliseconds() as f64 / 3.6e6;
            (hot_score(*likes, age), id.clone())
        })
        .collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let order: Vec<String> = expected.iter().map(|(_, id)| id.clone()).collect();
    let hot = until_hot(&app, &order).await;
    let top = hot["items"][0]["score"].as_f64().unwrap();
    assert!((top - expected[0].0).abs() / expected[0].0 < 0.01, "{top} vs {}", expected[0].0);

    // A week on, those are out; a new one is in.
    app.advance(chrono::Duration::days(7));
    let users = refreshed(&app, &users);
    let fresh = app.write(&users[0], "Fresh").await;
    app.publish(&users[0], &fresh).await;
    expect_json(app.mark(&users[1], &fresh, "like", true).await, 200).await;
    until_hot(&app, std::slice::from_ref(&fresh)).await;
    expect_field_error(app.get("/articles/hot?n=0").await, "n").await;
}
