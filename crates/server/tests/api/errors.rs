//! The common error rules: bad bodies, bad paths, unknown routes and methods always get the JSON
//! error shape and the right status, never a plain-text body or a 500.

use serde_json::json;

use crate::helpers::{
    PASSWORD, auction_body, expect_error, expect_error_status, expect_json, spawn_app, string,
    unique_email, unique_nickname,
};

#[tokio::test]
async fn malformed_json_is_rejected_with_400_invalid_json() {
    let app = spawn_app().await;
    for body in [
        "{\"email\": ",
        "{\"email\": \"someone@example.com\", \"password\": \"long enough\"",
        "not json at all",
        "",
        "{'email': 'single quotes'}",
        "[1, 2",
        "[\"someone@example.com\", \"long enough\", \"Nick\"]",
    ] {
        let response = app
            .send(
                app.client
                    .post(app.url("/auth/signup"))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        expect_error(response, 400, "invalid_json").await;
    }
}

#[tokio::test]
async fn a_json_body_without_the_json_content_type_is_rejected_with_400() {
    let app = spawn_app().await;
    let body =
        json!({"email": unique_email(), "password": PASSWORD, "nickname": "Nick"}).to_string();

    let text_plain = app
        .send(
            app.client
                .post(app.url("/auth/signup"))
                .header("content-type", "text/plain")
                .body(body.clone()),
        )
        .await;
    expect_error(text_plain, 400, "invalid_content_type").await;

    let no_content_type = app.send(app.client.post(app.url("/auth/signup")).body(body)).await;
    expect_error(no_content_type, 400, "invalid_content_type").await;
}

#[tokio::test]
async fn a_json_body_over_64_kib_is_rejected_with_413() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let padded = json!({
        "email": unique_email(),
        "password": PASSWORD,
        "nickname": unique_nickname(),
        "padding": "x".repeat(70 * 1024),
    });
    expect_error(app.signup_request(&padded).await, 413, "payload_too_large").await;

    let huge_description = json!({
        "title": "Huge",
        "description": "d".repeat(100 * 1024),
        "starting_price": 1,
        "ends_at": auction_body(app.now())["ends_at"],
    });
    let response = app.create_auction_request(&user.access_token, &huge_description).await;
    expect_error(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn an_unknown_route_is_404_with_a_json_body() {
    let app = spawn_app().await;
    for path in ["/does-not-exist", "/auctions/search/everything", "/me/nothing"] {
        expect_error(app.get(path).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_with_a_json_body() {
    let app = spawn_app().await;

    let delete = app.send(app.client.delete(app.url("/auctions"))).await;
    expect_error(delete, 405, "method_not_allowed").await;

    let put = app.send(app.client.put(app.url("/auth/login")).json(&json!({}))).await;
    expect_error(put, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_path_id_that_is_not_a_uuid_is_rejected_with_400() {
    let app = spawn_app().await;
    let user = app.signup().await;

    for path in
        ["/auctions/not-a-uuid", "/auctions/123/bids", "/auctions/123/events", "/images/xyz"]
    {
        expect_error(app.get(path).await, 400, "invalid_path_parameter").await;
    }
    let bid =
        app.post_json("/auctions/42/bids", Some(&user.access_token), &json!({"amount": 1})).await;
    expect_error(bid, 400, "invalid_path_parameter").await;
}

#[tokio::test]
async fn a_wrong_json_type_is_a_json_error_not_a_crash() {
    let app = spawn_app().await;
    let seller = app.signup().await;
    let bidder = app.signup().await;
    let auction = app.create_auction(&seller, auction_body(app.now())).await;
    let path = format!("/auctions/{}/bids", string(&auction["id"]));

    for body in [
        json!({"amount": "ten"}),
        json!({"amount": 10.5}),
        json!({"amount": null}),
        json!([1000]),
        json!(1000),
    ] {
        let response = app.post_json(&path, Some(&bidder.access_token), &body).await;
        let status = response.status().as_u16();
        assert!(status == 400 || status == 422, "{body}: status {status}");
        let error = expect_error_status(response, status).await;
        let expected = if status == 400 { "invalid_json" } else { "validation_failed" };
        assert_eq!(error["code"], expected, "{body}: {error}");
    }
    assert_eq!(app.auction(&string(&auction["id"])).await["bid_count"], 0);
}

#[tokio::test]
async fn a_missing_or_malformed_bearer_token_is_rejected_with_401_unauthorized() {
    let app = spawn_app().await;
    let body = auction_body(app.now());
    let cases = [None, Some("Bearer"), Some("Bearer not.a.jwt"), Some("Basic dXNlcjpwYXNz")];
    for authorization in cases {
        let mut request = app.client.post(app.url("/auctions")).json(&body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = app.send(request).await;
        expect_error(response, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn unknown_json_fields_are_ignored() {
    let app = spawn_app().await;
    let response = app
        .signup_request(&json!({
            "email": unique_email(),
            "password": PASSWORD,
            "nickname": "Nick",
            "favourite_colour": "teal",
            "roles": ["admin"],
        }))
        .await;
    let body = expect_json(response, 201).await;
    assert!(
        !body["user"]["roles"].as_array().unwrap().contains(&json!("admin")),
        "a client chose its own roles: {body}"
    );
}
