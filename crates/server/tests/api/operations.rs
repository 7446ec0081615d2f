//! Operations endpoints: health, readiness, metrics, the OpenAPI document and the docs page.

use serde_json::Value;

use crate::helpers::{header, spawn_app};

#[tokio::test]
async fn healthz_returns_200() {
    let app = spawn_app().await;
    let response = app.send(app.client.get(app.root_url("/healthz"))).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn readyz_returns_200_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app.send(app.client.get(app.root_url("/readyz"))).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let app = spawn_app().await;
    // Some traffic first, so there is something to count.
    app.search(&[]).await;

    let response = app.send(app.client.get(app.root_url("/metrics"))).await;

    assert_eq!(response.status().as_u16(), 200);
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("text/plain"), "content-type {content_type:?}");
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_the_bid_route() {
    let app = spawn_app().await;

    let response = app.send(app.client.get(app.root_url("/api/openapi.json"))).await;

    assert_eq!(response.status().as_u16(), 200);
    let document: Value = response.json().await.expect("the OpenAPI document is JSON");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi version {version:?}");
    let bids = &document["paths"]["/api/v1/auctions/{id}/bids"];
    assert!(bids.get("post").is_some(), "no POST bids in {bids}");
    assert!(bids.get("get").is_some(), "no GET bids in {bids}");
}

#[tokio::test]
async fn the_docs_page_is_html() {
    let app = spawn_app().await;

    let response = app.send(app.client.get(app.root_url("/api/docs"))).await;

    assert_eq!(response.status().as_u16(), 200);
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("text/html"), "content-type {content_type:?}");
}
