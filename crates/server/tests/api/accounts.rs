//! Accounts: signup, login, refresh, logout, GET and PATCH /me.

use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, expect_error, expect_error_status, expect_field_error, expect_json,
    expect_rate_limited, minutes, seconds, spawn_app, spawn_app_with, string, unique_email,
    unique_nickname,
};

const PROFILE_FIELDS: [&str; 8] =
    ["id", "email", "phone", "nickname", "birthday", "about", "roles", "created_at"];

fn assert_profile_shape(profile: &Value) {
    for field in PROFILE_FIELDS {
        assert!(profile.get(field).is_some(), "profile without {field}: {profile}");
    }
    assert!(profile["roles"].is_array(), "roles is not a list: {profile}");
}

fn assert_token_response(body: &Value) {
    assert_profile_shape(&body["user"]);
    assert!(
        body["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "no access_token: {body}"
    );
    assert!(
        body["refresh_token"].as_str().is_some_and(|t| !t.is_empty()),
        "no refresh_token: {body}"
    );
    assert_eq!(body["expires_in"], 900, "{body}");
}

// ---- signup ----

#[tokio::test]
async fn signup_returns_201_with_the_user_and_a_token_pair() {
    let app = spawn_app().await;
    let email = unique_email();

    let response = app
        .signup_request(&json!({"email": email, "password": PASSWORD, "nickname": "Alice"}))
        .await;

    let body = expect_json(response, 201).await;
    assert_token_response(&body);
    let user = &body["user"];
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["nickname"], "Alice");
    assert!(uuid::Uuid::parse_str(&string(&user["id"])).is_ok(), "{user}");
    assert!(user["phone"].is_null() && user["birthday"].is_null() && user["about"].is_null());
    assert_ne!(body["access_token"], body["refresh_token"]);
}

#[tokio::test]
async fn signup_trims_and_lowercases_the_email() {
    let app = spawn_app().await;
    let email = unique_email();

    let response = app
        .signup_request(&json!({
            "email": format!("  {}  ", email.to_uppercase()),
            "password": PASSWORD,
            "nickname": "Bob",
        }))
        .await;

    let body = expect_json(response, 201).await;
    assert_eq!(body["user"]["email"], email.as_str());
}

#[tokio::test]
async fn signup_with_a_taken_email_is_rejected_with_409_email_taken() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let same = app
        .signup_request(&json!({"email": user.email, "password": PASSWORD, "nickname": "Other"}))
        .await;
    expect_error(same, 409, "email_taken").await;

    let differently_cased = app
        .signup_request(&json!({
            "email": user.email.to_uppercase(),
            "password": PASSWORD,
            "nickname": "Other",
        }))
        .await;
    expect_error(differently_cased, 409, "email_taken").await;
}

#[tokio::test]
async fn signup_with_an_invalid_email_is_rejected_with_422_on_email() {
    let app = spawn_app().await;
    for email in ["", "not-an-email", "@example.com", "someone@"] {
        let response = app
            .signup_request(&json!({"email": email, "password": PASSWORD, "nickname": "Nick"}))
            .await;
        expect_field_error(response, "email").await;
    }
}

#[tokio::test]
async fn signup_requires_a_password_of_8_to_128_characters() {
    let app = spawn_app().await;
    for password in ["1234567".to_owned(), "p".repeat(129)] {
        let response = app
            .signup_request(
                &json!({"email": unique_email(), "password": password, "nickname": "Nick"}),
            )
            .await;
        expect_field_error(response, "password").await;
    }
    for password in ["12345678".to_owned(), "p".repeat(128)] {
        let response = app
            .signup_request(
                &json!({"email": unique_email(), "password": password, "nickname": "Nick"}),
            )
            .await;
        expect_json(response, 201).await;
    }
}

#[tokio::test]
async fn signup_counts_the_nickname_in_characters_not_bytes() {
    let app = spawn_app().await;

    let ten_korean = "가나다라마바사아자차";
    let response = app
        .signup_request(
            &json!({"email": unique_email(), "password": PASSWORD, "nickname": ten_korean}),
        )
        .await;
    let body = expect_json(response, 201).await;
    assert_eq!(body["user"]["nickname"], ten_korean);

    let eleven_korean = "가나다라마바사아자차카";
    let response = app
        .signup_request(
            &json!({"email": unique_email(), "password": PASSWORD, "nickname": eleven_korean}),
        )
        .await;
    expect_field_error(response, "nickname").await;
}

#[tokio::test]
async fn signup_with_an_empty_nickname_is_rejected_with_422_on_nickname() {
    let app = spawn_app().await;
    let response = app
        .signup_request(&json!({"email": unique_email(), "password": PASSWORD, "nickname": ""}))
        .await;
    expect_field_error(response, "nickname").await;
}

#[tokio::test]
async fn signup_without_a_required_field_is_a_json_error_not_a_crash() {
    let app = spawn_app().await;
    let response = app.signup_request(&json!({"password": PASSWORD, "nickname": "Nick"})).await;
    let status = response.status().as_u16();
    assert!(status == 400 || status == 422, "unexpected status {status}");
    expect_error_status(response, status).await;
}

/// A control character or a look-alike letter is not a second account for the same-looking
/// address.
#[tokio::test]
async fn signup_refuses_emails_with_control_characters_or_look_alike_letters() {
    let app = spawn_app().await;
    for email in ["alice@surge.test\u{0}", "\u{430}lice@surge.test"] {
        let body = json!({"email": email, "password": PASSWORD, "nickname": "x"});
        expect_field_error(app.signup_request(&body).await, "email").await;
    }
}

fn signup_body(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "nickname": "n"})
}

/// Accounts per address and hour; a sign-up that made no account does not count.
#[tokio::test]
async fn signups_are_limited_per_address() {
    let app = spawn_app_with(|settings| settings.limits.signups_per_ip_per_hour = 2).await;
    let first = unique_email();
    expect_json(app.signup_request(&signup_body(&first)).await, 201).await;
    expect_error(app.signup_request(&signup_body(&first)).await, 409, "email_taken").await;
    expect_json(app.signup_request(&signup_body(&unique_email())).await, 201).await;
    expect_rate_limited(app.signup_request(&signup_body(&unique_email())).await).await;
    app.advance(minutes(61));
    expect_json(app.signup_request(&signup_body(&unique_email())).await, 201).await;
}

async fn signup_from(app: &crate::helpers::TestApp, client: &str) -> reqwest::Response {
    let request = app
        .client
        .post(app.url("/auth/signup"))
        .header("x-forwarded-for", client)
        .json(&signup_body(&unique_email()));
    app.send(request).await
}

/// `X-Forwarded-For` names the client only when a trusted proxy sent it.
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let direct = spawn_app_with(|settings| settings.limits.signups_per_ip_per_hour = 1).await;
    expect_json(signup_from(&direct, "1.1.1.1").await, 201).await;
    // Not from a trusted proxy: the header is the client's own claim, and 127.0.0.1 is spent.
    expect_rate_limited(signup_from(&direct, "2.2.2.2").await).await;

    let proxied = spawn_app_with(|settings| {
        settings.limits.signups_per_ip_per_hour = 1;
        settings.http.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    expect_json(signup_from(&proxied, "1.1.1.1").await, 201).await;
    expect_json(signup_from(&proxied, "2.2.2.2").await, 201).await;
    expect_rate_limited(signup_from(&proxied, "1.1.1.1").await).await;
}

/// The session cookie is `Secure` when the deployment says clients come over TLS.
#[tokio::test]
async fn the_session_cookie_is_secure_when_configured() {
    for secure in [false, true] {
        let app = spawn_app_with(|settings| settings.http.secure_cookies = secure).await;
        let response = app.signup_request(&signup_body(&unique_email())).await;
        let cookie = crate::helpers::header(&response, "set-cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
    }
}

// ---- login ----

#[tokio::test]
async fn login_with_the_right_password_returns_200_and_a_token_pair() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let body = expect_json(app.login(&user.email, &user.password).await, 200).await;

    assert_token_response(&body);
    assert_eq!(body["user"]["id"], user.id.as_str());
    let me = expect_json(app.me(&string(&body["access_token"])).await, 200).await;
    assert_eq!(me["id"], user.id.as_str());
}

#[tokio::test]
async fn login_normalises_the_email_like_signup_does() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let response = app.login(&format!(" {} ", user.email.to_uppercase()), PASSWORD).await;

    let body = expect_json(response, 200).await;
    assert_eq!(body["user"]["id"], user.id.as_str());
}

#[tokio::test]
async fn login_with_a_wrong_password_or_an_unknown_email_gives_the_same_401() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let wrong_password =
        expect_error(app.login(&user.email, "not the password").await, 401, "invalid_credentials")
            .await;
    let unknown_email =
        expect_error(app.login(&unique_email(), PASSWORD).await, 401, "invalid_credentials").await;

    assert_eq!(wrong_password["message"], unknown_email["message"]);
}

#[tokio::test]
async fn login_is_rate_limited_after_10_failures_per_minute_for_that_email() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let bystander = app.signup().await;

    for _ in 0..10 {
        let response = app.login(&user.email, "not the password").await;
        expect_error(response, 401, "invalid_credentials").await;
    }

    // Even the right password is refused while the email is blocked …
    expect_rate_limited(app.login(&user.email, PASSWORD).await).await;
    // … but only for that email.
    expect_json(app.login(&bystander.email, PASSWORD).await, 200).await;

    app.advance(seconds(61));
    expect_json(app.login(&user.email, PASSWORD).await, 200).await;
}

/// Parallel guesses cannot slip past the limit while earlier guesses are still being checked:
/// each attempt is charged before its password hash is verified (and given back on success).
#[tokio::test]
async fn parallel_wrong_passwords_are_limited_like_sequential_ones() {
    let app = spawn_app().await;
    let user = app.signup().await;
    for burst in 0..3 {
        let passwords: Vec<String> = (0..40).map(|i| format!("guess-{burst}-{i}")).collect();
        let guesses = passwords.iter().map(|password| app.login(&user.email, password));
        let statuses: Vec<u16> = futures_util::future::join_all(guesses)
            .await
            .into_iter()
            .map(|response| response.status().as_u16())
            .collect();
        let wrong = statuses.iter().filter(|&&status| status == 401).count();
        let limited = statuses.iter().filter(|&&status| status == 429).count();
        assert_eq!(wrong + limited, 40, "burst {burst}: {statuses:?}");
        // The whole first minute allows 10 failures, however they arrive.
        let allowed = if burst == 0 { 10 } else { 0 };
        assert_eq!(wrong, allowed, "burst {burst}: {statuses:?}");
    }
    // A right password is not a failure: it gives its attempt back.
    app.advance(seconds(61));
    for _ in 0..12 {
        expect_json(app.login(&user.email, PASSWORD).await, 200).await;
    }
}

/// A token that verifies but names no account (the data was reset under a kept signing key):
/// 401 everywhere, and an upload leaves no file and uses no quota.
#[tokio::test]
async fn a_token_of_an_account_that_does_not_exist_is_401_everywhere() {
    let app = spawn_app().await;
    let ghost = app.token_for(uuid::Uuid::now_v7(), false);
    let png = crate::helpers::PNG.to_vec();
    expect_error(app.upload_image(&ghost, png, "image/png").await, 401, "unauthorized").await;
    let auction = json!({"title": "x", "starting_price": 1, "ends_at": "2099-01-01T00:00:00Z"});
    let created = app.post_json("/auctions", Some(&ghost), &auction).await;
    expect_error(created, 401, "unauthorized").await;
    let reservation = json!({"screening_id": uuid::Uuid::now_v7(), "seats": ["A1"]});
    let reserved = app.post_json("/reservations", Some(&ghost), &reservation).await;
    expect_error(reserved, 401, "unauthorized").await;
    expect_error(app.me(&ghost).await, 401, "unauthorized").await;
    let images = app.data_dir.path().join("objects/images");
    let stored = std::fs::read_dir(&images).map(|dir| dir.count()).unwrap_or(0);
    assert_eq!(stored, 0, "an upload of a missing account left a file");
}

// ---- refresh ----

#[tokio::test]
async fn refresh_returns_a_new_pair_and_the_old_refresh_token_stops_working() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let body = expect_json(app.refresh(&user.refresh_token).await, 200).await;
    assert_token_response(&body);
    assert_eq!(body["user"]["id"], user.id.as_str());
    let new_refresh = string(&body["refresh_token"]);
    assert_ne!(new_refresh, user.refresh_token);
    expect_json(app.me(&string(&body["access_token"])).await, 200).await;

    expect_error(app.refresh(&user.refresh_token).await, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let first = user.refresh_token.clone();
    let second = string(&expect_json(app.refresh(&first).await, 200).await["refresh_token"]);
    let third = string(&expect_json(app.refresh(&second).await, 200).await["refresh_token"]);

    // Someone replays a token that was already rotated: assume it was stolen.
    expect_error(app.refresh(&first).await, 401, "invalid_refresh_token").await;

    // The newest token of that family is dead too, and so are its access tokens …
    expect_error(app.refresh(&third).await, 401, "invalid_refresh_token").await;
    expect_error(app.me(&user.access_token).await, 401, "unauthorized").await;
    // … while logging in again starts a fresh family.
    let fresh = expect_json(app.login(&user.email, PASSWORD).await, 200).await;
    expect_json(app.refresh(&string(&fresh["refresh_token"])).await, 200).await;
}

#[tokio::test]
async fn refresh_with_a_garbage_token_is_rejected_with_401_invalid_refresh_token() {
    let app = spawn_app().await;
    expect_error(app.refresh("not-a-token").await, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn an_access_token_is_not_accepted_as_a_refresh_token() {
    let app = spawn_app().await;
    let user = app.signup().await;
    expect_error(app.refresh(&user.access_token).await, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn a_refresh_token_is_not_accepted_as_an_access_token() {
    let app = spawn_app().await;
    let user = app.signup().await;
    expect_error(app.me(&user.refresh_token).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn access_tokens_expire_after_15_minutes_and_refresh_still_works() {
    let app = spawn_app().await;
    let user = app.signup().await;

    app.advance(minutes(14));
    expect_json(app.me(&user.access_token).await, 200).await;

    app.advance(minutes(2));
    expect_error(app.me(&user.access_token).await, 401, "unauthorized").await;

    let body = expect_json(app.refresh(&user.refresh_token).await, 200).await;
    expect_json(app.me(&string(&body["access_token"])).await, 200).await;
}

// ---- logout ----

#[tokio::test]
async fn logout_returns_204_and_the_refresh_token_no_longer_works() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let response = app.logout(&user.refresh_token).await;
    assert_eq!(response.status().as_u16(), 204);

    expect_error(app.refresh(&user.refresh_token).await, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn logout_ends_the_access_tokens_of_that_session_only() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let refreshed = expect_json(app.refresh(&user.refresh_token).await, 200).await;
    let (later_access, later_refresh) =
        (string(&refreshed["access_token"]), string(&refreshed["refresh_token"]));
    let other = expect_json(app.login(&user.email, PASSWORD).await, 200).await;
    let other_access = string(&other["access_token"]);

    assert_eq!(app.logout(&later_refresh).await.status().as_u16(), 204);

    // Every access token of the session is over, the one from before the refresh too; the
    // session on another device goes on.
    expect_error(app.me(&user.access_token).await, 401, "unauthorized").await;
    expect_error(app.me(&later_access).await, 401, "unauthorized").await;
    expect_json(app.me(&other_access).await, 200).await;
}

// ---- GET /me ----

#[tokio::test]
async fn get_me_returns_the_profile_of_the_caller() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let me = expect_json(app.me(&user.access_token).await, 200).await;

    assert_profile_shape(&me);
    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["email"], user.email.as_str());
    assert_eq!(me["nickname"], user.nickname.as_str());
}

#[tokio::test]
async fn get_me_without_a_token_is_rejected_with_401_unauthorized() {
    let app = spawn_app().await;
    expect_error(app.get("/me").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn get_me_with_a_forged_token_is_rejected_with_401_unauthorized() {
    let app = spawn_app().await;
    let user = app.signup().await;
    // Change one character in the middle of the signature (the last part of the token).
    let signature_start = user.access_token.rfind('.').expect("a JWT") + 1;
    let position = signature_start + 10;
    let original = &user.access_token[position..position + 1];
    let replacement = if original == "A" { "B" } else { "A" };
    let mut forged = user.access_token.clone();
    forged.replace_range(position..position + 1, replacement);

    expect_error(app.me(&forged).await, 401, "unauthorized").await;
    expect_error(app.me("garbage").await, 401, "unauthorized").await;
}

// ---- PATCH /me ----

#[tokio::test]
async fn patch_me_updates_the_profile_and_get_me_shows_it() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let response = app
        .patch_me(
            &user.access_token,
            &json!({"nickname": "새이름", "birthday": "1992-05-20", "about": "Collector of cameras."}),
        )
        .await;

    let updated = expect_json(response, 200).await;
    assert_profile_shape(&updated);
    assert_eq!(updated["nickname"], "새이름");
    assert_eq!(updated["birthday"], "1992-05-20");
    assert_eq!(updated["about"], "Collector of cameras.");
    let me = expect_json(app.me(&user.access_token).await, 200).await;
    assert_eq!(me, updated);
}

#[tokio::test]
async fn patch_me_changes_only_the_fields_sent() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let body = json!({"birthday": "2000-12-31", "about": "Hello"});
    expect_json(app.patch_me(&user.access_token, &body).await, 200).await;

    let updated =
        expect_json(app.patch_me(&user.access_token, &json!({"about": "Bye"})).await, 200).await;

    assert_eq!(updated["nickname"], user.nickname.as_str());
    assert_eq!(updated["birthday"], "2000-12-31");
    assert_eq!(updated["about"], "Bye");
}

#[tokio::test]
async fn patch_me_with_null_clears_birthday_and_about() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let body = json!({"birthday": "1985-01-02", "about": "Something"});
    expect_json(app.patch_me(&user.access_token, &body).await, 200).await;

    let cleared = app.patch_me(&user.access_token, &json!({"birthday": null, "about": null})).await;

    let cleared = expect_json(cleared, 200).await;
    assert!(cleared["birthday"].is_null(), "{cleared}");
    assert!(cleared["about"].is_null(), "{cleared}");
    assert_eq!(cleared["nickname"], user.nickname.as_str());
}

#[tokio::test]
async fn patch_me_rejects_a_nickname_outside_1_to_10_characters() {
    let app = spawn_app().await;
    let user = app.signup().await;
    for nickname in ["", "abcdefghijk", "가나다라마바사아자차카"] {
        let response = app.patch_me(&user.access_token, &json!({ "nickname": nickname })).await;
        expect_field_error(response, "nickname").await;
    }
    let ten = app.patch_me(&user.access_token, &json!({"nickname": "abcdefghij"})).await;
    assert_eq!(expect_json(ten, 200).await["nickname"], "abcdefghij");
}

#[tokio::test]
async fn patch_me_rejects_a_birthday_that_is_malformed_or_in_the_future() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let tomorrow = (app.now() + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    for birthday in ["1992-13-01", "1992-02-30", "20/05/1992", "1992-05-20x", tomorrow.as_str()] {
        let response = app.patch_me(&user.access_token, &json!({ "birthday": birthday })).await;
        let error = expect_field_error(response, "birthday").await;
        assert!(error["fields"].get("nickname").is_none(), "{birthday}: {error}");
    }
}

#[tokio::test]
async fn patch_me_rejects_an_about_longer_than_200_characters() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let too_long = app.patch_me(&user.access_token, &json!({"about": "가".repeat(201)})).await;
    expect_field_error(too_long, "about").await;

    let longest = app.patch_me(&user.access_token, &json!({"about": "가".repeat(200)})).await;
    assert_eq!(expect_json(longest, 200).await["about"], "가".repeat(200));
}

#[tokio::test]
async fn patch_me_names_every_invalid_field_at_once() {
    let app = spawn_app().await;
    let user = app.signup().await;

    let response = app
        .patch_me(
            &user.access_token,
            &json!({"nickname": "", "birthday": "nope", "about": "x".repeat(201)}),
        )
        .await;

    let error = expect_field_error(response, "nickname").await;
    assert!(error["fields"]["birthday"].is_string(), "{error}");
    assert!(error["fields"]["about"].is_string(), "{error}");
    let me = expect_json(app.me(&user.access_token).await, 200).await;
    assert_eq!(me["nickname"], user.nickname.as_str(), "a rejected PATCH changed the profile");
}

#[tokio::test]
async fn patch_me_without_a_token_is_rejected_with_401() {
    let app = spawn_app().await;
    let response = app
        .send(app.client.patch(app.url("/me")).json(&json!({"nickname": unique_nickname()})))
        .await;
    expect_error(response, 401, "unauthorized").await;
}
