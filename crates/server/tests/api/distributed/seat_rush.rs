//! The premiere across replicas: 2,000 users rush one 5 × 5 screening through two replicas at
//! once. The screening's hot state in Redis decides every request, so the answers, the seat map
//! on either replica and the reservations table in PostgreSQL all agree.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use surge_store::accounts::postgres::PgUsers;
use surge_store::accounts::{NewUser, UserStore};
use uuid::Uuid;

use super::deployment::Deployment;
use crate::cinema::rush::{self, USERS};
use crate::helpers::{QuickUser, expect_json, string, unique_email, unique_nickname};

/// `count` accounts straight in PostgreSQL, with access tokens signed by the deployment's key.
async fn quick_users(deployment: &Deployment, count: usize) -> Vec<QuickUser> {
    let tokens = deployment.tokens();
    let users_store = PgUsers::new(deployment.pool.clone());
    futures_util::stream::iter(0..count)
        .map(|_| {
            let (store, tokens) = (&users_store, &tokens);
            async move {
                let id = Uuid::now_v7();
                store
                    .create(NewUser {
                        id,
                        email: unique_email(),
                        password_hash: "$argon2id$not-a-password".into(),
                        nickname: unique_nickname(),
                        created_at: chrono::Utc::now(),
                    })
                    .await
                    .expect("cannot create a user");
                QuickUser { id: id.to_string(), token: tokens.issue_access(id, Vec::new()) }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// A screening an hour from now in a new theater of `rows` × `cols`, made by an admin.
async fn screening(deployment: &Deployment, rows: u8, cols: u8) -> String {
    let admin = quick_users(deployment, 1).await.remove(0);
    let admin =
        deployment.tokens().issue_access(Uuid::parse_str(&admin.id).unwrap(), vec!["admin".into()]);
    let api = deployment.api(0);
    let post = |path: &'static str, body: serde_json::Value| {
        let (api, admin) = (api.clone(), admin.clone());
        async move { expect_json(api.post_json(path, Some(&admin), &body).await, 201).await }
    };
    let theater =
        post("/admin/theaters", json!({"name": "Premiere", "rows": rows, "cols": cols})).await;
    let movie = post(
        "/admin/movies",
        json!({"title": "Premiere", "grade": "ALL", "genre": "DRAMA",
        "release_date": "2026-11-21", "thumbnail_url": "https://img.example.com/p.jpg",
        "running_minutes": 100}),
    )
    .await;
    let starts_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let screening = post(
        "/admin/screenings",
        json!({"movie_id": movie["id"],
        "theater_id": theater["id"], "starts_at": starts_at}),
    )
    .await;
    string(&screening["id"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_rush_one_screening_across_two_replicas() {
    let deployment = Deployment::start(2).await;
    let rushers = quick_users(&deployment, USERS).await;
    let screening = screening(&deployment, 5, 5).await;

    let rush = rush::run(&deployment.apis(), &rushers, &screening, 1).await;
    assert_eq!(rush.accepted.len() + rush.refused, USERS);
    let path = format!("/screenings/{screening}/seats");
    let sold = rush::check(&rush, &deployment.api(1).get_json(&path).await);
    rush::check(&rush, &deployment.api(0).get_json(&path).await);
    assert!(!sold.is_empty());

    // PostgreSQL catches up: one row per reservation, one per seat, nothing dead-lettered.
    let screening_id = Uuid::parse_str(&screening).unwrap();
    let started = Instant::now();
    loop {
        let seats: Vec<String> =
            sqlx::query_scalar("select seat from reserved_seats where screening_id = $1")
                .bind(screening_id)
                .fetch_all(&deployment.pool)
                .await
                .unwrap();
        if seats.iter().cloned().collect::<BTreeSet<_>>() == sold && seats.len() == sold.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "PostgreSQL has {seats:?}, sold {sold:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "select id, user_id, seats from reservations where screening_id = $1 and cancelled_at is null",
    )
    .bind(screening_id)
    .fetch_all(&deployment.pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), rush.accepted.len());
    for (id, user, seats) in stored {
        let (expected_user, expected_seats) = &rush.accepted[&id.to_string()];
        assert_eq!((user.to_string(), seats), (expected_user.clone(), expected_seats.join(",")));
    }
    let dead: i64 = sqlx::query_scalar("select count(*) from dead_letters")
        .fetch_one(&deployment.pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);
}

/// A full 26 × 50 theater sold seat by seat holds thousands of fields in its hot state; when
/// Redis loses the key, it is rebuilt whole (in chunks: one HSET of all of it would overflow
/// the script's stack) and the seat map still shows every seat taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hot_state_of_a_sold_out_big_theater_is_rebuilt_whole() {
    let deployment = Deployment::start(1).await;
    let (rows, cols) = (26u8, 50u8);
    let users = quick_users(&deployment, usize::from(rows) * usize::from(cols)).await;
    let screening = screening(&deployment, rows, cols).await;
    let api = deployment.api(0);
    let codes: Vec<String> = (0..rows)
        .flat_map(|row| (1..=cols).map(move |col| format!("{}{col}", char::from(b'A' + row))))
        .collect();
    let answers: Vec<u16> = futures_util::stream::iter(users.iter().zip(&codes))
        .map(|(user, code)| {
            let api = api.clone();
            let body = json!({"screening_id": screening, "seats": [code]});
            async move {
                api.post_json("/reservations", Some(&user.token), &body).await.status().as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(answers.iter().all(|&status| status == 201), "not all seats sold: {answers:?}");

    let key = deployment.keys().screening(Uuid::parse_str(&screening).unwrap());
    let deleted: i64 = deployment.redis_query(redis::cmd("DEL").arg(&key)).await;
    assert_eq!(deleted, 1);
    let map = api.get_json(&format!("/screenings/{screening}/seats")).await;
    let taken =
        map["seats"].as_array().unwrap().iter().filter(|seat| seat["taken"] == true).count();
    assert_eq!(taken, codes.len());
    // And the rebuilt state still refuses a taken seat.
    let late = quick_users(&deployment, 1).await.remove(0);
    let body = json!({"screening_id": screening, "seats": ["M25"]});
    let refused = api.post_json("/reservations", Some(&late.token), &body).await;
    assert_eq!(refused.status().as_u16(), 409);
}
