//! `serve --demo`: the seed fills every app with something to look at, through the same ports
//! the API uses, and a second start changes nothing.

use serde_json::json;

use crate::helpers::{expect_json, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_every_app_and_seeds_only_once() {
    let app = spawn_app().await;
    surge::demo::seed(&app.state, 200).await.expect("the demo seed failed");
    let login = json!({ "email": "alice@surge.test", "password": surge::demo::DEMO_PASSWORD });
    expect_json(app.post_json("/auth/login", None, &login).await, 200).await;

    assert!(!app.get_json("/auctions").await["items"].as_array().unwrap().is_empty());
    let nearby = app.get_json("/stores/nearby?lat=37.5663&lng=126.9779&radius_m=20000").await;
    assert!(!nearby["items"].as_array().unwrap().is_empty());
    let top = app.get_json("/articles/top-liked?n=10").await;
    let items = top["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert!(items[0]["like_count"].as_i64().unwrap() >= items[9]["like_count"].as_i64().unwrap());
    assert!(!app.get_json("/articles/hot?n=10").await["items"].as_array().unwrap().is_empty());

    surge::demo::seed(&app.state, 200).await.expect("a second seed failed");
    assert_eq!(app.get_json("/articles/top-liked?n=10").await["items"], top["items"]);
}
