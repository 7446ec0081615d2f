//! Cinema: the admin catalog, "now showing", seat maps, reservations and their limits, every
//! row of the API table and each of its error codes.

pub mod rush;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    QuickUser, TestApp, expect_error, expect_field_error, expect_json, expect_rate_limited, header,
    spawn_app, spawn_app_with, status_and_json, string,
};

/// A server with an admin and one 5 × 5 theater showing one movie an hour from now.
struct Cinema {
    app: TestApp,
    admin: String,
    theater: String,
    movie: String,
    screening: String,
    starts_at: DateTime<Utc>,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn movie_body(title: &str, genre: &str, release_date: &str) -> Value {
    json!({
        "title": title,
        "grade": "TWELVE",
        "genre": genre,
        "release_date": release_date,
        "thumbnail_url": "https://img.example.com/poster.jpg",
        "running_minutes": 120,
    })
}

impl Cinema {
    async fn open() -> Cinema {
        Self::open_with(spawn_app().await).await
    }

    async fn open_with(app: TestApp) -> Cinema {
        let admin_user = app.quick_users(1).await.remove(0);
        let admin = app.token_for(Uuid::parse_str(&admin_user.id).unwrap(), true);
        let theater = theater(&app, &admin, "Hall 1", 5, 5).await;
        let movie = movie(&app, &admin, "Dune: Part Two", "SF", "2024-02-28").await;
        let starts_at = app.now() + Duration::hours(1);
        let screening = screening(&app, &admin, &movie, &theater, starts_at).await;
        Cinema { app, admin, theater, movie, screening, starts_at }
    }

    async fn reserve(&self, user: &QuickUser, seats: &[&str]) -> Response {
        reserve(&self.app, user, &self.screening, seats).await
    }

    async fn seat_map(&self) -> Value {
        self.app.get_json(&format!("/screenings/{}/seats", self.screening)).await
    }

    async fn taken(&self) -> Vec<String> {
        let map = self.seat_map().await;
        map["seats"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|seat| seat["taken"] == true)
            .map(|seat| string(&seat["code"]))
            .collect()
    }

    /// A fresh token for `user` after the clock has moved past the old one's expiry.
    fn refreshed(&self, user: &QuickUser) -> QuickUser {
        let token = self.app.token_for(Uuid::parse_str(&user.id).unwrap(), false);
        QuickUser { id: user.id.clone(), token }
    }
}

async fn theater(app: &TestApp, admin: &str, name: &str, rows: i64, cols: i64) -> String {
    let body = json!({"name": name, "rows": rows, "cols": cols});
    let created =
        expect_json(app.post_json("/admin/theaters", Some(admin), &body).await, 201).await;
    string(&created["id"])
}

async fn movie(app: &TestApp, admin: &str, title: &str, genre: &str, released: &str) -> String {
    let body = movie_body(title, genre, released);
    let created = expect_json(app.post_json("/admin/movies", Some(admin), &body).await, 201).await;
    string(&created["id"])
}

async fn screening(
    app: &TestApp,
    admin: &str,
    movie: &str,
    theater: &str,
    starts_at: DateTime<Utc>,
) -> String {
    let body = json!({"movie_id": movie, "theater_id": theater, "starts_at": rfc3339(starts_at)});
    let response = app.post_json("/admin/screenings", Some(admin), &body).await;
    string(&expect_json(response, 201).await["id"])
}

async fn reserve(app: &TestApp, user: &QuickUser, screening: &str, seats: &[&str]) -> Response {
    let body = json!({"screening_id": screening, "seats": seats});
    app.post_json("/reservations", Some(&user.token), &body).await
}

async fn now_showing(app: &TestApp, query: &str) -> Vec<Value> {
    let body = app.get_json(&format!("/movies{query}")).await;
    body["items"].as_array().unwrap().clone()
}

/// `/me/reservations` once it lists `count` reservations: on the distributed backend the list is
/// read from PostgreSQL, which trails an acknowledged reservation by the persister's latency.
async fn my_reservations(app: &TestApp, user: &QuickUser, query: &str, count: usize) -> Value {
    let started = std::time::Instant::now();
    loop {
        let path = format!("/me/reservations{query}");
        let page = expect_json(app.get_authed(&path, &user.token).await, 200).await;
        if page["items"].as_array().unwrap().len() == count {
            return page;
        }
        assert!(started.elapsed() < crate::helpers::EVENT_TIMEOUT, "never got {count}: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn titles(items: &[Value]) -> Vec<String> {
    items.iter().map(|item| string(&item["title"])).collect()
}

// ---- the admin catalog ----

#[tokio::test]
async fn an_admin_builds_the_catalog_and_it_shows_as_now_showing() {
    let cinema = Cinema::open().await;
    let items = now_showing(&cinema.app, "").await;
    assert_eq!(items.len(), 1);
    let movie = &items[0];
    assert_eq!(movie["id"], cinema.movie.as_str());
    assert_eq!(movie["title"], "Dune: Part Two");
    assert_eq!((movie["grade"].as_str(), movie["genre"].as_str()), (Some("TWELVE"), Some("SF")));
    assert_eq!(movie["release_date"], "2024-02-28");
    assert_eq!(movie["running_minutes"], 120);
    assert_eq!(movie["thumbnail_url"], "https://img.example.com/poster.jpg");
    let slot = &movie["screenings"][0];
    assert_eq!(slot["id"], cinema.screening.as_str());
    assert_eq!(slot["theater"], json!({"id": cinema.theater, "name": "Hall 1"}));
    let starts: DateTime<Utc> = string(&slot["starts_at"]).parse().unwrap();
    let ends: DateTime<Utc> = string(&slot["ends_at"]).parse().unwrap();
    assert_eq!(starts, cinema.starts_at);
    assert_eq!(ends - starts, Duration::minutes(120), "ends_at = start + running time");
}

#[tokio::test]
async fn admin_endpoints_need_an_admin() {
    let cinema = Cinema::open().await;
    let user = cinema.app.quick_users(1).await.remove(0);
    let theater = json!({"name": "Hall 2", "rows": 5, "cols": 5});
    let movie = movie_body("Heat", "ACTION", "1995-12-15");
    let screening = json!({"movie_id": cinema.movie, "theater_id": cinema.theater,
        "starts_at": rfc3339(cinema.starts_at + Duration::days(1))});
    for (path, body) in [
        ("/admin/theaters", &theater),
        ("/admin/movies", &movie),
        ("/admin/screenings", &screening),
    ] {
        let forbidden = cinema.app.post_json(path, Some(&user.token), body).await;
        expect_error(forbidden, 403, "forbidden").await;
        expect_error(cinema.app.post_json(path, None, body).await, 401, "unauthorized").await;
    }
}

/// Signing up grants nothing, whatever the address; an operator grants admin rights to an
/// existing account (`surge admin grant`, which writes this very role), effective at its next
/// login.
#[tokio::test]
async fn admins_are_granted_to_existing_accounts_never_by_signing_up() {
    let app = spawn_app().await;
    let boss = app.signup_user("boss@cinema.test", crate::helpers::PASSWORD, "boss").await;
    let me = expect_json(app.me(&boss.access_token).await, 200).await;
    assert_eq!(me["roles"], json!([]));
    let body = json!({"name": "Hall 1", "rows": 5, "cols": 5});
    let refused = app.post_json("/admin/theaters", Some(&boss.access_token), &body).await;
    expect_error(refused, 403, "forbidden").await;

    app.state.users.set_role("boss@cinema.test", "admin", true, app.now()).await.unwrap();
    let boss = app.login_again(&boss).await;
    let me = expect_json(app.me(&boss.access_token).await, 200).await;
    assert_eq!(me["roles"], json!(["admin"]));
    let created = app.post_json("/admin/theaters", Some(&boss.access_token), &body).await;
    expect_json(created, 201).await;
    let other = app.signup().await;
    let refused = app.post_json("/admin/theaters", Some(&other.access_token), &body).await;
    expect_error(refused, 403, "forbidden").await;
}

#[tokio::test]
async fn admin_input_is_validated_field_by_field() {
    let cinema = Cinema::open().await;
    let (app, admin) = (&cinema.app, Some(cinema.admin.as_str()));
    for (body, field) in [
        (json!({"name": "", "rows": 5, "cols": 5}), "name"),
        (json!({"name": "Big", "rows": 27, "cols": 5}), "rows"),
        (json!({"name": "Big", "rows": 5, "cols": 51}), "cols"),
        (json!({"name": "Big", "rows": 0, "cols": 5}), "rows"),
        (json!({"name": "Big", "rows": 5, "cols": 0}), "cols"),
    ] {
        expect_field_error(app.post_json("/admin/theaters", admin, &body).await, field).await;
    }
    let mut wrong_genre = movie_body("Heat", "WESTERN", "1995-12-15");
    let mut wrong_grade = movie_body("Heat", "ACTION", "1995-12-15");
    wrong_grade["grade"] = json!("PG");
    let mut no_length = movie_body("Heat", "ACTION", "1995-12-15");
    no_length["running_minutes"] = json!(0);
    let mut bad_url = movie_body("Heat", "ACTION", "1995-12-15");
    bad_url["thumbnail_url"] = json!("javascript:alert(1)");
    let bad_date = movie_body("Heat", "ACTION", "15/12/1995");
    let long_title = movie_body(&"x".repeat(256), "ACTION", "1995-12-15");
    for (body, field) in [
        (&wrong_genre, "genre"),
        (&wrong_grade, "grade"),
        (&no_length, "running_minutes"),
        (&bad_url, "thumbnail_url"),
        (&bad_date, "release_date"),
        (&long_title, "title"),
    ] {
        expect_field_error(app.post_json("/admin/movies", admin, body).await, field).await;
    }
    wrong_genre["genre"] = json!("action");
    expect_json(app.post_json("/admin/movies", admin, &wrong_genre).await, 201).await;

    let later = rfc3339(cinema.starts_at + Duration::days(1));
    for (body, field) in [
        (
            json!({"movie_id": Uuid::now_v7(), "theater_id": cinema.theater, "starts_at": later}),
            "movie_id",
        ),
        (
            json!({"movie_id": cinema.movie, "theater_id": Uuid::now_v7(), "starts_at": later}),
            "theater_id",
        ),
        (
            json!({"movie_id": cinema.movie, "theater_id": cinema.theater,
            "starts_at": rfc3339(app.now() - Duration::minutes(1))}),
            "starts_at",
        ),
    ] {
        expect_field_error(app.post_json("/admin/screenings", admin, &body).await, field).await;
    }
}

#[tokio::test]
async fn screenings_in_one_theater_may_not_overlap() {
    let cinema = Cinema::open().await;
    let (app, admin) = (&cinema.app, cinema.admin.as_str());
    // The first screening runs 120 minutes from `starts_at`.
    let overlapping = json!({"movie_id": cinema.movie, "theater_id": cinema.theater,
        "starts_at": rfc3339(cinema.starts_at + Duration::minutes(119))});
    let refused = app.post_json("/admin/screenings", Some(admin), &overlapping).await;
    expect_error(refused, 409, "screening_overlap").await;
    // Back to back is fine, and so is the same time in another theater.
    screening(app, admin, &cinema.movie, &cinema.theater, cinema.starts_at + Duration::hours(2))
        .await;
    let other = theater(app, admin, "Hall 2", 5, 5).await;
    screening(app, admin, &cinema.movie, &other, cinema.starts_at).await;
}

// ---- now showing ----

#[tokio::test]
async fn now_showing_filters_by_title_and_genre_and_orders_by_release() {
    let cinema = Cinema::open().await;
    let (app, admin) = (&cinema.app, cinema.admin.as_str());
    let soon = cinema.starts_at;
    // Each movie in a hall of its own, its later screening scheduled first.
    let show = |title: &'static str, genre: &'static str, released: &'static str| async move {
        let theater = theater(app, admin, &format!("Hall x{title}"), 5, 5).await;
        let movie = movie(app, admin, title, genre, released).await;
        screening(app, admin, &movie, &theater, soon + Duration::hours(3)).await;
        screening(app, admin, &movie, &theater, soon).await;
        movie
    };
    show("Alien", "HORROR", "1979-05-25").await;
    show("Aliens", "SF", "1986-07-18").await;
    show("Amélie", "ROMANCE", "2001-04-25").await;
    // Not showing: no screening at all, or only just after the 7-day window (the server's
    // clock runs on in real time, so the edges are a minute wide).
    movie(app, admin, "Alien³", "SF", "1992-05-22").await;
    let late_theater = theater(app, admin, "Late", 5, 5).await;
    let late = movie(app, admin, "Alien: Late", "SF", "2030-01-01").await;
    let late_start = app.now() + Duration::days(7) + Duration::minutes(1);
    screening(app, admin, &late, &late_theater, late_start).await;
    let edge = movie(app, admin, "Alien: Edge", "SF", "2029-01-01").await;
    let edge_theater = theater(app, admin, "Edge", 5, 5).await;
    let edge_start = app.now() + Duration::days(7) - Duration::minutes(1);
    screening(app, admin, &edge, &edge_theater, edge_start).await;

    let all = now_showing(app, "").await;
    let expected = ["Alien: Edge", "Dune: Part Two", "Amélie", "Aliens", "Alien"];
    assert_eq!(titles(&all), expected, "newest release first, the 7-day window's end excluded");
    let starts: Vec<DateTime<Utc>> = all[4]["screenings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| string(&s["starts_at"]).parse().unwrap())
        .collect();
    assert_eq!(starts, [soon, soon + Duration::hours(3)], "screenings by start time");
    assert_eq!(titles(&now_showing(app, "?title=ALIEN").await), ["Alien: Edge", "Aliens", "Alien"]);
    assert_eq!(titles(&now_showing(app, "?title=am%C3%89lie").await), ["Amélie"]);
    let sf = titles(&now_showing(app, "?genre=SF").await);
    assert_eq!(sf, ["Alien: Edge", "Dune: Part Two", "Aliens"]);
    assert_eq!(titles(&now_showing(app, "?title=alien&genre=HORROR").await), ["Alien"]);
    assert!(now_showing(app, "?title=zzz").await.is_empty());
    assert_eq!(now_showing(app, "?title=&genre=").await.len(), 5, "empty filters are no filters");
}

#[tokio::test]
async fn bad_now_showing_filters_are_422() {
    let cinema = Cinema::open().await;
    expect_field_error(cinema.app.get("/movies?genre=WESTERN").await, "genre").await;
    let long = "x".repeat(256);
    expect_field_error(cinema.app.get(&format!("/movies?title={long}")).await, "title").await;
    let exactly = "x".repeat(255);
    expect_json(cinema.app.get(&format!("/movies?title={exactly}")).await, 200).await;
}

#[tokio::test]
async fn an_admin_change_reaches_the_cached_list_at_once() {
    let cinema = Cinema::open().await;
    let (app, admin) = (&cinema.app, cinema.admin.as_str());
    assert_eq!(titles(&now_showing(app, "?genre=DRAMA").await), Vec::<String>::new());
    assert_eq!(now_showing(app, "").await.len(), 1);
    let movie = movie(app, admin, "Past Lives", "DRAMA", "2023-06-02").await;
    screening(app, admin, &movie, &cinema.theater, cinema.starts_at + Duration::hours(3)).await;
    assert_eq!(titles(&now_showing(app, "?genre=DRAMA").await), ["Past Lives"]);
    assert_eq!(now_showing(app, "").await.len(), 2);
}

// ---- seat maps ----

#[tokio::test]
async fn a_seat_map_lists_every_seat_row_by_row() {
    let cinema = Cinema::open().await;
    let map = cinema.seat_map().await;
    assert_eq!((map["rows"].as_i64(), map["cols"].as_i64()), (Some(5), Some(5)));
    assert_eq!(map["screening_id"], cinema.screening.as_str());
    let codes: Vec<String> =
        map["seats"].as_array().unwrap().iter().map(|s| string(&s["code"])).collect();
    assert_eq!(codes.len(), 25);
    assert_eq!(
        (&codes[0][..], &codes[4][..], &codes[5][..], &codes[24][..]),
        ("A1", "A5", "B1", "E5")
    );
    assert!(cinema.taken().await.is_empty());
    expect_error(
        cinema.app.get(&format!("/screenings/{}/seats", Uuid::now_v7())).await,
        404,
        "not_found",
    )
    .await;
}

// ---- reservations ----

#[tokio::test]
async fn a_reservation_takes_its_seats_and_cancelling_frees_them() {
    let cinema = Cinema::open().await;
    let user = cinema.app.quick_users(1).await.remove(0);
    let response = cinema.reserve(&user, &["b4", "B3"]).await;
    assert!(header(&response, "location").starts_with("/api/v1/reservations/"));
    let reservation = expect_json(response, 201).await;
    assert_eq!(reservation["screening_id"], cinema.screening.as_str());
    assert_eq!(reservation["seats"], json!(["B3", "B4"]));
    assert!(string(&reservation["created_at"]).parse::<DateTime<Utc>>().is_ok());
    assert_eq!(cinema.taken().await, ["B3", "B4"]);

    let mine = my_reservations(&cinema.app, &user, "", 1).await;
    assert_eq!(mine["items"][0]["id"], reservation["id"]);
    assert_eq!(mine["items"][0]["seats"], json!(["B3", "B4"]));

    let path = format!("/reservations/{}", string(&reservation["id"]));
    let stranger = cinema.app.quick_users(1).await.remove(0);
    let delete = |token: String| {
        let request = cinema.app.client.delete(cinema.app.url(&path)).bearer_auth(token);
        cinema.app.send(request)
    };
    expect_error(delete(stranger.token.clone()).await, 404, "not_found").await;
    assert_eq!(delete(user.token.clone()).await.status(), 204);
    assert!(cinema.taken().await.is_empty());
    expect_error(delete(user.token.clone()).await, 404, "not_found").await;
    my_reservations(&cinema.app, &user, "", 0).await;
    let unknown = format!("/reservations/{}", Uuid::now_v7());
    let request = cinema.app.client.delete(cinema.app.url(&unknown)).bearer_auth(&user.token);
    expect_error(cinema.app.send(request).await, 404, "not_found").await;
    // The freed seats can be taken by someone else; cancelling did not reset the user's
    // cooldown (one successful reservation per 5 minutes, cancelled or not).
    expect_json(cinema.reserve(&stranger, &["B3", "B4", "B5"]).await, 201).await;
    expect_rate_limited(cinema.reserve(&user, &["A1"]).await).await;
}

#[tokio::test]
async fn bad_seat_requests_are_422_and_take_nothing() {
    let cinema = Cinema::open().await;
    let user = cinema.app.quick_users(1).await.remove(0);
    for seats in [
        &[][..],
        &["A1", "A2", "A3", "A4", "A5", "B1"][..],
        &["A1", "B2"][..],
        &["A1", "A3"][..],
        &["A1", "A1"][..],
        &["F1"][..],
        &["A6"][..],
        &["A0"][..],
        &["1A"][..],
    ] {
        expect_field_error(cinema.reserve(&user, seats).await, "seats").await;
    }
    let body = json!({"screening_id": cinema.screening, "seats": "A1"});
    expect_field_error(
        cinema.app.post_json("/reservations", Some(&user.token), &body).await,
        "seats",
    )
    .await;
    let unknown = reserve(&cinema.app, &user, &Uuid::now_v7().to_string(), &["A1"]).await;
    expect_error(unknown, 404, "not_found").await;
    let anonymous = json!({"screening_id": cinema.screening, "seats": ["A1"]});
    expect_error(
        cinema.app.post_json("/reservations", None, &anonymous).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(cinema.taken().await.is_empty());
    // None of those used up the user's reservation.
    expect_json(cinema.reserve(&user, &["A1"]).await, 201).await;
}

#[tokio::test]
async fn taken_seats_are_named_and_nothing_is_half_reserved() {
    let cinema = Cinema::open().await;
    let [first, second] = <[QuickUser; 2]>::try_from(cinema.app.quick_users(2).await).unwrap();
    expect_json(cinema.reserve(&first, &["C2", "C3"]).await, 201).await;
    let refused =
        expect_error(cinema.reserve(&second, &["C1", "C2", "C3", "C4"]).await, 409, "seats_taken")
            .await;
    assert_eq!(refused["taken"], json!(["C2", "C3"]));
    assert_eq!(cinema.taken().await, ["C2", "C3"], "C1 and C4 stay free: all or nothing");
    // A refusal does not use up the cooldown: the same user reserves at once.
    expect_json(cinema.reserve(&second, &["C4", "C5"]).await, 201).await;
}

#[tokio::test]
async fn a_user_holds_at_most_five_seats_of_a_screening() {
    let cinema = Cinema::open().await;
    let user = cinema.app.quick_users(1).await.remove(0);
    expect_json(cinema.reserve(&user, &["A1", "A2", "A3"]).await, 201).await;
    cinema.app.advance(Duration::minutes(5));
    let user = cinema.refreshed(&user);
    let refused =
        expect_error(cinema.reserve(&user, &["B1", "B2", "B3"]).await, 409, "user_seat_limit")
            .await;
    assert_eq!(refused["held"], 3);
    expect_json(cinema.reserve(&user, &["B1", "B2"]).await, 201).await;
    cinema.app.advance(Duration::minutes(5));
    let user = cinema.refreshed(&user);
    expect_error(cinema.reserve(&user, &["E5"]).await, 409, "user_seat_limit").await;
    assert_eq!(cinema.taken().await.len(), 5);
}

#[tokio::test]
async fn one_successful_reservation_per_user_and_screening_per_five_minutes() {
    let cinema = Cinema::open().await;
    let user = cinema.app.quick_users(1).await.remove(0);
    expect_json(cinema.reserve(&user, &["A1"]).await, 201).await;
    cinema.app.advance(Duration::seconds(299));
    let retry_after = expect_rate_limited(cinema.reserve(&user, &["A2"]).await).await;
    assert_eq!(retry_after, 1);
    // Another screening is not affected.
    let other = screening(
        &cinema.app,
        &cinema.admin,
        &cinema.movie,
        &cinema.theater,
        cinema.starts_at + Duration::hours(3),
    )
    .await;
    expect_json(reserve(&cinema.app, &user, &other, &["A1"]).await, 201).await;
    cinema.app.advance(Duration::seconds(1));
    expect_json(cinema.reserve(&user, &["A2"]).await, 201).await;
}

#[tokio::test]
async fn nothing_is_reserved_or_cancelled_once_the_screening_has_started() {
    let cinema = Cinema::open().await;
    let [early, late] = <[QuickUser; 2]>::try_from(cinema.app.quick_users(2).await).unwrap();
    let reservation = expect_json(cinema.reserve(&early, &["D1"]).await, 201).await;
    cinema.app.advance(Duration::hours(1));
    let (early, late) = (cinema.refreshed(&early), cinema.refreshed(&late));
    expect_error(cinema.reserve(&late, &["D3"]).await, 409, "screening_started").await;
    let path = format!("/reservations/{}", string(&reservation["id"]));
    let request = cinema.app.client.delete(cinema.app.url(&path)).bearer_auth(&early.token);
    expect_error(cinema.app.send(request).await, 409, "screening_started").await;
    assert_eq!(cinema.taken().await, ["D1"]);
}

#[tokio::test]
async fn a_retried_reservation_with_its_key_is_made_once() {
    let cinema = Cinema::open().await;
    let user = cinema.app.quick_users(1).await.remove(0);
    let send = |seats: Value| {
        let body = json!({"screening_id": cinema.screening, "seats": seats});
        let request = cinema
            .app
            .client
            .post(cinema.app.url("/reservations"))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", "seat-retry-1")
            .json(&body);
        cinema.app.send(request)
    };
    let first = expect_json(send(json!(["E1", "E2"])).await, 201).await;
    let again = expect_json(send(json!(["E1", "E2"])).await, 201).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["created_at"], again["created_at"]);
    expect_error(send(json!(["E3"])).await, 422, "idempotency_key_reused").await;
    assert_eq!(cinema.taken().await, ["E1", "E2"]);
    my_reservations(&cinema.app, &user, "", 1).await;
}

#[tokio::test]
async fn my_reservations_come_in_pages_newest_first() {
    let cinema = Cinema::open().await;
    let user = cinema.app.quick_users(1).await.remove(0);
    let mut made = Vec::new();
    for hours in 0..3 {
        let other = screening(
            &cinema.app,
            &cinema.admin,
            &cinema.movie,
            &cinema.theater,
            cinema.starts_at + Duration::hours(3 + 3 * hours),
        )
        .await;
        let reservation =
            expect_json(reserve(&cinema.app, &user, &other, &["A1"]).await, 201).await;
        made.push(string(&reservation["id"]));
    }
    made.reverse();
    my_reservations(&cinema.app, &user, "", 3).await;
    let first = my_reservations(&cinema.app, &user, "?limit=2", 2).await;
    let ids: Vec<String> =
        first["items"].as_array().unwrap().iter().map(|r| string(&r["id"])).collect();
    assert_eq!(ids, made[..2]);
    let cursor = string(&first["next_cursor"]);
    let path = format!("/me/reservations?limit=2&cursor={cursor}");
    let second = expect_json(cinema.app.get_authed(&path, &user.token).await, 200).await;
    assert_eq!(second["items"][0]["id"], made[2].as_str());
    assert!(second["next_cursor"].is_null());
    let (status, _) = status_and_json(cinema.app.get("/me/reservations").await).await;
    assert_eq!(status, 401);
    for (query, field) in
        [("?limit=0", "limit"), ("?limit=101", "limit"), ("?cursor=nope", "cursor")]
    {
        let path = format!("/me/reservations{query}");
        expect_field_error(cinema.app.get_authed(&path, &user.token).await, field).await;
    }
}

// ---- the read limit ----

#[tokio::test]
async fn an_address_over_fifty_reads_a_minute_is_blocked_for_an_hour() {
    let cinema = Cinema::open().await;
    let seats = format!("/screenings/{}/seats", cinema.screening);
    // Opening the cinema made no reads; the 50 allowed reads mix both endpoints.
    for n in 1..=50 {
        let path = if n % 2 == 0 { "/movies" } else { seats.as_str() };
        let response = cinema.app.get(path).await;
        assert_eq!(response.status(), 200, "read {n} must pass");
    }
    let retry_after = expect_rate_limited(cinema.app.get("/movies").await).await;
    assert_eq!(retry_after, 3600);
    cinema.app.advance(Duration::minutes(59));
    let retry_after = expect_rate_limited(cinema.app.get(&seats).await).await;
    assert_eq!(retry_after, 60, "blocked for the whole hour, whatever the quota says");
    cinema.app.advance(Duration::minutes(1));
    expect_json(cinema.app.get("/movies").await, 200).await;
    expect_json(cinema.app.get(&seats).await, 200).await;
    // Other endpoints were never limited by it.
    expect_json(cinema.app.get("/auctions").await, 200).await;
}

#[tokio::test]
async fn fifty_one_reads_spread_over_a_minute_still_block_the_address() {
    let cinema = Cinema::open().await;
    // One read every 1.18 s: a rate-based limit would let this go on for ever.
    for n in 0..50 {
        expect_json(cinema.app.get("/movies").await, 200).await;
        if n < 49 {
            cinema.app.advance(Duration::milliseconds(1_180));
        }
    }
    cinema.app.advance(Duration::milliseconds(1_000));
    assert_eq!(expect_rate_limited(cinema.app.get("/movies").await).await, 3600);
    // Reserving is not a read: it is not blocked.
    let user = cinema.app.quick_users(1).await.remove(0);
    expect_json(cinema.reserve(&user, &["A1"]).await, 201).await;
}

#[tokio::test]
async fn the_read_limit_is_configurable() {
    let app = spawn_app_with(|settings| {
        settings.cinema.read_limit = 3;
        settings.cinema.read_block_secs = 120;
    })
    .await;
    for _ in 0..3 {
        expect_json(app.get("/movies").await, 200).await;
    }
    assert_eq!(expect_rate_limited(app.get("/movies").await).await, 120);
    app.advance(Duration::minutes(2));
    expect_json(app.get("/movies").await, 200).await;

    let unlimited = spawn_app_with(|settings| settings.cinema.read_limit = 0).await;
    for _ in 0..60 {
        expect_json(unlimited.get("/movies").await, 200).await;
    }
}

/// "Now showing" carries an entity tag: a client that has the answer gets 304 and no body;
/// a client that accepts gzip gets it compressed.
#[tokio::test]
async fn now_showing_answers_304_for_a_known_tag_and_compresses_for_clients_that_accept_it() {
    let cinema = Cinema::open().await;
    let app = &cinema.app;
    let first = app.send(app.client.get(app.url("/movies"))).await;
    assert_eq!(first.status().as_u16(), 200);
    let etag = header(&first, "etag");
    assert!(etag.starts_with("W/\""), "{etag}");
    assert!(header(&first, "cache-control").starts_with("public, max-age="));

    let again = app.send(app.client.get(app.url("/movies")).header("if-none-match", &etag)).await;
    assert_eq!(again.status().as_u16(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    let other = app.send(app.client.get(app.url("/movies")).header("if-none-match", "\"x\"")).await;
    assert_eq!(other.status().as_u16(), 200);

    let gzipped =
        app.send(app.client.get(app.url("/movies")).header("accept-encoding", "gzip")).await;
    assert_eq!(header(&gzipped, "content-encoding"), "gzip");
}
