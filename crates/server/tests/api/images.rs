//! Images: upload (raw or multipart), type by bytes, size and rate limits, serving, and their
//! use in auctions.

use serde_json::{Value, json};

use crate::helpers::{
    Api, GIF, JPEG, PNG, WEBP, auction_body, expect_error, expect_json, expect_rate_limited,
    header, merged, minutes, spawn_app, spawn_app_with, status_and_json, string,
};

const FIVE_MIB: usize = 5 * 1024 * 1024;

/// Fetches an uploaded image by the URL the server gave; requires 200.
async fn fetch(api: &Api, url: &str) -> (String, String, Vec<u8>) {
    let response = api.send(api.client.get(api.absolute(url))).await;
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    let content_type = header(&response, "content-type");
    let cache_control = header(&response, "cache-control");
    let bytes = response.bytes().await.expect("image body").to_vec();
    (content_type, cache_control, bytes)
}

fn assert_upload(body: &Value, content_type: &str, bytes: &[u8]) {
    assert!(uuid::Uuid::parse_str(&string(&body["id"])).is_ok(), "{body}");
    assert!(body["url"].is_string(), "{body}");
    assert_eq!(body["content_type"], content_type, "{body}");
    assert_eq!(body["bytes"], bytes.len(), "{body}");
}

#[tokio::test]
async fn uploading_a_png_as_a_raw_body_returns_201_and_the_image_is_served_back() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let response = app.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;

    let body = expect_json(response, 201).await;
    assert_upload(&body, "image/png", PNG);
    let (content_type, cache_control, bytes) = fetch(&app, &string(&body["url"])).await;
    assert_eq!(content_type, "image/png");
    assert!(cache_control.contains("max-age"), "cache-control: {cache_control:?}");
    assert_eq!(bytes, PNG);
    // The image is also reachable by its id.
    let (_, _, by_id) = fetch(&app, &app.url(&format!("/images/{}", string(&body["id"])))).await;
    assert_eq!(by_id, PNG);
}

#[tokio::test]
async fn uploading_through_the_multipart_file_field_is_accepted() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let response = app.upload_multipart(&user.access_token, "pixel.gif", "image/gif", GIF).await;

    let body = expect_json(response, 201).await;
    assert_upload(&body, "image/gif", GIF);
    let (content_type, _, bytes) = fetch(&app, &string(&body["url"])).await;
    assert_eq!(content_type, "image/gif");
    assert_eq!(bytes, GIF);
}

/// The form has one field; another one is refused by name, not silently dropped.
#[tokio::test]
async fn a_multipart_form_with_another_field_is_refused_with_422() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let boundary = "surge-extra-field";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.gif\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(GIF);
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhi\r\n--{boundary}--\r\n")
            .as_bytes(),
    );
    let request = app
        .client
        .post(app.url("/images"))
        .bearer_auth(&user.access_token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body);

    let error = expect_error(app.send(request).await, 422, "validation_failed").await;
    assert!(error["fields"]["caption"].is_string(), "{error}");
}

#[tokio::test]
async fn the_image_type_is_decided_by_the_bytes_not_by_the_label() {
    let app = spawn_app_with(|settings| settings.limits.uploads_per_hour = 100).await;
    let user = app.signup().await;
    let cases: [(&[u8], &str, &str); 5] = [
        (PNG, "image/png", "image/png"),
        (JPEG, "image/jpeg", "image/jpeg"),
        (WEBP, "image/webp", "image/webp"),
        (GIF, "image/gif", "image/gif"),
        (PNG, "image/jpeg", "image/png"),
    ];

    for (bytes, label, detected) in cases {
        let response = app.upload_image(&user.access_token, bytes.to_vec(), label).await;
        let body = expect_json(response, 201).await;
        assert_upload(&body, detected, bytes);
        let (content_type, _, served) = fetch(&app, &string(&body["url"])).await;
        assert_eq!(content_type, detected);
        assert_eq!(served, bytes);
    }
}

#[tokio::test]
async fn a_file_that_is_not_an_image_is_rejected_with_415() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let labelled_png =
        app.upload_image(&user.access_token, b"just some text".to_vec(), "image/png").await;
    expect_error(labelled_png, 415, "unsupported_media_type").await;

    let svg = app
        .upload_multipart(
            &user.access_token,
            "logo.svg",
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        )
        .await;
    expect_error(svg, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn an_image_over_5_mib_is_rejected_with_413() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let mut bytes = PNG.to_vec();
    bytes.resize(FIVE_MIB + 1, 0);

    let response = app.upload_image(&user.access_token, bytes, "image/png").await;

    expect_error(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn the_third_upload_within_an_hour_is_rate_limited_and_refused_files_do_not_count() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let refused = app.upload_image(&user.access_token, b"not an image".to_vec(), "image/png").await;
    expect_error(refused, 415, "unsupported_media_type").await;
    app.upload_png(&user).await;
    app.upload_png(&user).await;

    let third = app.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;
    let retry_after = expect_rate_limited(third).await;
    assert!(retry_after <= 3600, "Retry-After {retry_after} is over an hour");

    app.advance(minutes(61));
    let user = app.login_again(&user).await;
    app.upload_png(&user).await;
}

#[tokio::test]
async fn the_upload_limit_counts_each_user_separately() {
    let app = spawn_app().await;
    let busy = app.signup().await;
    let other = app.signup().await;
    app.upload_png(&busy).await;
    app.upload_png(&busy).await;
    let third = app.upload_image(&busy.access_token, PNG.to_vec(), "image/png").await;
    expect_rate_limited(third).await;

    app.upload_png(&other).await;
    app.upload_png(&other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_cannot_exceed_the_hourly_limit() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let uploads = (0..6).map(|_| async {
        status_and_json(app.upload_image(&user.access_token, PNG.to_vec(), "image/png").await).await
    });
    let results = futures_util::future::join_all(uploads).await;

    let accepted = results.iter().filter(|(status, _)| *status == 201).count();
    let limited = results.iter().filter(|(status, _)| *status == 429).count();
    assert_eq!((accepted, limited), (2, 4), "{results:?}");
}

#[tokio::test]
async fn uploading_without_a_token_is_rejected_with_401() {
    let app = spawn_app().await;
    let response = app
        .send(
            app.client
                .post(app.url("/images"))
                .header("content-type", "image/png")
                .body(PNG.to_vec()),
        )
        .await;
    expect_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_unknown_image_is_404() {
    let app = spawn_app().await;
    let response = app.get(&format!("/images/{}", uuid::Uuid::new_v4())).await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn an_auction_lists_its_images_in_order_and_search_shows_a_thumbnail() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let first = app.upload_png(&seller).await;
    let second = app.upload_png(&seller).await;

    let auction = app
        .create_auction(
            &seller,
            merged(auction_body(app.now()), json!({"image_ids": [second, first]})),
        )
        .await;

    let images = auction["images"].as_array().expect("images is a list");
    let listed: Vec<String> = images.iter().map(|image| string(&image["id"])).collect();
    assert_eq!(listed, vec![second.clone(), first]);
    for image in images {
        let (content_type, _, bytes) = fetch(&app, &string(&image["url"])).await;
        assert_eq!(content_type, "image/png");
        assert_eq!(bytes, PNG);
    }
    let page = app.search_page(&[]).await;
    let thumbnail = string(&page["items"][0]["thumbnail_url"]);
    let (content_type, _, _) = fetch(&app, &thumbnail).await;
    assert!(content_type.starts_with("image/"), "{content_type}");
}

#[tokio::test]
async fn an_auction_cannot_use_someone_elses_image() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let stranger = app.signup().await;
    let theirs = app.upload_png(&stranger).await;

    let response = app
        .create_auction_request(
            &seller.access_token,
            &merged(auction_body(app.now()), json!({ "image_ids": [theirs] })),
        )
        .await;

    let error = expect_error(response, 422, "validation_failed").await;
    assert!(error["fields"]["image_ids"].is_string(), "{error}");
}
