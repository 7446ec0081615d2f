//! Operations endpoints: health, readiness, metrics, the OpenAPI document and the docs page.

use serde_json::Value;

use std::time::Duration;

use crate::helpers::{EVENT_TIMEOUT, TestBackend, auction_body, header, spawn_app, string};

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

/// Every response says `nosniff`; a client's request id is echoed only when short and plain,
/// otherwise replaced by one of Surge's own (it reaches the logs and the response headers).
#[tokio::test]
async fn responses_say_nosniff_and_only_plain_request_ids_are_kept() {
    let app = spawn_app().await;
    for path in ["/healthz", "/api/v1/no-such-route", "/api/openapi.json"] {
        let response = app.send(app.client.get(app.root_url(path))).await;
        assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{path}");
    }
    let with_id = |id: &str| app.client.get(app.root_url("/healthz")).header("x-request-id", id);
    let kept = app.send(with_id("trace-42.a_b")).await;
    assert_eq!(header(&kept, "x-request-id"), "trace-42.a_b");
    for evil in ["<script>evil</script>", &"x".repeat(65), "a b"] {
        let replaced = header(&app.send(with_id(evil)).await, "x-request-id");
        assert_ne!(replaced, evil);
        assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
    }
}

/// A made-up method (here 20 KB long) is counted as `other`: no client text ever becomes a
/// metric label, so `/metrics` and the process cannot be grown by junk requests.
#[tokio::test]
async fn made_up_methods_are_counted_as_other_and_never_become_labels() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let junk = format!("Z{}", "Q".repeat(20_000));
    for _ in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
            .await
            .unwrap();
        let request = format!("{junk} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(EVENT_TIMEOUT, socket.read_to_end(&mut answer)).await;
    }
    let response = app.send(app.client.get(app.root_url("/metrics"))).await;
    let text = response.text().await.unwrap();
    assert!(!text.contains("QQQQ"), "a client's method became a label");
    assert!(text.contains("method=\"other\""), "made-up methods are not counted as other");
}

#[tokio::test]
async fn metrics_cover_http_latency_bids_subscribers_and_the_writer() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let auction = app.create_auction(&seller, auction_body(app.now())).await;
    let auction_id = string(&auction["id"]);
    let _subscriber = app.events(&auction_id, "", None).await;
    app.place_bid(&bidder, &auction_id, 1_000_000).await;
    assert_eq!(app.bid(&bidder, &auction_id, 1).await.status().as_u16(), 409);

    // The write path's own metrics: the embedded writer's batches, or a replica's persisters
    // and leases, which report as they catch up in the background.
    let backend_specific: &[&str] = match TestBackend::from_env() {
        TestBackend::Embedded => {
            &["surge_writer_batch_size_bucket", "surge_writer_commit_seconds_bucket"]
        }
        _ => &["surge_persist_apply_seconds_bucket", "surge_leases_held", "surge_stream_lag{"],
    };
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let response = app.send(app.client.get(app.root_url("/metrics"))).await;
        assert_eq!(response.status().as_u16(), 200);
        let content_type = header(&response, "content-type");
        assert!(content_type.starts_with("text/plain"), "content-type {content_type:?}");
        let text = response.text().await.unwrap();
        let expected = [
            "surge_http_request_duration_seconds_bucket{",
            "route=\"/api/v1/auctions/{id}/bids\"",
            "surge_bids_total{outcome=\"accepted\"} 1",
            "surge_bids_total{outcome=\"rejected\"} 1",
            "surge_sse_subscribers 1",
        ];
        let missing: Vec<&str> = expected
            .iter()
            .chain(backend_specific)
            .copied()
            .filter(|expected| !text.contains(expected))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing:?} missing from /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_the_bid_and_cinema_routes() {
    let app = spawn_app().await;

    let response = app.send(app.client.get(app.root_url("/api/openapi.json"))).await;

    assert_eq!(response.status().as_u16(), 200);
    let document: Value = response.json().await.expect("the OpenAPI document is JSON");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi version {version:?}");
    let bids = &document["paths"]["/api/v1/auctions/{id}/bids"];
    assert!(bids.get("post").is_some(), "no POST bids in {bids}");
    assert!(bids.get("get").is_some(), "no GET bids in {bids}");
    for (path, method) in [
        ("/api/v1/movies", "get"),
        ("/api/v1/screenings/{id}/seats", "get"),
        ("/api/v1/reservations", "post"),
        ("/api/v1/reservations/{id}", "delete"),
        ("/api/v1/me/reservations", "get"),
        ("/api/v1/admin/theaters", "post"),
        ("/api/v1/admin/movies", "post"),
        ("/api/v1/admin/screenings", "post"),
    ] {
        assert!(
            document["paths"][path].get(method).is_some(),
            "no {method} {path} in the document"
        );
    }
}

/// Every error a client can meet is in the document, with the one error shape, and the
/// bounds the server enforces are stated (the fuzzing step of scripts/test.sh relies on it).
#[tokio::test]
async fn the_openapi_document_lists_every_error_status_with_one_error_shape_and_the_bounds() {
    let app = spawn_app().await;
    let response = app.send(app.client.get(app.root_url("/api/openapi.json"))).await;
    let document: Value = response.json().await.expect("the OpenAPI document is JSON");

    let bids = &document["paths"]["/api/v1/auctions/{id}/bids"]["post"]["responses"];
    for status in ["400", "401", "403", "404", "409", "410", "413", "415", "422", "503"] {
        let error = &bids[status]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(error, "#/components/schemas/Error", "{status} of POST bids: {bids}");
    }
    let signup = &document["paths"]["/api/v1/auth/signup"]["post"]["responses"];
    assert_eq!(signup["429"]["headers"]["Retry-After"]["required"], true, "{signup}");
    assert!(document["components"]["schemas"]["Error"]["properties"]["error"].is_object());

    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["BidRequest"]["properties"]["amount"]["minimum"], 1);
    assert_eq!(schemas["SignupRequest"]["properties"]["password"]["minLength"], 8);
    assert_eq!(schemas["TheaterRequest"]["properties"]["rows"]["maximum"], 26);
    let limit = document["paths"]["/api/v1/auctions"]["get"]["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == "limit"))
        .expect("a limit parameter");
    assert_eq!(limit["schema"]["maximum"], 100, "{limit}");
}

#[tokio::test]
async fn the_docs_page_is_html() {
    let app = spawn_app().await;

    let response = app.send(app.client.get(app.root_url("/api/docs"))).await;

    assert_eq!(response.status().as_u16(), 200);
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("text/html"), "content-type {content_type:?}");
}
