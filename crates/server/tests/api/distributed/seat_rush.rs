//! The premiere across replicas: 2,000 users rush one 5 × 5 screening through two replicas at
//! once. The screening's hot state in Redis decides every request, so the answers, the seat map
//! on either replica and the reservations table in PostgreSQL all agree.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::deployment::Deployment;
use crate::cinema::rush::{self, USERS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_rush_one_screening_across_two_replicas() {
    let deployment = Deployment::start(2).await;
    let rushers = deployment.quick_users(USERS).await;
    let screening =
        deployment.screening(5, 5, chrono::Utc::now() + chrono::Duration::hours(1)).await;

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
    let users = deployment.quick_users(usize::from(rows) * usize::from(cols)).await;
    let screening =
        deployment.screening(rows, cols, chrono::Utc::now() + chrono::Duration::hours(1)).await;
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
    let late = deployment.quick_users(1).await.remove(0);
    let body = json!({"screening_id": screening, "seats": ["M25"]});
    let refused = api.post_json("/reservations", Some(&late.token), &body).await;
    assert_eq!(refused.status().as_u16(), 409);
}
