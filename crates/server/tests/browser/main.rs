//! The web UI in a real browser: headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `scripts/test.sh` installs) against a Surge server
//! started by each test. For every app the main flow end to end, the login and logout flow
//! (keyboard only), a CSRF attempt refused, and a screenshot of each main page, saved under
//! `target/browser-screenshots/` for a person to look at.
//!
//! The pages are one client of the API, so these run on the embedded backend only; the API
//! suite covers the backends.

#[allow(dead_code, unused_imports)]
#[path = "../api/helpers.rs"]
mod helpers;
mod webdriver;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use surge::demo::leetcode::{MockLeetCode, Mode};

use crate::helpers::{
    TestApp, TestUser, auction_body, expect_json, rfc3339, spawn_app_with, string,
};
use crate::webdriver::{Browser, Driver, WAIT, screenshot_path};

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// The server's origin, as the browser sees it.
fn origin(app: &TestApp) -> String {
    app.root_url("")
}

/// Signs `user` in through the login form, with the keyboard only: the email field, Tab to the
/// password, Enter to submit.
async fn log_in(browser: &Browser, app: &TestApp, user: &TestUser) {
    browser.goto(&format!("{}/#/login", origin(app))).await;
    browser.click("#login-form input[name=email]").await;
    browser.keys(&format!("{}\u{E004}{}\u{E007}", user.email, user.password)).await;
    browser.wait_text("#whoami", "the nickname", |text| text == user.nickname).await;
}

async fn spawn() -> TestApp {
    // Several browsers on one address: the cinema read limit is per address.
    spawn_app_with(|settings| settings.cinema.read_limit = 0).await
}

#[tokio::test]
async fn logging_in_and_out_with_the_keyboard_and_the_cookie_stays_out_of_reach() {
    let app = spawn().await;
    let user = app.signup().await;
    let driver = Driver::start().await;
    let browser = driver.browser(DESKTOP.0, DESKTOP.1).await;

    browser.goto(&format!("{}/", origin(&app))).await;
    browser.find("#login-link").await;
    browser.screenshot(&screenshot_path("home")).await;
    // The first Tab lands on the skip link.
    browser.keys("\u{E004}").await;
    let focused = browser.execute("return document.activeElement.className").await;
    assert_eq!(focused, "skip");

    log_in(&browser, &app, &user).await;
    let cookies = browser.execute("return document.cookie").await;
    assert!(
        !string(&cookies).contains("surge_session"),
        "the session cookie is HttpOnly: {cookies}"
    );
    browser.screenshot(&screenshot_path("signed-in")).await;

    browser.click("#logout").await;
    browser.find("#login-link").await;
    // The cookie is gone: the profile is refused.
    let me = browser.execute("return fetch('/api/v1/me').then(r => r.status)").await;
    assert_eq!(me, 401);
    browser.quit().await;
}

#[tokio::test]
async fn a_cross_site_request_with_the_session_cookie_is_refused() {
    let app = spawn().await;
    let user = app.signup().await;
    let draft = json!({"title": "Not yet", "content": "draft"});
    let created =
        expect_json(app.post_json("/articles", Some(&user.access_token), &draft).await, 201).await;
    let article = string(&created["id"]);

    let driver = Driver::start().await;
    let browser = driver.browser(DESKTOP.0, DESKTOP.1).await;
    log_in(&browser, &app, &user).await;
    // Another site (localhost is not 127.0.0.1) tries to publish the draft with the user's
    // cookie, the way a forged form or script would.
    let port = reqwest::Url::parse(&origin(&app)).unwrap().port().unwrap();
    browser.goto(&format!("http://localhost:{port}/")).await;
    let target = format!("{}/api/v1/articles/{article}/publish", origin(&app));
    let script = format!(
        "return fetch('{target}', {{method: 'POST', mode: 'no-cors', credentials: 'include'}}).then(() => 'sent', e => 'failed: ' + e)"
    );
    browser.execute(&script).await;
    let stored =
        expect_json(app.get_authed(&format!("/articles/{article}"), &user.access_token).await, 200)
            .await;
    assert_eq!(stored["status"], "draft", "the forged request changed nothing");
    browser.quit().await;

    // The server's own check, whatever the browser's cookie policy: the cookie with a foreign
    // Origin (or none) is 403 before any handler runs; the same from this origin works.
    let cookie = format!("surge_session={}", user.access_token);
    let publish = app.url(&format!("/articles/{article}/publish"));
    for forged in [Some("http://evil.example"), None] {
        let mut request = reqwest::Client::new().post(&publish).header("cookie", &cookie);
        if let Some(foreign) = forged {
            request = request.header("origin", foreign);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 403, "origin {forged:?}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf_rejected");
    }
    let own = reqwest::Client::new()
        .post(&publish)
        .header("cookie", &cookie)
        .header("origin", origin(&app));
    assert_eq!(own.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_bid_from_one_browser_appears_in_the_other_within_a_second() {
    let app = spawn().await;
    let seller = app.signup().await;
    let (ann, bob) = (app.signup().await, app.signup().await);
    let mut body = auction_body(app.now());
    body["extend_seconds"] = json!(60);
    let auction = string(&app.create_auction(&seller, body).await["id"]);
    let room = format!("{}/#/auctions/{auction}", origin(&app));

    let driver = Driver::start().await;
    let (first, second) =
        (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(PHONE.0, PHONE.1).await);
    log_in(&first, &app, &ann).await;
    log_in(&second, &app, &bob).await;
    first.goto(&room).await;
    second.goto(&room).await;
    first.wait_text("#price", "the starting price", |t| t == "1,000").await;
    second.wait_text("#price", "the starting price", |t| t == "1,000").await;
    second.find("#countdown").await;

    first.fill("#bid-amount", "1500").await;
    first.click("#bid-form button[type=submit]").await;
    first.wait_text("#price", "the new price", |t| t == "1,500").await;
    let seen = Instant::now();
    second.wait_text("#price", "the first browser's bid", |t| t == "1,500").await;
    assert!(
        seen.elapsed() <= Duration::from_secs(1),
        "the bid took {:?} to reach the other room",
        seen.elapsed()
    );
    second.wait_text("#leader", "the leader", |t| t == ann.nickname).await;
    second.wait_text("#bids", "the bid in the list", |t| t.contains("1,500")).await;

    // The next bid the form offers (and the least it allows) is the price plus the increment.
    let next = "return [document.querySelector('#bid-amount').value, document.querySelector('#bid-amount').min]";
    assert_eq!(second.execute(next).await, json!(["1600", "1600"]));
    first.screenshot(&screenshot_path("auction-room")).await;
    second.screenshot(&screenshot_path("auction-room-phone")).await;

    // The end: the winner shows in both rooms.
    app.advance(chrono::Duration::hours(2));
    first.wait_text("#outcome", "the winner", |t| t.contains(&ann.nickname)).await;
    second.wait_text("#outcome", "the winner", |t| t.contains(&ann.nickname)).await;
    first.quit().await;
    second.quit().await;
}

#[tokio::test]
async fn auctions_are_searched_and_created_with_an_image() {
    let app = spawn().await;
    let seller = app.signup().await;
    let driver = Driver::start().await;
    let browser = driver.browser(DESKTOP.0, DESKTOP.1).await;
    log_in(&browser, &app, &seller).await;
    browser.goto(&format!("{}/#/auctions/new", origin(&app))).await;
    browser.fill("#auction-form input[name=title]", "A <b>bold</b> teapot").await;
    let png = std::env::temp_dir().join(format!("surge-ui-{}.png", uuid::Uuid::now_v7()));
    std::fs::write(&png, helpers::PNG).unwrap();
    browser.fill("#auction-image", &png.display().to_string()).await;
    browser.wait_text("#auction-form .ok", "the upload", |t| t.contains("uploaded")).await;
    browser.click("#auction-form button[type=submit]").await;
    // The title is text, never markup.
    browser.wait_text("h1", "the room", |t| t == "A <b>bold</b> teapot").await;
    assert!(!browser.has("h1 b").await);
    assert!(browser.has(".thumbs img").await);

    browser.goto(&format!("{}/#/auctions?q=teapot", origin(&app))).await;
    browser.wait_text("#auction-list", "the search result", |t| t.contains("teapot")).await;
    browser.screenshot(&screenshot_path("auctions")).await;
    browser.quit().await;
    let _ = std::fs::remove_file(png);
}

/// A theater of 5×8, a movie and a screening tomorrow; the screening's id.
async fn screening(app: &TestApp) -> String {
    let admin = app.signup().await;
    let token = app.token_for(uuid::Uuid::parse_str(&admin.id).unwrap(), true);
    let post = |path: &'static str, body: Value| {
        let token = token.clone();
        async move {
            string(&expect_json(app.post_json(path, Some(&token), &body).await, 201).await["id"])
        }
    };
    let theater = post("/admin/theaters", json!({"name": "Hall 1", "rows": 5, "cols": 8})).await;
    let movie = post("/admin/movies", json!({"title": "The Rush", "grade": "ALL", "genre": "DRAMA",
        "release_date": "2026-11-20", "thumbnail_url": "https://img.example.com/rush.jpg", "running_minutes": 110})).await;
    let starts = app.now() + chrono::Duration::days(1);
    post(
        "/admin/screenings",
        json!({"movie_id": movie, "theater_id": theater, "starts_at": rfc3339(starts)}),
    )
    .await
}

#[tokio::test]
async fn a_seat_picked_in_one_browser_shows_as_taken_in_the_other() {
    let app = spawn().await;
    let screening = screening(&app).await;
    let (ann, bob) = (app.signup().await, app.signup().await);
    let driver = Driver::start().await;
    let (first, second) =
        (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(DESKTOP.0, DESKTOP.1).await);
    log_in(&first, &app, &ann).await;
    log_in(&second, &app, &bob).await;

    first.goto(&format!("{}/#/cinema", origin(&app))).await;
    first.wait_text("#movies", "the movie", |t| t.contains("The Rush")).await;
    first.screenshot(&screenshot_path("cinema-now-showing")).await;
    let map = format!("{}/#/cinema/screenings/{screening}", origin(&app));
    first.goto(&map).await;
    second.goto(&map).await;
    first.click("[data-seat=B3]").await;
    first.click("[data-seat=B4]").await;
    first.wait_text("#reserve", "the picked seats", |t| t == "Reserve B3, B4").await;
    first.screenshot(&screenshot_path("seat-map-picking")).await;
    first.click("#reserve").await;
    first.wait_text("#seat-status", "the reservation", |t| t.contains("Reserved B3, B4")).await;

    let taken = "return document.querySelector('[data-seat=B3]').disabled && document.querySelector('[data-seat=B4]').disabled";
    let started = Instant::now();
    while second.execute(taken).await != true {
        assert!(started.elapsed() < WAIT, "B3 and B4 never showed as taken in the other browser");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.screenshot(&screenshot_path("seat-map")).await;

    first.goto(&format!("{}/#/cinema/reservations", origin(&app))).await;
    first.wait_text("#reservations", "the reservation", |t| t.contains("B3, B4")).await;
    first.click("#reservations button").await;
    first.wait_text("#toast", "the cancellation", |t| t.contains("cancelled")).await;
    let seats = app.get_json(&format!("/screenings/{screening}/seats")).await;
    assert!(seats["seats"].as_array().unwrap().iter().all(|s| s["taken"] == false), "{seats}");
    first.quit().await;
    second.quit().await;
}

#[tokio::test]
async fn an_order_placed_shows_on_the_owner_dashboard() {
    let app = spawn().await;
    let (owner, buyer) = (app.signup().await, app.signup().await);
    let store = json!({"name": "Corner Bakery", "category": "dessert", "lat": 37.5663, "lng": 126.9779, "address": "1 Main St"});
    let store = string(
        &expect_json(app.post_json("/stores", Some(&owner.access_token), &store).await, 201).await
            ["id"],
    );
    let deal = json!({"title": "Last 10 boxes", "original_price": 10000, "deal_price": 5000, "quantity": 10,
        "per_user_limit": 2, "starts_at": rfc3339(app.now() - chrono::Duration::minutes(1)),
        "ends_at": rfc3339(app.now() + chrono::Duration::hours(2))});
    let path = format!("/stores/{store}/deals");
    let deal = string(
        &expect_json(app.post_json(&path, Some(&owner.access_token), &deal).await, 201).await["id"],
    );
    let top_up = json!({"amount": 20000});
    expect_json(app.post_json("/me/points/top-up", Some(&buyer.access_token), &top_up).await, 200)
        .await;

    let driver = Driver::start().await;
    let (owners, buyers) =
        (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(PHONE.0, PHONE.1).await);
    log_in(&owners, &app, &owner).await;
    log_in(&buyers, &app, &buyer).await;
    owners.goto(&format!("{}/#/stores/{store}/dashboard", origin(&app))).await;
    owners.find("#orders").await;

    buyers.goto(&format!("{}/#/deals?lat=37.567&lng=126.978&radius_m=2000", origin(&app))).await;
    buyers
        .wait_text("#stores", "the store nearby", |t| {
            t.contains("Corner Bakery") && t.contains("1 live deal")
        })
        .await;
    buyers.screenshot(&screenshot_path("deals-nearby")).await;
    buyers.goto(&format!("{}/#/deals/{deal}", origin(&app))).await;
    buyers.fill("#order-form input[name=quantity]", "2").await;
    buyers.click("#order-form button[type=submit]").await;
    buyers.wait_text("#remaining", "the stock after the order", |t| t == "8").await;
    buyers.wait_text("#my-orders", "the order", |t| t.contains("10,000 points left")).await;
    buyers.screenshot(&screenshot_path("deal")).await;

    owners
        .wait_text("#orders", "the live order", |t| t.contains("10,000") && t.contains("confirmed"))
        .await;
    owners.click("#orders button").await;
    owners.wait_text("#orders", "the pickup", |t| t.contains("picked_up")).await;
    owners.screenshot(&screenshot_path("owner-dashboard")).await;
    owners.quit().await;
    buyers.quit().await;
}

#[tokio::test]
async fn a_pending_rating_resolves_by_itself() {
    let stand = MockLeetCode::start(([127, 0, 0, 1], 0).into()).await.unwrap();
    let url = stand.url();
    let app = spawn_app_with(move |settings| {
        settings.ratings.upstream_url = url;
        settings.ratings.upstream_timeout_ms = 300;
        settings.ratings.retry_base_ms = 200;
        settings.ratings.upstream_per_second = 10_000;
    })
    .await;
    stand.set(Mode::Down, Duration::ZERO);
    let driver = Driver::start().await;
    let browser = driver.browser(DESKTOP.0, DESKTOP.1).await;
    browser.goto(&format!("{}/#/ratings", origin(&app))).await;
    browser.fill("#lookup-form input[name=slug]", "two-sum").await;
    browser.click("#lookup-form button").await;
    browser.wait_text("#pending", "the pending state", |t| t.contains("two-sum")).await;
    stand.set(Mode::Normal, Duration::ZERO);
    browser
        .wait_text("#problem", "the problem, without another click", |t| t.contains("Two Sum"))
        .await;
    browser.screenshot(&screenshot_path("ratings")).await;
    // The list knows it now, and filters.
    browser.goto(&format!("{}/#/ratings?sort=-rating", origin(&app))).await;
    browser.wait_text("#problems", "the known problem", |t| t.contains("Two Sum")).await;
    browser.quit().await;
}

#[tokio::test]
async fn an_article_is_written_published_liked_and_ranked() {
    let app = spawn().await;
    let (author, reader) = (app.signup().await, app.signup().await);
    let driver = Driver::start().await;
    let (writes, reads) =
        (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(DESKTOP.0, DESKTOP.1).await);
    log_in(&writes, &app, &author).await;
    log_in(&reads, &app, &reader).await;

    writes.goto(&format!("{}/#/articles/new", origin(&app))).await;
    writes.fill("#article-form input[name=title]", "Flash traffic").await;
    writes.fill("#article-form textarea", "Everyone at once.\n<script>alert(1)</script>").await;
    writes.click("#article-form button[type=submit]").await;
    writes.wait_text("#article-status", "the draft", |t| t == "Status: draft").await;
    writes.screenshot(&screenshot_path("article-editor")).await;
    // The editor's address names the saved article.
    let hash = string(&writes.execute("return location.hash").await);
    let id = hash.trim_start_matches("#/articles/").trim_end_matches("/edit").to_owned();
    assert_eq!(hash, format!("#/articles/{id}/edit"));
    // A draft is not there for others.
    reads.goto(&format!("{}/#/articles/{id}", origin(&app))).await;
    reads.wait_text("main .error", "the 404", |t| !t.is_empty()).await;

    writes.click("#publish").await;
    writes.wait_text("#article-status", "published", |t| t == "Status: published").await;
    reads.goto(&format!("{}/#/social", origin(&app))).await;
    reads.goto(&format!("{}/#/articles/{id}", origin(&app))).await;
    reads
        .wait_text("#content", "the text, as text", |t| t.contains("<script>alert(1)</script>"))
        .await;
    reads.click("#like").await;
    reads.wait_text("#like-count", "the like", |t| t == "1").await;
    reads.screenshot(&screenshot_path("article")).await;

    // Top-liked shows it within a second (its cache lives half that).
    tokio::time::sleep(Duration::from_millis(600)).await;
    reads.goto(&format!("{}/#/social", origin(&app))).await;
    reads
        .wait_text("#top-liked", "the liked article", |t| {
            t.contains("Flash traffic") && t.contains("1 like")
        })
        .await;
    reads.screenshot(&screenshot_path("social-feed")).await;

    // Withdrawn: gone for the reader.
    writes.click("#withdraw").await;
    writes.wait_text("#article-status", "withdrawn", |t| t == "Status: private").await;
    reads.goto(&format!("{}/#/articles/{id}", origin(&app))).await;
    reads.wait_text("main .error", "the 404", |t| !t.is_empty()).await;
    writes.quit().await;
    reads.quit().await;
}

#[tokio::test]
async fn the_page_and_its_assets_carry_the_policy_and_cache_headers() {
    let app = spawn().await;
    let page = reqwest::get(format!("{}/", origin(&app))).await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    let script = html.split("<script src=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let asset = reqwest::Client::new()
        .get(format!("{}{script}", origin(&app)))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(asset.headers()["content-encoding"], "gzip");
    let stale =
        reqwest::get(format!("{}/assets/app.0000000000000000.js", origin(&app))).await.unwrap();
    assert_eq!(stale.status(), 404);
}
